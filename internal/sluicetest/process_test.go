package sluicetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The binary directories of exited test processes are removed; those of live ones, and
// anything else, are kept.
func TestRemoveStaleBinaries(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Skipf("no process to outlive: %v", err)
	}
	dirs := map[string]bool{ // name -> kept
		fmt.Sprintf("%s%d-123", binaryDirPrefix, exited.Process.Pid): false,
		fmt.Sprintf("%s%d-456", binaryDirPrefix, os.Getpid()):        true,
		binaryDirPrefix + "notapid":                                  true,
		"something-else":                                             true,
	}
	for name := range dirs {
		if err := os.Mkdir(filepath.Join(tmp, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	removeStaleBinaries()
	for name, kept := range dirs {
		_, err := os.Stat(filepath.Join(tmp, name))
		if exists := err == nil; exists != kept {
			t.Errorf("%s: exists %v, want %v", name, exists, kept)
		}
	}
}
