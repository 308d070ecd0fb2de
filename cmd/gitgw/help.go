package main

import (
	"embed"
	"strings"

	"github.com/spf13/cobra"
)

// help holds the commands' long descriptions and examples, one file per
// command and section: help/NAME.long and help/NAME.example, NAME being
// the command's words after gitgw joined by _ (gitgw itself for the root).
// They are --help's text and the man pages'.
//
//go:embed help
var help embed.FS

// addHelp gives c and its subcommands their texts from help.
func addHelp(c *cobra.Command) {
	for _, s := range c.Commands() {
		addHelp(s)
	}
	if s, ok := helpText(c, "long"); ok {
		c.Long = s
	}
	if s, ok := helpText(c, "example"); ok {
		c.Example = s
	}
}

func helpText(c *cobra.Command, section string) (string, bool) {
	b, err := help.ReadFile("help/" + helpName(c) + "." + section)
	return strings.TrimSuffix(string(b), "\n"), err == nil
}

func helpName(c *cobra.Command) string {
	return strings.ReplaceAll(strings.TrimPrefix(c.CommandPath(), "gitgw "), " ", "_")
}
