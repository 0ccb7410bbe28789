package worker

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/redact"
)

func TestConfigProvidersResolveOnlyWhatTheWorkerAllows(t *testing.T) {
	secrets := t.TempDir()
	outside := t.TempDir()
	write := func(dir, name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	db := write(secrets, "db.properties", "password=s3cret-db\n")
	token := write(secrets, "token", "tok-123\n")
	other := write(outside, "other", "not-for-connectors\n")
	link := filepath.Join(secrets, "escape")
	if err := os.Symlink(other, link); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLUICE_SECRET_PG", "pg-pass")
	t.Setenv("HOME_SECRET", "home-pass")

	restricted := map[string]string{
		"config.providers": "env,file,dir",
		"config.providers.env.param.allowlist.pattern": "SLUICE_SECRET_.*",
		"config.providers.file.param.allowed.paths":    secrets,
		"config.providers.dir.class":                   "org.apache.kafka.common.config.provider.DirectoryConfigProvider",
		"config.providers.dir.param.allowed.paths":     secrets,
	}
	for _, tt := range []struct {
		name     string
		settings map[string]string
		value    string
		want     string // the resolved value, or the error's text
		wantErr  bool
	}{
		{"no providers enabled", nil, "${env:SLUICE_SECRET_PG}", `config provider "env" is not enabled`, true},
		{"env, allowed", restricted, "${env:SLUICE_SECRET_PG}", "pg-pass", false},
		{"env, not on the allowlist", restricted, "${env:HOME_SECRET}", "HOME_SECRET is not allowed", true},
		{"env, anything without an allowlist", map[string]string{"config.providers": "env"}, "${env:HOME_SECRET}", "home-pass", false},
		{"file key, allowed", restricted, "${file:" + db + ":password}", "s3cret-db", false},
		{"whole file, allowed", restricted, "${file:" + token + "}", "tok-123", false},
		{"file outside the allowed paths", restricted, "${file:" + other + "}", "is not under config.providers.file.param.allowed.paths", true},
		{"/etc/passwd", restricted, "${file:/etc/passwd}", "is not under", true},
		{"dot-dot out of the allowed path", restricted, "${file:" + secrets + "/../" + filepath.Base(outside) + "/other}", "is not under", true},
		{"symbolic link out of the allowed path", restricted, "${file:" + link + "}", "is not under", true},
		{"relative path", restricted, "${file:token}", "is not an absolute path", true},
		{"dir, allowed", restricted, "${dir:" + secrets + ":token}", "tok-123", false},
		{"dir, outside", restricted, "${dir:" + outside + ":other}", "is not under", true},
		{"an unknown provider", restricted, "${vault:secret/x}", `config provider "vault" is not enabled`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			settings := map[string]string{"bootstrap.servers": "localhost:9092"}
			for k, v := range tt.settings {
				settings[k] = v
			}
			cfg, err := ParseWorkerConfig(settings)
			if err != nil {
				t.Fatal(err)
			}
			res, err := cfg.Providers.resolve(map[string]string{"connection.password": tt.value, "plain": "x"})
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error %v, want one saying %q", err, tt.want)
				}
				if !strings.Contains(err.Error(), "connection.password") || !strings.Contains(err.Error(), tt.value) {
					t.Errorf("error %q names neither the key nor the placeholder", err)
				}
				for _, leak := range []string{"not-for-connectors", "home-pass", "root:"} {
					if strings.Contains(err.Error(), leak) {
						t.Errorf("error %q shows what the file or variable holds", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := res.config["connection.password"]; got != tt.want || res.config["plain"] != "x" {
				t.Errorf("resolved %v, want connection.password=%q", res.config, tt.want)
			}
			if len(res.secrets) != 1 || res.secrets[0] != tt.want {
				t.Errorf("secrets %q, want the resolved value", res.secrets)
			}
		})
	}
}

func TestConfigProvidersSettingsAreChecked(t *testing.T) {
	for _, tt := range []struct {
		settings map[string]string
		want     string
	}{
		{map[string]string{"config.providers": "vault", "config.providers.vault.class": "com.example.Vault"}, `"com.example.Vault" is not a config provider`},
		{map[string]string{"config.providers": "env", "config.providers.env.param.allowlist.pattern": "("}, "allowlist.pattern"},
		{map[string]string{"config.providers": "file", "config.providers.file.param.allowed.paths": "secrets"}, `"secrets" is not an absolute path`},
		{map[string]string{"config.providers.file.param.allowed.paths": "/etc/sluice"}, `provider "file" is not in config.providers`},
		{map[string]string{"config.providers": "secrets"}, `"secrets" is not a config provider`},
	} {
		t.Run(tt.want, func(t *testing.T) {
			settings := map[string]string{"bootstrap.servers": "localhost:9092"}
			for k, v := range tt.settings {
				settings[k] = v
			}
			if _, err := ParseWorkerConfig(settings); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one saying %q", err, tt.want)
			}
		})
	}
}

func TestScrubHidesSecretsInEveryForm(t *testing.T) {
	file := "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
	for _, tt := range []struct {
		name    string
		secret  string
		message string
		want    string
	}{
		{"as it is", "hunter22", "login failed for password hunter22", "login failed for password [hidden]"},
		{"Go-quoted file", file, fmt.Sprintf("invalid value %q", file), `invalid value "[hidden]"`},
		{"a line of a file", file, `strconv.Atoi: parsing "root:x:0:0:root:/root:/bin/bash": invalid syntax`, `strconv.Atoi: parsing "[hidden]": invalid syntax`},
		{"JSON-quoted", `pa"ss\word`, `{"password":"pa\"ss\\word"}`, `{"password":"[hidden]"}`},
		{"a short secret alone", "ab", "password ab rejected for user abby", "password [hidden] rejected for user abby"},
		{"a short secret quoted", "ab", `password "ab" rejected`, `password "[hidden]" rejected`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := redact.Scrub(tt.message, []string{tt.secret}); got != tt.want {
				t.Errorf("scrub(%q) = %q, want %q", tt.message, got, tt.want)
			}
		})
	}
}
