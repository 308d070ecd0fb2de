package scan

import (
	"context"
	"log/slog"
)

type thing struct{ log *slog.Logger }

func newLogger() *slog.Logger { return slog.Default() }

func calls(ctx context.Context, log *slog.Logger, o struct{ Logger *slog.Logger }, th thing, key string,
	l2 *slog.Logger) {
	l := log.With("a_with", 1)
	log.Info("x", "b_info", 2)
	log.Warn("x",
		"c_multiline", 3)
	log.Error("x", slog.String("d_attr", "v"))
	log.LogAttrs(ctx, slog.LevelInfo, "x", slog.Int("e_logattrs", 5))
	log.InfoContext(ctx, "x", "f_ctx", 6)
	log.With("g_chain", 7).Debug("x")
	newLogger().Info("x", "h_logger", 8)
	o.Logger.Info("x")
	th.log.Info("x", "i_field", 9)
	l.Info("not a logger's name: not scanned", "zz", 0)
	log.Info("x", key, 10)
	args := []any{"zz", 1}
	log.Info("x", args...)
}
