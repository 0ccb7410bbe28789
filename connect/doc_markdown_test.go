package connect

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

type docTestConfig struct {
	Server   string        `config:"server" required:"true" doc:"Host and port, like a|b."`
	Password string        `config:"password" secret:"true" group:"Security" doc:"Password."`
	Mode     string        `config:"mode" default:"append" enum:"append,upsert" doc:"How rows are written."`
	Batch    int           `config:"batch.size" default:"100" min:"1" max:"5000" importance:"low" doc:"Rows per write."`
	Retries  int           `config:"retries" min:"0" doc:"Attempts."`
	Wait     time.Duration `config:"wait" default:"1s" min:"100ms" max:"1h" group:"Timing" doc:"Pause."`
	Prefix   string        `config:"prefix" default:"" pattern:"[a-z]*" group:"Security" doc:"Prefix\nover two lines."`
}

type exampleConfig struct {
	Server string `config:"server" required:"true" doc:"Host."`
	Port   int    `config:"port" required:"true" doc:"Port."`
}

func (exampleConfig) Example() Config { return Config{"server": "db.local", "port": "5432"} }

func docTestPlugin(cfg any) Plugin {
	return Plugin{Name: "demo-sink", Doc: "Writes rows somewhere.", Config: cfg, New: func() Connector { return &nopSink{} }}
}

func TestMarkdownDescribesEverySetting(t *testing.T) {
	md := docTestPlugin(docTestConfig{}).Markdown()
	for _, want := range []string{
		"# demo-sink\n",
		"Sink connector, `\"connector.class\": \"demo-sink\"`.",
		"Writes rows somewhere.",
		"| Setting | Type | Required | Default | Valid values | Importance | Secret | Description |",
		"| `server` | STRING | yes |  |  | HIGH | no | Host and port, like a\\|b. |",
		"| `mode` | STRING | no | `append` | one of `append`, `upsert` | MEDIUM | no | How rows are written. |",
		"| `batch.size` | INT | no | `100` | `1` to `5000` | LOW | no | Rows per write. |",
		"| `retries` | INT | no |  | at least `0` | MEDIUM | no | Attempts. |",
		"| `password` | PASSWORD | no |  |  | MEDIUM | yes | Password. |",
		"| `prefix` | STRING | no | `\"\"` | matches `[a-z]*` | MEDIUM | no | Prefix<br>over two lines. |",
		"| `wait` | STRING | no | `1s` | a duration such as `500ms` or `30s`, or milliseconds; `100ms` to `1h` | MEDIUM | no | Pause. |",
		", `topics`, converters",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("page lacks %q:\n%s", want, md)
		}
	}
	// Ungrouped settings come first, then each group under its heading in declaration order.
	server, security, password, timing, wait := strings.Index(md, "`server`"), strings.Index(md, "### Security"),
		strings.Index(md, "| `password`"), strings.Index(md, "### Timing"), strings.Index(md, "| `wait`")
	if !(server < security && security < password && password < timing && timing < wait) {
		t.Errorf("settings not grouped in order (server %d, Security %d, password %d, Timing %d, wait %d):\n%s",
			server, security, password, timing, wait, md)
	}
	if strings.Count(md, "| Setting |") != 3 {
		t.Errorf("want one table per group (3):\n%s", md)
	}
}

func TestMarkdownLeavesOutSecretColumnWithoutSecrets(t *testing.T) {
	md := docTestPlugin(exampleConfig{}).Markdown()
	if strings.Contains(md, "Secret") {
		t.Errorf("a page without secret settings has a Secret column:\n%s", md)
	}
	if strings.Contains(md, "###") {
		t.Errorf("a page without groups has group headings:\n%s", md)
	}
}

func TestMarkdownExampleIsACreateRequest(t *testing.T) {
	tests := []struct {
		name string
		cfg  any
		want Config
	}{
		{"placeholders for required settings", docTestConfig{},
			Config{"connector.class": "demo-sink", "tasks.max": "1", "topics": "<topics>", "server": "<server>"}},
		{"the config's own example", exampleConfig{},
			Config{"connector.class": "demo-sink", "tasks.max": "1", "topics": "<topics>", "server": "db.local", "port": "5432"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md := docTestPlugin(tt.cfg).Markdown()
			start := strings.Index(md, "```json\n")
			end := strings.Index(md[start+1:], "```\n")
			if start < 0 || end < 0 {
				t.Fatalf("no JSON example:\n%s", md)
			}
			var req struct {
				Name   string
				Config Config
			}
			if err := json.Unmarshal([]byte(md[start+len("```json\n"):start+1+end]), &req); err != nil {
				t.Fatalf("example is not JSON: %v\n%s", err, md)
			}
			if req.Name != "my-demo-sink" || len(req.Config) != len(tt.want) {
				t.Fatalf("example %+v, want config %v", req, tt.want)
			}
			for k, v := range tt.want {
				if req.Config[k] != v {
					t.Errorf("example %s = %q, want %q", k, req.Config[k], v)
				}
			}
		})
	}
	if err := SpecOf(exampleConfig{}).Validate(docTestPlugin(exampleConfig{}).ExampleConfig()); err != nil {
		t.Errorf("example config does not validate: %v", err)
	}
}

func TestMarkdownOfSourceHasNoTopics(t *testing.T) {
	p := Plugin{Name: "gen", Config: exampleConfig{}, New: func() Connector { return &nopSource{} }}
	md := p.Markdown()
	if !strings.Contains(md, "Source connector") || strings.Contains(md, "topics") {
		t.Errorf("source page:\n%s", md)
	}
}

func TestShortDuration(t *testing.T) {
	tests := map[time.Duration]string{time.Hour: "1h", 2 * time.Minute: "2m", 90 * time.Minute: "1h30m",
		90 * time.Second: "1m30s", 1500 * time.Millisecond: "1.5s", 10 * time.Millisecond: "10ms"}
	for d, want := range tests {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestCodeSpanFences(t *testing.T) {
	tests := map[string]string{"a.b": "`a.b`", "a`b": "`` a`b ``", "`x": "`` `x ``"}
	for in, want := range tests {
		if got := code(in); got != want {
			t.Errorf("code(%q) = %q, want %q", in, got, want)
		}
	}
}
