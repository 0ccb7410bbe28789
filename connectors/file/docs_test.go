package file

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/connectors/<name>.md from the plugin's declaration")

// TestDocsAreCurrent keeps docs/connectors/file.md what connect.Plugin.Markdown makes of the
// registered plugin.
func TestDocsAreCurrent(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "connectors", Name+".md")
	want := registered(t).Markdown()
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != want {
		t.Fatalf("%s is not what the config declaration generates (%v); run `go test ./connectors/... -update`", path, err)
	}
}
