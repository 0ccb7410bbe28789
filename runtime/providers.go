package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Config providers resolve placeholders in connector settings when a connector or task starts:
//
//	${env:NAME}            the environment variable NAME
//	${file:/path:key}      the value of key in the properties file /path
//	${file:/path}          the whole file, trimmed
//	${dir:/path:name}      the contents of the file name in the directory /path, trimmed
//
// Placeholders are stored raw in the config topic and returned raw by the API; resolved values
// live only in the memory of the worker running the connector or task.
var placeholderRE = regexp.MustCompile(`\$\{([a-zA-Z]+):([^}]*)\}`)

// resolved is a configuration with its placeholders replaced, and the secret values found, so
// they can be scrubbed from messages.
type resolved struct {
	config  map[string]string
	secrets []string
}

func resolveConfig(raw map[string]string) (resolved, error) {
	out := resolved{config: make(map[string]string, len(raw))}
	var errs []string
	for k, v := range raw {
		if !strings.Contains(v, "${") {
			out.config[k] = v
			continue
		}
		out.config[k] = placeholderRE.ReplaceAllStringFunc(v, func(ph string) string {
			m := placeholderRE.FindStringSubmatch(ph)
			val, err := resolvePlaceholder(m[1], m[2])
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
		return out, fmt.Errorf("cannot resolve config placeholders: %s", strings.Join(errs, "; "))
	}
	return out, nil
}

func resolvePlaceholder(provider, arg string) (string, error) {
	switch provider {
	case "env":
		v, ok := os.LookupEnv(arg)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", arg)
		}
		return v, nil
	case "file":
		path, key, hasKey := cutLastColon(arg)
		if !hasKey {
			b, err := os.ReadFile(arg)
			return strings.TrimSpace(string(b)), err
		}
		props, err := readPropertiesFile(path)
		if err != nil {
			return "", err
		}
		v, ok := props[key]
		if !ok {
			return "", fmt.Errorf("no key %q in %s", key, path)
		}
		return v, nil
	case "dir":
		dir, name, ok := cutLastColon(arg)
		if !ok {
			return "", fmt.Errorf("want ${dir:/path:file}")
		}
		b, err := os.ReadFile(filepath.Join(dir, filepath.Base(name)))
		return strings.TrimSpace(string(b)), err
	}
	return "", fmt.Errorf("unknown config provider %q (known: env, file, dir)", provider)
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

// scrub replaces every secret value in s with the redaction marker.
func scrub(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "[hidden]")
		}
	}
	return s
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
