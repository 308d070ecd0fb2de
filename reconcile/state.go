package reconcile

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/internal/statefile"
)

// LastGood is the last revision applied successfully, persisted in the state
// dir so that a restarted agent facing an invalid head still knows what to
// keep running.
type LastGood struct {
	Commit    string     `json:"commit"`
	AppliedAt time.Time  `json:"applied_at"`
	Desired   *spec.Node `json:"desired"`
}

const lastGoodFile = "last-applied.json"

// LoadLastGood reads the last good state from dir; (nil, nil) when there
// is none yet. A file that is empty, truncated or not a last good state
// (no commit, no desired state) is moved aside and reported with an error
// wrapping statefile.ErrCorrupt: the caller carries on without it.
func LoadLastGood(dir string) (*LastGood, error) {
	path := filepath.Join(dir, lastGoodFile)
	var lg LastGood
	found, err := statefile.Load(path, func(b []byte) error {
		if err := json.Unmarshal(b, &lg); err != nil {
			return err
		}
		if lg.Commit == "" || lg.Desired == nil {
			return fmt.Errorf("no commit or no desired state")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reconcile: last good state: %w", err)
	}
	if !found {
		return nil, nil
	}
	return &lg, nil
}

// Save writes the state atomically and durably (statefile.Write).
func (lg *LastGood) Save(dir string) error {
	b, err := json.MarshalIndent(lg, "", "  ")
	if err != nil {
		return fmt.Errorf("reconcile: encode last good state: %w", err)
	}
	return statefile.Write(filepath.Join(dir, lastGoodFile), b, 0o600)
}

// logCorrupt is the one loud line for a state file found corrupt and moved
// aside: the agent goes on from what it can still trust, and the operator
// must learn that it did (the error names the file and where it went).
func logCorrupt(log *slog.Logger, what, instead string, err error) {
	log.Error("state file corrupt; moved aside, "+instead, "file", what, "err", err)
}
