package chaos

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCheckerImportsNoSluiceCode: the checker reads the stores with their own clients only, so
// that no bug in Sluice's code can hide itself from the check.
func TestCheckerImportsNoSluiceCode(t *testing.T) {
	const self = "github.com/sluicehq/sluice/chaos/check"
	out, err := exec.Command("go", "list", "-deps", self).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", self, err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/sluicehq/sluice") && pkg != self {
			t.Errorf("the checker depends on %s", pkg)
		}
	}
}
