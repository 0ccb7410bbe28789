package connect

import (
	"strings"
	"testing"
	"time"
)

type docsConfig struct {
	Short string        `config:"short" doc:"In the tag."`
	Long  string        `config:"long"`
	Wait  time.Duration `config:"wait" default:"1s" min:"10ms" max:"1h" doc:"A wait."`
}

func (docsConfig) Docs() map[string]string { return map[string]string{"long": "From Docs."} }

type docsTwice struct {
	A string `config:"a" doc:"Tag."`
}

func (docsTwice) Docs() map[string]string { return map[string]string{"a": "Docs."} }

type docsUnknown struct {
	A string `config:"a" doc:"Tag."`
}

func (docsUnknown) Docs() map[string]string { return map[string]string{"b": "Docs."} }

type bareDurationBound struct {
	Wait time.Duration `config:"wait" min:"10" doc:"A wait."`
}

func TestDocsMethodAndDurationBounds(t *testing.T) {
	spec := SpecOf(docsConfig{})
	for key, want := range map[string]string{"short": "In the tag.", "long": "From Docs."} {
		if k, _ := spec.Key(key); k.Doc != want {
			t.Errorf("%s: doc %q, want %q", key, k.Doc, want)
		}
	}
	if k, _ := spec.Key("wait"); *k.Min != 10 || *k.Max != float64(time.Hour/time.Millisecond) || k.Type != TypeString {
		t.Errorf("wait: min %v max %v type %s, want 10 and 3600000 (ms) and STRING", *k.Min, *k.Max, k.Type)
	}
	for value, want := range map[string]string{"5ms": "at least 10ms", "2h": "at most 1h"} {
		err := spec.Validate(Config{"wait": value})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("wait=%s: %v, want %q", value, err, want)
		}
	}
	for name, proto := range map[string]any{"doc in both places": docsTwice{}, "Docs of an undeclared key": docsUnknown{}, "a bound without a unit": bareDurationBound{}} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("SpecOf(%T) did not panic", proto)
				}
			}()
			SpecOf(proto)
		})
	}
}
