package main

import (
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/gitgw/gitgw/internal/logs"
)

// addLogFormat registers --log-format on the root command, for every
// subcommand.
func addLogFormat(root *cobra.Command) {
	root.PersistentFlags().String("log-format", "auto", "log lines as text or json (auto: text on a terminal, json otherwise, e.g. under systemd)")
}

// checkLogFormat refuses a bad --log-format before any work starts.
func checkLogFormat(cmd *cobra.Command) error {
	_, err := logs.ParseFormat(logFormat(cmd))
	return err
}

func logFormat(cmd *cobra.Command) string {
	s, _ := cmd.Flags().GetString("log-format")
	return s
}

// newLogger is the logger of a command: --log-format, --debug.
func newLogger(cmd *cobra.Command, debug bool) *slog.Logger {
	return logs.ForCommand(cmd.ErrOrStderr(), logFormat(cmd), debug)
}
