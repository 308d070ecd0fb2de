package plan

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/goldenfile"
)

var savedAt = time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)

// typedPlan is samplePlan with a change whose value is a struct, as the
// drivers make them: its fields are not in sorted order.
func typedPlan() *Plan {
	p := samplePlan()
	p.Changes = append(p.Changes, Change{Driver: "proxy", Kind: "proxy_server", ID: "web/s3", Action: Create,
		After: struct {
			Weight  int    `json:"weight"`
			Address string `json:"address"`
		}{100, "198.51.100.13:8080"}})
	p.Sort()
	return p
}

func sampleSaved() *Saved {
	return NewSaved(samplePlan(), Source{Repo: "ssh://git@git.example.net/site.git", Ref: "main"},
		Observed{By: ObservedAgent, AgentPID: 4242, AgentVersion: "1.4.0", Applied: "1111111111111111111111111111111111111111"}, savedAt)
}

// TestSavedGolden pins the saved plan file (FORMAT.md, "saved plan").
func TestSavedGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteSaved(&b, sampleSaved()); err != nil {
		t.Fatal(err)
	}
	goldenfile.Check(t, filepath.Join("testdata", "saved.golden"), b.Bytes())
}

// TestSavedRoundTrip: a plan read back from its file carries the same
// changes as the typed plan it was made from, and the same fingerprints,
// although its values are now plain JSON values (sorted map keys,
// json.Number).
func TestSavedRoundTrip(t *testing.T) {
	var b bytes.Buffer
	s := NewSaved(typedPlan(), Source{Site: "/srv/site"}, Observed{By: ObservedAgent, AgentPID: 4242}, savedAt)
	if err := WriteSaved(&b, s); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSaved(&b, "plan.json")
	if err != nil {
		t.Fatal(err)
	}
	p := got.Planned()
	if Fingerprint(p) != Fingerprint(typedPlan()) || got.Fingerprint != s.Fingerprint {
		t.Errorf("fingerprint moved across the file: %s, %s, saved %s", Fingerprint(p), Fingerprint(typedPlan()), got.Fingerprint)
	}
	if same, why := SameChanges(typedPlan(), p); !same {
		t.Errorf("the plan read back is not the plan saved: %s", why)
	}
	if StateFingerprint(p) != got.Observed.State {
		t.Errorf("state fingerprint moved across the file")
	}
	if got.Node != "server-1" || got.Commit != samplePlan().Commit || got.Observed.AgentPID != 4242 || !got.Created.Equal(savedAt) ||
		got.Source.Site != "/srv/site" {
		t.Errorf("header: %+v", got)
	}
	if len(p.Actionable()) != 5 {
		t.Errorf("actionable: %d", len(p.Actionable()))
	}
}

// TestFingerprintSeesEveryField: what apply carries out changes the
// fingerprint; what it does not (no-ops, notes, reasons) does not.
func TestFingerprintSeesEveryField(t *testing.T) {
	base := Fingerprint(samplePlan())
	for name, edit := range map[string]func(*Plan){
		"node":   func(p *Plan) { p.Node = "server-2" },
		"commit": func(p *Plan) { p.Commit = "4" + p.Commit[1:] },
		"after":  func(p *Plan) { p.Changes[3].After = map[string]any{"weight": 51} },
		"before": func(p *Plan) { p.Changes[0].Before = "2" },
		"action": func(p *Plan) { p.Changes[0].Action = NoOp },
		"id":     func(p *Plan) { p.Changes[0].ID = "net.ipv4.conf.all.forwarding" },
	} {
		p := samplePlan()
		edit(p)
		if Fingerprint(p) == base {
			t.Errorf("%s: fingerprint unchanged", name)
		}
	}
	p := samplePlan()
	p.Notes, p.Changes[0].Reason = nil, "other words"
	if Fingerprint(p) != base {
		t.Error("notes and reasons changed the fingerprint")
	}
}

// TestReadSavedRefuses: a file that is not a saved plan, a newer format,
// or one edited after it was saved, is refused with ErrSavedPlan and a
// message that says what to do.
func TestReadSavedRefuses(t *testing.T) {
	var b bytes.Buffer
	if err := WriteSaved(&b, sampleSaved()); err != nil {
		t.Fatal(err)
	}
	good := b.String()
	for _, tc := range []struct{ name, file, want string }{
		{"plan --json output", `{"format_version": 1, "node": "gw1", "changes": []}`, "not a gitgw saved plan"},
		{"not JSON", "yes\n", "not JSON"},
		{"newer format", strings.Replace(good, `"format_version": 1,`, `"format_version": 2,`, 1), "format_version 2, this gitgw reads up to 1"},
		{"a change edited", strings.Replace(good, `"after": "1",`, `"after": "0",`, 1), "do not match its fingerprint"},
		{"node edited", strings.Replace(good, `"node": "server-1",`, `"node": "server-2",`, 1), "the file was edited"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.file == good {
				t.Fatal("the edit did not apply")
			}
			_, err := ReadSaved(strings.NewReader(tc.file), "plan.json")
			if !errors.Is(err, ErrSavedPlan) || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "plan.json: ") {
				t.Errorf("err = %v, want ErrSavedPlan naming plan.json and %q", err, tc.want)
			}
		})
	}
}
