// Package smoke proves that each real test service started by scripts/testenv works through
// the client library the project uses for it. Its tests skip when the services are not up.
package smoke
