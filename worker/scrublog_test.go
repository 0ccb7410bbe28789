package worker

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/redact"
)

func TestScrubbedLoggerHidesSecretsEverywhere(t *testing.T) {
	const secret = "Pa55-w0rd-9981"
	for _, tt := range []struct {
		name string
		log  func(l *slog.Logger)
	}{
		{"message", func(l *slog.Logger) { l.Info("login with " + secret + " failed") }},
		{"string attribute", func(l *slog.Logger) { l.Warn("failed", "dsn", "postgres://app:"+secret+"@db/x") }},
		{"error attribute", func(l *slog.Logger) {
			l.Error("failed", "err", fmt.Errorf("auth: %w", errors.New("bad password "+secret)))
		}},
		{"quoted in an error", func(l *slog.Logger) { l.Error("failed", "err", fmt.Errorf("bad value %q", secret)) }},
		{"a group", func(l *slog.Logger) { l.Info("conn", slog.Group("server", "uri", "mqtt://u:"+secret+"@h")) }},
		{"With", func(l *slog.Logger) { l.With("password", secret).Info("connecting") }},
		{"any value", func(l *slog.Logger) { l.Info("cfg", "values", []string{"a", secret}) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tt.log(scrubbedLogger(slog.New(slog.NewTextHandler(&buf, nil)), []string{secret}))
			if out := buf.String(); strings.Contains(out, secret) || !strings.Contains(out, redact.Hidden) {
				t.Errorf("logged %q", out)
			}
		})
	}
}
