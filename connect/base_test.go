package connect

import (
	"strings"
	"testing"
)

type baseTestConfig struct {
	Topic string `config:"topic" required:"true" doc:"Topic."`
	Size  int    `config:"size" default:"3" min:"1" doc:"Size."`
}

func TestTypedBaseDecodesOnceAndHandsTasksTheSettings(t *testing.T) {
	var b TypedBase[baseTestConfig]
	if err := b.Start(t.Context(), Config{"topic": "t", "size": "0"}, nil); err == nil || !strings.Contains(err.Error(), "size") {
		t.Fatalf("Start with size 0: %v, want an error naming size", err)
	}
	cfg := Config{"topic": "t", "size": "5"}
	if err := b.Start(t.Context(), cfg, nil); err != nil {
		t.Fatal(err)
	}
	if b.Typed != (baseTestConfig{Topic: "t", Size: 5}) {
		t.Errorf("Typed = %+v", b.Typed)
	}
	tasks, err := b.TaskConfigs(2)
	if err != nil || len(tasks) != 2 || tasks[1]["size"] != "5" {
		t.Fatalf("TaskConfigs(2) = %v, %v", tasks, err)
	}
	tasks[0]["topic"] = "changed"
	if b.Config["topic"] != "t" {
		t.Error("a task's configuration shares its map with the connector's")
	}
}

func TestFieldProblemsPutEachMessageOnItsKey(t *testing.T) {
	var p FieldProblems
	if p.Err() != nil {
		t.Fatal("no problems should be nil")
	}
	p.Addf("a", "Invalid value %d", 3)
	p.Add(nil)
	p.Add(&FieldError{Key: "b", Message: "bad"})
	byKey, other := FieldErrors(p.Err())
	if len(other) != 0 || len(byKey) != 2 || byKey["a"][0] != "Invalid value 3" || byKey["b"][0] != "bad" {
		t.Errorf("FieldErrors = %v, %v", byKey, other)
	}
}
