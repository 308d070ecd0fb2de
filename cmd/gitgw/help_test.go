package main

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestHelpFiles: each file in help/ is a section of a command (a renamed
// command would silently lose its text), and every command an operator
// sees has examples.
func TestHelpFiles(t *testing.T) {
	root := newRoot()
	names := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		names[helpName(c)] = true
		if !c.Hidden && c.Example == "" && c.Name() != "help" {
			t.Errorf("gitgw %s has no examples: add help/%s.example", c.Name(), helpName(c))
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	files, err := fs.Glob(help, "help/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("help files: %v %v", files, err)
	}
	for _, f := range files {
		name, section, _ := strings.Cut(strings.TrimPrefix(f, "help/"), ".")
		if !names[name] || section != "long" && section != "example" {
			t.Errorf("%s: no command %q, or no section %q (long, example)", f, name, section)
		}
	}
}
