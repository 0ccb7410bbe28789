package worker

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/sluicehq/sluice/connect"
)

// Files on the worker: a connector setting declared as a path (path:"true", the file and
// file-source connectors' file) must name a file under one of the directories
// connector.file.allowed.paths lists. Without the check, whoever may create a connector could
// read any file the worker's user can (file-source into a topic) or overwrite one (file).

// allowedFilePaths reads connector.file.allowed.paths: absolute paths, as real paths.
func allowedFilePaths(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("connector.file.allowed.paths: %q is not an absolute path", p)
		}
		out = append(out, realPath(p))
	}
	return out, nil
}

// pathErrors checks the settings of config that spec declares as paths, by key.
func pathErrors(spec *connect.Spec, config map[string]string, allowed []string) map[string][]string {
	out := map[string][]string{}
	for _, k := range spec.Keys() {
		v := config[k.Name]
		if !k.Path || v == "" {
			continue
		}
		switch {
		case !filepath.IsAbs(v):
			out[k.Name] = append(out[k.Name], fmt.Sprintf("%q is not an absolute path: files are named from the root, under the worker's connector.file.allowed.paths", v))
		case len(allowed) == 0:
			out[k.Name] = append(out[k.Name], "this worker lets connectors use no files: its connector.file.allowed.paths is empty")
		case !underPaths(v, allowed):
			out[k.Name] = append(out[k.Name], fmt.Sprintf("%s is not under the worker's connector.file.allowed.paths (%s)", v, strings.Join(allowed, ", ")))
		}
	}
	return out
}

// pathError is pathErrors as one error, for a task whose stored config names a file the
// worker does not allow (written on another worker, or before the setting changed).
func pathError(spec *connect.Spec, config map[string]string, allowed []string) error {
	return refusals("files refused", pathErrors(spec, config, allowed))
}
