// Package all imports every connector the standard sluice binary contains. Adding a connector
// to the binary is one blank import here.
package all
