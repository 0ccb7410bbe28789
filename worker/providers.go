package worker

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Config providers resolve placeholders in connector settings when a connector or task starts:
//
//	${env:NAME}            the environment variable NAME
//	${file:/path:key}      the value of key in the properties file /path
//	${file:/path}          the whole file, trimmed
//	${dir:/path:name}      the contents of the file name in the directory /path, trimmed
//
// As in Kafka Connect, a provider resolves only when the worker enables it (config.providers),
// and each can be held to what the operator means it to read: the environment variables
// config.providers.<name>.param.allowlist.pattern matches (KIP-887), the files under
// config.providers.<name>.param.allowed.paths (KIP-993). Anyone who may create a connector
// could otherwise read any file and variable of the worker's.
//
// Placeholders are stored raw in the config topic and returned raw by the API; resolved values
// live only in the memory of the worker running the connector or task.
var placeholderRE = regexp.MustCompile(`\$\{([a-zA-Z]+):([^}]*)\}`)

// ConfigProviders are the config providers a worker enables, by the name placeholders use.
type ConfigProviders map[string]configProvider

type configProvider interface {
	resolve(arg string) (string, error)
}

// providerKinds are the providers Sluice has, by the class names Kafka Connect gives them
// and by their short names.
var providerKinds = map[string]string{
	"org.apache.kafka.common.config.provider.EnvVarConfigProvider":    "env",
	"org.apache.kafka.common.config.provider.FileConfigProvider":      "file",
	"org.apache.kafka.common.config.provider.DirectoryConfigProvider": "dir",
	"env": "env", "file": "file", "dir": "dir",
}

// parseConfigProviders reads config.providers and each provider's class and parameters from
// a worker's settings. A provider named env, file or dir needs no class.
func parseConfigProviders(settings map[string]string) (ConfigProviders, error) {
	out := ConfigProviders{}
	var errs []error
	for _, name := range splitList(settings["config.providers"]) {
		prefix := "config.providers." + name + "."
		class := settings[prefix+"class"]
		if class == "" {
			class = name
		}
		kind, ok := providerKinds[class]
		if !ok {
			errs = append(errs, fmt.Errorf("%sclass: %q is not a config provider Sluice has (EnvVarConfigProvider, FileConfigProvider, DirectoryConfigProvider)", prefix, class))
			continue
		}
		params := prefix + "param."
		switch kind {
		case "env":
			pattern := settings[params+"allowlist.pattern"]
			if pattern == "" {
				pattern = ".*"
			}
			re, err := regexp.Compile("^(?:" + pattern + ")$")
			if err != nil {
				errs = append(errs, fmt.Errorf("%sallowlist.pattern: %w", params, err))
				continue
			}
			out[name] = envProvider{name: name, allow: re}
		default:
			var allowed []string
			for _, p := range splitList(settings[params+"allowed.paths"]) {
				if !filepath.IsAbs(p) {
					errs = append(errs, fmt.Errorf("%sallowed.paths: %q is not an absolute path", params, p))
					continue
				}
				allowed = append(allowed, realPath(p))
			}
			out[name] = fileProvider{name: name, dir: kind == "dir", allowed: allowed}
		}
	}
	for k := range settings {
		if rest, ok := strings.CutPrefix(k, "config.providers."); ok {
			if name, _, _ := strings.Cut(rest, "."); out[name] == nil && !slices.Contains(splitList(settings["config.providers"]), name) {
				errs = append(errs, fmt.Errorf("%s: provider %q is not in config.providers", k, name))
			}
		}
	}
	return out, errors.Join(errs...)
}

// resolved is a configuration with its placeholders replaced, and the secret values found, so
// they can be scrubbed from messages.
type resolved struct {
	config  map[string]string
	secrets []string
}

// resolve replaces the placeholders of raw. Its errors name the key and the placeholder, never
// what a placeholder resolved to.
func (ps ConfigProviders) resolve(raw map[string]string) (resolved, error) {
	out := resolved{config: make(map[string]string, len(raw))}
	var errs []string
	for k, v := range raw {
		if !strings.Contains(v, "${") {
			out.config[k] = v
			continue
		}
		out.config[k] = placeholderRE.ReplaceAllStringFunc(v, func(ph string) string {
			m := placeholderRE.FindStringSubmatch(ph)
			p := ps[m[1]]
			if p == nil {
				errs = append(errs, fmt.Sprintf("%s: %s: config provider %q is not enabled on this worker (config.providers)", k, ph, m[1]))
				return ph
			}
			val, err := p.resolve(m[2])
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %s: %v", k, ph, err))
				return ph
			}
			if val != "" {
				out.secrets = append(out.secrets, val)
			}
			return val
		})
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return out, fmt.Errorf("cannot resolve config placeholders: %s", strings.Join(errs, "; "))
	}
	return out, nil
}

// envProvider reads environment variables.
type envProvider struct {
	name  string
	allow *regexp.Regexp
}

func (p envProvider) resolve(arg string) (string, error) {
	if !p.allow.MatchString(arg) {
		return "", fmt.Errorf("environment variable %s is not allowed (config.providers.%s.param.allowlist.pattern)", arg, p.name)
	}
	v, ok := os.LookupEnv(arg)
	if !ok {
		return "", fmt.Errorf("environment variable %s is not set", arg)
	}
	return v, nil
}

// fileProvider reads properties files (${file:/path:key}), whole files (${file:/path}) or the
// files of a directory (${dir:/path:name}), under the allowed paths when there are any.
type fileProvider struct {
	name    string
	dir     bool
	allowed []string // real paths; empty allows any
}

func (p fileProvider) resolve(arg string) (string, error) {
	if p.dir {
		dir, name, ok := cutLastColon(arg)
		if !ok {
			return "", fmt.Errorf("want ${%s:/path:file}", p.name)
		}
		path := filepath.Join(dir, filepath.Base(name))
		if err := p.check(path); err != nil {
			return "", err
		}
		b, err := os.ReadFile(path)
		return strings.TrimSpace(string(b)), quiet(err)
	}
	path, key, hasKey := cutLastColon(arg)
	if !hasKey {
		path = arg
	}
	if err := p.check(path); err != nil {
		return "", err
	}
	if !hasKey {
		b, err := os.ReadFile(path)
		return strings.TrimSpace(string(b)), quiet(err)
	}
	props, err := readPropertiesFile(path)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return "", quiet(err)
	}
	if err != nil { // the parser's message quotes the line
		return "", fmt.Errorf("%s is not a properties file of key=value lines", path)
	}
	v, ok := props[key]
	if !ok {
		return "", fmt.Errorf("no key %q in %s", key, path)
	}
	return v, nil
}

// check refuses a path outside the allowed paths (after symbolic links are followed, so a
// link cannot lead out of them).
func (p fileProvider) check(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%q is not an absolute path", path)
	}
	if len(p.allowed) == 0 {
		return nil
	}
	if underPaths(path, p.allowed) {
		return nil
	}
	return fmt.Errorf("%s is not under config.providers.%s.param.allowed.paths", path, p.name)
}

// underPaths reports whether path, with its symbolic links followed as far as it exists, is
// one of allowed (real paths) or under one.
func underPaths(path string, allowed []string) bool {
	real := realPath(path)
	for _, a := range allowed {
		if real == a || strings.HasPrefix(real, strings.TrimSuffix(a, string(filepath.Separator))+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// realPath is path cleaned, with its symbolic links followed as far as it exists.
func realPath(path string) string {
	path = filepath.Clean(path)
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return r
	}
	if r, err := filepath.EvalSymlinks(filepath.Dir(path)); err == nil {
		return filepath.Join(r, filepath.Base(path))
	}
	return path
}

// quiet keeps a file error to what happened to which path: the operating system's words, no
// contents.
func quiet(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s %s: %w", pe.Op, pe.Path, pe.Err)
	}
	return err
}

// cutLastColon splits "/path:key" at the last colon that is not part of a Windows drive.
func cutLastColon(s string) (string, string, bool) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

func readPropertiesFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadProperties(f)
}

// reverseResolve puts placeholders back into task configurations a connector derived from its
// resolved configuration, as Kafka Connect does, so resolved secrets never reach the config
// topic: a task setting equal to the resolved value of a connector setting that had a
// placeholder gets the raw value back.
func reverseResolve(raw, res map[string]string, taskConfigs []map[string]string) {
	for _, tc := range taskConfigs {
		for k, v := range tc {
			if r, ok := raw[k]; ok && strings.Contains(r, "${") && res[k] == v {
				tc[k] = r
			}
		}
	}
}
