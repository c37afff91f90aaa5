package contract

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/bkcache/bkcache/internal/config"
)

// actionMetadata is the part of action.yml the runner reads.
type actionMetadata struct {
	Inputs map[string]struct {
		Description string `yaml:"description"`
		Default     string `yaml:"default"`
	} `yaml:"inputs"`
	Runs map[string]string `yaml:"runs"`
}

func actionYML(t *testing.T, root string) actionMetadata {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var m actionMetadata
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("action.yml: %v", err)
	}
	return m
}

// TestActionYMLInputs keeps action.yml and the input parser in step both
// ways: every input the code reads is declared (the runner passes only
// declared inputs' defaults, and users read action.yml), and every
// declared input is read.
func TestActionYMLInputs(t *testing.T) {
	m := actionYML(t, moduleRoot(t))
	for _, name := range config.Inputs {
		in, ok := m.Inputs[name]
		if !ok {
			t.Errorf("the code reads input %q, which action.yml does not declare", name)
			continue
		}
		if in.Description == "" {
			t.Errorf("input %q has no description", name)
		}
	}
	for name := range m.Inputs {
		if !slices.Contains(config.Inputs, name) {
			t.Errorf("action.yml declares input %q, which the code never reads", name)
		}
	}
}

// TestActionYMLEntryPoints: main and post are separate scripts, so the
// post step can never take itself for the main step and build.
func TestActionYMLEntryPoints(t *testing.T) {
	root := moduleRoot(t)
	runs := actionYML(t, root).Runs
	if runs["main"] != "dist/main.js" || runs["post"] != "dist/post.js" || runs["post-if"] != "always()" {
		t.Errorf("runs = %v, want main dist/main.js, post dist/post.js, post-if always()", runs)
	}
	for _, f := range []string{runs["main"], runs["post"]} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("entry point: %v", err)
		}
	}
}
