package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gitgw/gitgw/internal/flagsuggest"
)

// suggestFlags makes "unknown flag: --nod" say which flag was meant, as
// cobra already does for misspelt commands.
func suggestFlags(root *cobra.Command) {
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		name, ok := strings.CutPrefix(err.Error(), "unknown flag: --")
		if !ok {
			return err
		}
		if best := flagsuggest.Closest(cmd.Flags(), name); best != "" {
			return fmt.Errorf("%w\n\nDid you mean --%s? (gitgw %s --help lists the flags)", err, best, cmd.Name())
		}
		return fmt.Errorf("%w (gitgw %s --help lists the flags)", err, cmd.Name())
	})
}
