package worker

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/worker/api"
)

// LogLevels holds the run-time adjustable levels of the worker's named loggers, for
// /admin/loggers. Names are dotted; setting a level on a name sets it on every name below it,
// and "root" is above all.
type LogLevels struct {
	base slog.Handler
	mu   sync.Mutex
	vars map[string]*slog.LevelVar
	mod  map[string]int64
}

// NewLogLevels returns loggers that write through base, at level by default.
func NewLogLevels(base slog.Handler, level slog.Level) *LogLevels {
	l := &LogLevels{base: base, vars: map[string]*slog.LevelVar{}, mod: map[string]int64{}}
	l.varFor("root").Set(level)
	return l
}

func (l *LogLevels) varFor(name string) *slog.LevelVar {
	l.mu.Lock()
	defer l.mu.Unlock()
	if v, ok := l.vars[name]; ok {
		return v
	}
	v := new(slog.LevelVar)
	if root, ok := l.vars["root"]; ok {
		v.Set(root.Level())
	}
	// Inherit from the nearest named parent.
	for p := name; strings.Contains(p, "."); {
		p = p[:strings.LastIndexByte(p, '.')]
		if pv, ok := l.vars[p]; ok {
			v.Set(pv.Level())
			break
		}
	}
	l.vars[name] = v
	return v
}

// Logger returns the named logger.
func (l *LogLevels) Logger(name string) *slog.Logger {
	return slog.New(&levelHandler{inner: l.base, level: l.varFor(name)}).With("logger", name)
}

// Levels returns every known logger's level.
func (l *LogLevels) Levels() map[string]api.LoggerLevel {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]api.LoggerLevel{}
	for n, v := range l.vars {
		ll := api.LoggerLevel{Level: levelName(v.Level())}
		if t, ok := l.mod[n]; ok {
			ll.LastModified = &t
		}
		out[n] = ll
	}
	return out
}

// Set changes the level of name and of every logger below it, and returns the names changed.
func (l *LogLevels) Set(name, level string) ([]string, error) {
	lv, err := parseLevel(level)
	if err != nil {
		return nil, err
	}
	l.varFor(name)
	l.mu.Lock()
	defer l.mu.Unlock()
	var changed []string
	now := time.Now().UnixMilli()
	for n, v := range l.vars {
		if name == "root" || n == name || strings.HasPrefix(n, name+".") {
			v.Set(lv)
			l.mod[n] = now
			changed = append(changed, n)
		}
	}
	sort.Strings(changed)
	return changed, nil
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToUpper(s) {
	case "TRACE", "DEBUG":
		return slog.LevelDebug, nil
	case "INFO":
		return slog.LevelInfo, nil
	case "WARN", "WARNING":
		return slog.LevelWarn, nil
	case "ERROR", "FATAL":
		return slog.LevelError, nil
	case "OFF":
		return slog.LevelError + 100, nil
	}
	return 0, fmt.Errorf("invalid log level %q: use one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL, OFF", s)
}

func levelName(l slog.Level) string {
	switch {
	case l > slog.LevelError:
		return "OFF"
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARN"
	case l >= slog.LevelInfo:
		return "INFO"
	}
	return "DEBUG"
}

type levelHandler struct {
	inner slog.Handler
	level *slog.LevelVar
}

func (h *levelHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }
func (h *levelHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.inner.Handle(ctx, r)
}
func (h *levelHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return &levelHandler{inner: h.inner.WithAttrs(a), level: h.level}
}
func (h *levelHandler) WithGroup(n string) slog.Handler {
	return &levelHandler{inner: h.inner.WithGroup(n), level: h.level}
}
