package worker

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/internal/redact"
)

// scrubHandler hides a connector's secrets in what it logs: the message and every attribute
// (strings, errors and anything else printed as text), so a connector that logs an error
// carrying its password does not put the password in the worker's log.
type scrubHandler struct {
	inner   slog.Handler
	secrets []string
}

// scrubbedLogger is log with secrets hidden from everything logged through it.
func scrubbedLogger(log *slog.Logger, secrets []string) *slog.Logger {
	if len(secrets) == 0 {
		return log
	}
	return slog.New(scrubHandler{inner: log.Handler(), secrets: secrets})
}

func (h scrubHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h scrubHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, redact.Scrub(r.Message, h.secrets), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.inner.Handle(ctx, out)
}

func (h scrubHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	scrubbed := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		scrubbed[i] = h.attr(a)
	}
	return scrubHandler{inner: h.inner.WithAttrs(scrubbed), secrets: h.secrets}
}

func (h scrubHandler) WithGroup(name string) slog.Handler {
	return scrubHandler{inner: h.inner.WithGroup(name), secrets: h.secrets}
}

func (h scrubHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, redact.Scrub(v.String(), h.secrets))
	case slog.KindGroup:
		group := v.Group()
		out := make([]any, len(group))
		for i, g := range group {
			out[i] = h.attr(g)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		text := ""
		switch x := v.Any().(type) {
		case error:
			text = x.Error()
		case fmt.Stringer:
			text = x.String()
		default:
			text = fmt.Sprint(x)
		}
		if s := redact.Scrub(text, h.secrets); s != text {
			return slog.String(a.Key, s)
		}
	}
	return a
}

// literalSecrets are the values of the settings spec declares secret that config gives
// literally (not as placeholders, whose resolved values the providers report).
func literalSecrets(spec *connect.Spec, config map[string]string) []string {
	var out []string
	for _, k := range spec.Keys() {
		if v := config[k.Name]; k.Secret && v != "" && !strings.Contains(v, "${") {
			out = append(out, v)
		}
	}
	return out
}
