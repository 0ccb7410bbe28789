package timescalesink

import (
	"errors"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
)

func TestConformance(t *testing.T) {
	connecttest.CheckPlugin(t, connecttest.Registered(t, Name), func(cfg connect.Config) {
		// Tasks connect on first use, so an address nothing listens on starts them fine.
		cfg["connection.url"] = "postgres://sluice:secret@127.0.0.1:1/iot"
	})
}

func TestConfigErrorsNameTheSettingAndValue(t *testing.T) {
	base := func(kv ...string) connect.Config {
		cfg := connect.Config{"connection.url": "postgres://u:p@localhost/db"}
		for i := 0; i < len(kv); i += 2 {
			cfg[kv[i]] = kv[i+1]
		}
		return cfg
	}
	for _, tc := range []struct {
		cfg       connect.Config
		key, want string
	}{
		{connect.Config{}, "connection.url", "Missing required"},
		{base("connection.url", "mysql://x y"), "connection.url", "Invalid connection URL"},
		{base("insert.mode", "merge"), "insert.mode", `"merge"`},
		{base("insert.mode", "upsert"), "key.columns", "upsert needs key.columns"},
		{base("insert.mode", "upsert", "key.columns", "device,device"), "key.columns", `column "device" is listed twice`},
		{base("table", "a.b.c"), "table", `"a.b.c"`},
		{base("table", ".x"), "table", `".x"`},
		{base("offsets.table", "offs_${topic}"), "offsets.table", `"offs_${topic}"`},
		{base("fields.mapping", "temperature"), "fields.mapping", `"temperature": each entry must be field:column`},
		{base("fields.mapping", "a:x,b:x"), "fields.mapping", `column "x" is the target of two fields`},
		{base("fields.catchall.column", "time"), "fields.catchall.column", `"time": it is the time column`},
		{base("time.field.unit", "days"), "time.field.unit", `"days"`},
		{base("timescale.chunk.interval", "10ms"), "timescale.chunk.interval", "at least"},
		{base("fields.flatten.separator", ""), "", ""}, // empty takes the default
	} {
		err := connect.SpecOf(Config{}).Validate(tc.cfg)
		if tc.key == "" {
			if err != nil {
				t.Errorf("%v: %v, want it accepted", tc.cfg, err)
			}
			continue
		}
		byKey, other := connect.FieldErrors(err)
		msgs := strings.Join(byKey[tc.key], "; ")
		if len(other) > 0 || !strings.Contains(msgs, tc.want) {
			t.Errorf("%v: errors %v (other %v), want one on %s containing %q", tc.cfg, byKey, other, tc.key, tc.want)
		}
	}
}

func TestConnectorRejectsABadConfig(t *testing.T) {
	err := (&Connector{}).Start(t.Context(), connect.Config{"connection.url": "postgres://x/db", "insert.mode": "upsert"}, &connecttest.ConnectorContext{T: t})
	var fe *connect.FieldError
	if !errors.As(err, &fe) || fe.Key != "key.columns" {
		t.Fatalf("Start = %v, want a FieldError on key.columns", err)
	}
}

func TestValidateTestsTheConnection(t *testing.T) {
	err := (&Connector{}).Validate(t.Context(), connect.Config{"connection.url": "postgres://sluice:pw@127.0.0.1:1/db?connect_timeout=2", "connection.timeout": "2s"})
	var fe *connect.FieldError
	if !errors.As(err, &fe) || fe.Key != "connection.url" || !strings.Contains(fe.Message, "Cannot connect to 127.0.0.1:1") {
		t.Fatalf("Validate = %v, want a FieldError on connection.url saying it cannot connect", err)
	}
	if strings.Contains(err.Error(), ":pw@") {
		t.Errorf("Validate's message shows the password: %v", err)
	}
	url := connecttest.Env(t, connecttest.EnvPostgres)
	if err := (&Connector{}).Validate(t.Context(), connect.Config{"connection.url": url, "exactly.once": "true", "offsets.table": "sluice_offsets"}); err != nil {
		t.Fatalf("Validate against the test database: %v", err)
	}
}
