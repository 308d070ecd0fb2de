package main

import (
	"io"
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
	lvl := slog.LevelInfo
	if debug {
		lvl = slog.LevelDebug
	}
	f, err := logs.ParseFormat(logFormat(cmd))
	if err != nil {
		f = logs.Auto // refused by checkLogFormat already
	}
	return logs.New(cmd.ErrOrStderr(), f, lvl)
}

func isTerminal(w io.Writer) bool { return logs.IsTerminal(w) }
