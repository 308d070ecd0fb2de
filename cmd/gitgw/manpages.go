package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newManpagesCmd writes one man page per command, generated from the same
// cobra tree as --help, so the pages the Debian package ships can never
// drift from the flags. Hidden: it is a build step (`make deb`), not
// something an operator runs.
func newManpagesCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "manpages DIR",
		Short:  "Write the man pages (section 1) into DIR",
		Args:   cobra.ExactArgs(1),
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return fmt.Errorf("manpages: %w", err)
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			hdr := &doc.GenManHeader{Title: "GITGW", Section: "1", Source: "gitgw " + version, Manual: "gitgw manual"}
			if err := doc.GenManTree(root, hdr, args[0]); err != nil {
				return fmt.Errorf("manpages: write %s: %w", args[0], err)
			}
			return nil
		},
	}
}
