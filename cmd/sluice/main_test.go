package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"version"}, 0, "sluice "},
		{[]string{"help"}, 0, "Commands:"},
		{nil, 0, "worker"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"simulate", "--help"}, 0, "-rate"},
		{[]string{"worker", "-h"}, 0, "-config"},
		{[]string{"dev", "--help"}, 0, "-mongodb"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			code := run(context.Background(), tt.args, &out, &out)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d; output:\n%s", code, tt.code, out.String())
			}
			if !strings.Contains(out.String(), tt.contains) {
				t.Fatalf("output %q does not contain %q", out.String(), tt.contains)
			}
		})
	}
}
