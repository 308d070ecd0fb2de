package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Site is the plans of every node of a site at one commit: what a merge
// request would do to the whole fleet (`gitgw plan --all-nodes`).
type Site struct {
	Commit string
	// Plans are sorted by node.
	Plans []*Plan
	// WaitsFor lists, by node, the nodes it waits for before it applies
	// (the rollout order: pair-aware rollout and waves).
	WaitsFor map[string][]string
}

// HasChanges reports whether any node's plan changes something.
func (s *Site) HasChanges() bool {
	for _, p := range s.Plans {
		if p.HasChanges() {
			return true
		}
	}
	return false
}

// summaryHeader is the summary table's columns, in both renderings.
var summaryHeader = []string{"node", "create", "update", "delete", "unchanged", "pending", "waits for"}

func (s *Site) summaryRows() [][]string {
	var rows [][]string
	for _, p := range s.Plans {
		c := p.Count()
		waits := strings.Join(s.WaitsFor[p.Node], ", ")
		if waits == "" {
			waits = "-"
		}
		rows = append(rows, []string{p.Node, fmt.Sprint(c.Create), fmt.Sprint(c.Update), fmt.Sprint(c.Delete),
			fmt.Sprint(c.NoOp), fmt.Sprint(c.Pending), waits})
	}
	return rows
}

// siteTotals is the closing line of both renderings.
func (s *Site) totals() string {
	var t Counts
	changed := 0
	for _, p := range s.Plans {
		c := p.Count()
		t.Create += c.Create
		t.Update += c.Update
		t.Delete += c.Delete
		if p.HasChanges() {
			changed++
		}
	}
	if changed == 0 {
		return fmt.Sprintf("No changes on any of %d nodes.", len(s.Plans))
	}
	return fmt.Sprintf("%d of %d nodes change: %d to create, %d to update, %d to delete.", changed, len(s.Plans), t.Create, t.Update, t.Delete)
}

// WriteSiteText renders every node's plan as WriteText does, one after the
// other, then a summary table with one row per node.
func WriteSiteText(w io.Writer, s *Site, o TextOptions) error {
	bw := &errWriter{w: w}
	for _, p := range s.Plans {
		var b bytes.Buffer
		if err := WriteText(&b, p, o); err != nil {
			return err
		}
		bw.printf("%s\n", b.String())
	}
	rows := append([][]string{summaryHeader}, s.summaryRows()...)
	width := make([]int, len(summaryHeader))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	bw.printf("Summary")
	if s.Commit != "" {
		bw.printf(" at %s", shortCommit(s.Commit))
	}
	bw.printf(":\n\n")
	for _, r := range rows {
		var line strings.Builder
		for i, c := range r {
			pad := width[i] - len([]rune(c))
			if i > 0 && i < len(r)-1 {
				// Counts align right.
				line.WriteString(strings.Repeat(" ", pad) + c + "  ")
			} else if i == len(r)-1 {
				line.WriteString(c)
			} else {
				line.WriteString(c + strings.Repeat(" ", pad) + "  ")
			}
		}
		bw.printf("  %s\n", line.String())
	}
	bw.printf("\n%s\n", s.totals())
	return bw.err
}

// MarkdownOptions tune the review-comment rendering.
type MarkdownOptions struct {
	// MaxBytes, when positive, bounds the comment (GitHub refuses one over
	// 65,536 characters): the summary table is always whole; the plans of
	// the nodes that do not fit are left out, with a line that says how
	// many and where to read them.
	MaxBytes int
}

// WriteSiteMarkdown renders the site's plans for a review comment: the
// summary table first (what a reviewer reads), then a heading per node with
// its plan as text in a fenced block. Nodes without changes are listed in
// the table only, so that a comment on a large site stays short.
func WriteSiteMarkdown(w io.Writer, s *Site, o MarkdownOptions) error {
	var head bytes.Buffer
	bw := &errWriter{w: &head}
	bw.printf("## gitgw plan")
	if s.Commit != "" {
		bw.printf(" at `%s`", shortCommit(s.Commit))
	}
	bw.printf("\n\n%s\n\n", s.totals())
	bw.printf("| %s |\n", strings.Join(summaryHeader, " | "))
	bw.printf("|:--|--:|--:|--:|--:|--:|:--|\n")
	for _, r := range s.summaryRows() {
		for i := range r {
			r[i] = mdCell(r[i])
		}
		bw.printf("| %s |\n", strings.Join(r, " | "))
	}
	var sections []string
	for _, p := range s.Plans {
		if !p.HasChanges() {
			continue
		}
		var b bytes.Buffer
		if err := WriteText(&b, p, TextOptions{}); err != nil {
			return err
		}
		sections = append(sections, fmt.Sprintf("\n### %s\n\n%s\n%s%s\n", mdCell(p.Node), fence(b.String()), b.String(), fence(b.String())))
	}
	size := head.Len()
	for i, sec := range sections {
		// Room for the closing line about what was left out.
		const reserve = 200
		if o.MaxBytes > 0 && size+len(sec)+reserve > o.MaxBytes {
			nodes := "nodes that change"
			if len(sections)-i == 1 {
				nodes = "node that changes"
			}
			bw.printf("\n_Left out to keep this comment under %d bytes: the plans of %d more %s. `gitgw plan --all-nodes --observed status` prints them all._\n",
				o.MaxBytes, len(sections)-i, nodes)
			break
		}
		bw.printf("%s", sec)
		size += len(sec)
	}
	if bw.err != nil {
		return bw.err
	}
	_, err := head.WriteTo(w)
	return err
}

// fence is a code fence longer than any run of backticks in text, so that
// a value carrying backticks cannot close the block.
func fence(text string) string {
	longest, run := 0, 0
	for _, r := range text {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return strings.Repeat("`", max(3, longest+1))
}

// mdCell escapes what would break a table cell or start markup.
func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}

// SiteDocument is the versioned JSON form of a site's plans.
type SiteDocument struct {
	FormatVersion int        `json:"format_version"`
	Commit        string     `json:"commit,omitempty"`
	Changes       bool       `json:"changes"`
	Nodes         []Document `json:"nodes"`
	// WaitsFor by node, for the nodes that wait for another.
	WaitsFor map[string][]string `json:"waits_for,omitempty"`
}

// WriteSiteJSON renders the site's plans as one JSON document: each node's
// plan as WriteJSON's document, in node order.
func WriteSiteJSON(w io.Writer, s *Site) error {
	doc := SiteDocument{FormatVersion: SchemaVersion, Commit: s.Commit, Changes: s.HasChanges(), Nodes: []Document{}, WaitsFor: s.WaitsFor}
	for _, p := range s.Plans {
		doc.Nodes = append(doc.Nodes, document(p))
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("plan: encode json: %w", err)
	}
	return nil
}
