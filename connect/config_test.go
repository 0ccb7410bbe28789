package connect

import (
	"errors"
	"strings"
	"testing"
	"time"
)

type tlsConfig struct {
	CA       string `config:"ca" doc:"CA file."`
	Insecure bool   `config:"insecure" default:"false" doc:"Skip verification."`
}

type testConfig struct {
	URI      string        `config:"uri" required:"true" secret:"true" doc:"Where to connect."`
	Batch    int           `config:"batch.size" default:"100" min:"1" max:"10000" doc:"Records per write."`
	QoS      int           `config:"qos" default:"1" enum:"0,1,2" doc:"MQTT QoS."`
	Ratio    float64       `config:"ratio" default:"0.5" doc:"A ratio."`
	Timeout  time.Duration `config:"timeout" default:"30s" doc:"How long to wait."`
	Flush    time.Duration `config:"flush.interval.ms" default:"60000" doc:"Flush interval."`
	Topics   []string      `config:"topics" doc:"Topics."`
	Long     int64         `config:"max.bytes" default:"1048576" doc:"Bytes."`
	Mode     string        `config:"mode" default:"append" pattern:"append|upsert" doc:"Mode."`
	TLS      tlsConfig     `config:"tls"`
	Internal string        // no tag: not a setting
}

func (c testConfig) Validate() error {
	if c.Mode == "upsert" && len(c.Topics) == 0 {
		return &FieldError{Key: "topics", Message: "upsert needs topics"}
	}
	return nil
}

func TestSpecOfDeclaresKeys(t *testing.T) {
	s := SpecOf(testConfig{})
	tests := []struct {
		name, typ string
		required  bool
	}{
		{"uri", TypePassword, true},
		{"batch.size", TypeInt, false},
		{"ratio", TypeDouble, false},
		{"timeout", TypeString, false},
		{"flush.interval.ms", TypeLong, false},
		{"topics", TypeList, false},
		{"max.bytes", TypeLong, false},
		{"tls.ca", TypeString, false},
		{"tls.insecure", TypeBoolean, false},
	}
	for _, tt := range tests {
		k, ok := s.Key(tt.name)
		if !ok {
			t.Fatalf("key %q not declared", tt.name)
		}
		if k.Type != tt.typ || k.Required != tt.required {
			t.Errorf("%s: type %s required %v, want %s %v", tt.name, k.Type, k.Required, tt.typ, tt.required)
		}
	}
	if len(s.Keys()) != 11 {
		t.Errorf("%d keys, want 11", len(s.Keys()))
	}
	if SpecOf(&testConfig{}) != s {
		t.Error("SpecOf is not cached per type")
	}
}

func TestDecodeAppliesDefaultsAndParses(t *testing.T) {
	c, err := Decode[testConfig](Config{"uri": "mqtt://x", "topics": "a, b,,c", "timeout": "2m", "tls.insecure": "true"})
	if err != nil {
		t.Fatal(err)
	}
	want := testConfig{URI: "mqtt://x", Batch: 100, QoS: 1, Ratio: 0.5, Timeout: 2 * time.Minute,
		Flush: time.Minute, Topics: []string{"a", "b", "c"}, Long: 1 << 20, Mode: "append",
		TLS: tlsConfig{Insecure: true}}
	if c.URI != want.URI || c.Batch != want.Batch || c.QoS != want.QoS || c.Ratio != want.Ratio ||
		c.Timeout != want.Timeout || c.Flush != want.Flush || strings.Join(c.Topics, "|") != "a|b|c" ||
		c.Long != want.Long || c.Mode != want.Mode || c.TLS != want.TLS {
		t.Fatalf("decoded %+v\nwant    %+v", c, want)
	}
}

func TestValidateNamesEveryBadKey(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want map[string]string // key -> part of its message
	}{
		{"missing required", Config{}, map[string]string{"uri": "Missing required"}},
		{"bad types and bounds", Config{"uri": "x", "batch.size": "0", "qos": "3", "ratio": "abc", "timeout": "soon", "tls.insecure": "maybe"},
			map[string]string{"batch.size": "at least 1", "qos": "one of 0, 1, 2", "ratio": "must be a number", "timeout": "duration", "tls.insecure": "true or false"}},
		{"too large", Config{"uri": "x", "batch.size": "10001"}, map[string]string{"batch.size": "at most 10000"}},
		{"pattern", Config{"uri": "x", "mode": "merge"}, map[string]string{"mode": "must match"}},
		{"cross-field rule", Config{"uri": "x", "mode": "upsert"}, map[string]string{"topics": "upsert needs topics"}},
		{"valid", Config{"uri": "x", "mode": "upsert", "topics": "t"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			byKey, other := FieldErrors(SpecOf(testConfig{}).Validate(tt.cfg))
			if len(other) > 0 {
				t.Fatalf("errors without a key: %v", other)
			}
			if len(byKey) != len(tt.want) {
				t.Fatalf("errors %v, want keys %v", byKey, tt.want)
			}
			for k, part := range tt.want {
				if len(byKey[k]) != 1 || !strings.Contains(byKey[k][0], part) {
					t.Errorf("%s: %v, want a message with %q", k, byKey[k], part)
				}
			}
		})
	}
}

func TestRedactKeepsPlaceholders(t *testing.T) {
	s := SpecOf(testConfig{})
	tests := []struct{ in, want string }{
		{"mongodb://u:secret@h", Redacted},
		{"${env:MONGO_URI}", "${env:MONGO_URI}"},
		{"mongodb://u:${file:/run/secrets/db:password}@h", "mongodb://u:${file:/run/secrets/db:password}@h"},
		{"", ""},
	}
	for _, tt := range tests {
		got := s.Redact(Config{"uri": tt.in, "mode": "append"})
		if got["uri"] != tt.want || got["mode"] != "append" {
			t.Errorf("Redact(%q) = %v, want uri %q", tt.in, got, tt.want)
		}
	}
}

func TestSpecOfPanicsOnBadDeclaration(t *testing.T) {
	type badDefault struct {
		N int `config:"n" default:"many"`
	}
	type badType struct {
		M map[string]string `config:"m"`
	}
	for _, proto := range []any{badDefault{}, badType{}, 42} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("SpecOf(%T) did not panic", proto)
				}
			}()
			SpecOf(proto)
		}()
	}
}

func TestErrors(t *testing.T) {
	base := errors.New("connection refused")
	if !IsRetriable(Retriable(base)) || !errors.Is(Retriable(base), base) {
		t.Error("Retriable does not mark or wrap")
	}
	if IsRetriable(base) || Retriable(nil) != nil {
		t.Error("unmarked error is retriable, or Retriable(nil) is not nil")
	}
	if !IsRetriable(errors.Join(errors.New("x"), Retriable(base))) {
		t.Error("a joined retriable error is not seen")
	}
	msg := BadField("temperature", "hot", "not a number").Error()
	if !strings.Contains(msg, `"temperature"`) || !strings.Contains(msg, `"hot"`) {
		t.Errorf("BadField message %q names neither field nor value", msg)
	}
}
