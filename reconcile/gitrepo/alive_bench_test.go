package gitrepo

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/gitremote"
)

// objectCount is `git count-objects -v` of a repository: loose objects and
// their disk use, packed objects and the packs' size, in bytes.
type objectCount struct{ loose, looseBytes, packed, packBytes int64 }

func countObjects(tb testing.TB, dir string) objectCount {
	tb.Helper()
	out, err := gitremote.Git(dir, "count-objects", "-v")
	if err != nil {
		tb.Fatal(err)
	}
	var c objectCount
	for _, l := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(l, ": ")
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "count":
			c.loose = n
		case "size":
			c.looseBytes = n << 10
		case "in-pack":
			c.packed = n
		case "size-pack":
			c.packBytes = n << 10
		}
	}
	return c
}

func (c objectCount) String() string {
	return fmt.Sprintf("%d loose (%d KiB on disk), %d packed (%d KiB)", c.loose, c.looseBytes>>10, c.packed, c.packBytes>>10)
}

// BenchmarkAliveGarbage: what the alive refreshes leave on a real Git
// server (git http-backend): each refresh pushes one signed parentless
// commit on the empty tree, which every alive commit shares, and replaces
// the ref; the commit it replaces is unreferenced. Measured with `git
// count-objects -v` after N refreshes, after the server's plain `git gc`
// (gc.pruneExpire's default, two weeks: the day's garbage stays), after
// the same gc once the objects are older than two weeks (their mtime set
// back), and after `git gc --prune=now`.
func BenchmarkAliveGarbage(b *testing.B) {
	const refreshes = 200
	ctx := testCtx(b)
	r := gitremote.NewBare(b)
	srv := gitremote.StartHTTPS(b, filepath.Dir(r.Dir), "tok")
	token := filepath.Join(b.TempDir(), "token")
	if err := os.WriteFile(token, []byte("tok\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	key, _ := gitremote.SSHSigningKey(b, b.TempDir(), "gw1")
	w, err := NewStatusWriter(ctx, StatusOptions{Node: "gw1", URL: srv.RepoURL(b, r.Dir), TokenFile: token, CAFile: srv.CAFile,
		Dir: filepath.Join(b.TempDir(), "status.git"), SigningKeyFile: key, AliveInterval: time.Minute, AgentVersion: "v-bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write(ctx, statusFiles("gw1", 1), Message{Subject: "apply(gw1): 3a9c1e2", Applied: "3a9c1e2"}); err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if err := w.pushAlive(ctx); err != nil {
		b.Fatal(err)
	}
	r.GC(b)
	base := countObjects(b, r.Dir)
	// A refresh a minute, as an agent makes them (the commit time is in
	// seconds: refreshes within one second would be one object).
	clock := time.Now()
	w.now = func() time.Time { clock = clock.Add(time.Minute); return clock }
	before := srv.Stats()
	b.ResetTimer()
	for i := 0; i < refreshes; i++ {
		if err := w.pushAlive(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	sent := srv.Stats().Sub(before)
	after := countObjects(b, r.Dir)
	unreachable := len(r.Unreachable(b))
	if _, err := gitremote.Git(r.Dir, "gc", "-q"); err != nil {
		b.Fatal(err)
	}
	gcDefault := countObjects(b, r.Dir)
	// A server that packs its garbage (gc.cruftPacks, the default from
	// Git 2.43): the unreferenced commits in one cruft pack until expiry.
	cruftDir := filepath.Join(b.TempDir(), "cruft.git")
	if out, err := exec.Command("cp", "-a", r.Dir, cruftDir).CombinedOutput(); err != nil {
		b.Fatalf("copy the repository: %v: %s", err, out)
	}
	if _, err := gitremote.Git(cruftDir, "gc", "-q", "--cruft"); err != nil {
		b.Fatal(err)
	}
	gcCruft := countObjects(b, cruftDir)
	// Two weeks and a day later: the loose objects' mtime is what
	// gc.pruneExpire compares.
	old := time.Now().Add(-15 * 24 * time.Hour)
	err = filepath.Walk(filepath.Join(r.Dir, "objects"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			err = os.Chtimes(p, old, old)
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := gitremote.Git(r.Dir, "gc", "-q"); err != nil {
		b.Fatal(err)
	}
	gcLater := countObjects(b, r.Dir)
	r.GC(b)
	gcNow := countObjects(b, r.Dir)
	fmt.Printf("alive garbage, %d refreshes of one node's alive ref over https:\n", refreshes)
	fmt.Printf("  before:                          %s\n", base)
	fmt.Printf("  after the refreshes:             %s; %d unreachable objects; %d bytes served\n", after, unreachable, sent.BytesOut)
	fmt.Printf("  after git gc (prune 2 weeks):    %s\n", gcDefault)
	fmt.Printf("  after git gc --cruft:            %s\n", gcCruft)
	fmt.Printf("  the same gc 15 days later:       %s\n", gcLater)
	fmt.Printf("  after git gc --prune=now:        %s\n", gcNow)
	b.ReportMetric(float64(after.loose+after.packed-base.loose-base.packed)/refreshes, "objects/refresh")
	b.ReportMetric(float64(after.looseBytes-base.looseBytes)/refreshes, "disk-B/refresh")
	b.ReportMetric(float64(gcCruft.packBytes-gcDefault.packBytes)/refreshes, "cruft-pack-B/refresh")
	b.ReportMetric(float64(gcLater.loose+gcLater.packed-base.loose-base.packed), "objects-left-after-2-weeks")
	b.ReportMetric(float64(gcNow.loose+gcNow.packed-base.loose-base.packed), "objects-left-after-prune-now")
}
