package gitrepo

import (
	"regexp"
	"strings"
)

// Trailer keys gitgw writes on its status commits.
const (
	TrailerNode    = "Gitgw-Node"
	TrailerDesired = "Gitgw-Desired"
	TrailerApplied = "Gitgw-Applied"
	TrailerDrift   = "Gitgw-Drift"
)

// Trailer is one "Key: value" line at the end of a commit message.
type Trailer struct {
	Key, Value string
}

// Message is a commit message: a subject that says what happened, an
// optional body, and trailers. The node trailer is added by the writer.
type Message struct {
	Subject string
	Body    string
	// Desired, Applied and Drift fill the Gitgw-Desired, Gitgw-Applied and
	// Gitgw-Drift trailers when not empty (commits, and a drift summary
	// such as "2 open").
	Desired, Applied, Drift string
	// Trailers are written after the gitgw ones, in order.
	Trailers []Trailer
}

// format renders m as a Git commit message, node's trailer first.
func (m Message) format(node string) string {
	var b strings.Builder
	subject := strings.TrimSpace(strings.ReplaceAll(m.Subject, "\n", " "))
	if subject == "" {
		subject = "status(" + node + ")"
	}
	b.WriteString(subject)
	b.WriteString("\n")
	if body := strings.TrimSpace(m.Body); body != "" {
		b.WriteString("\n")
		b.WriteString(body)
		b.WriteString("\n")
	}
	var trailers []Trailer
	if node != "" {
		trailers = append(trailers, Trailer{TrailerNode, node})
	}
	for _, t := range []Trailer{{TrailerDesired, m.Desired}, {TrailerApplied, m.Applied}, {TrailerDrift, m.Drift}} {
		if t.Value != "" {
			trailers = append(trailers, t)
		}
	}
	trailers = append(trailers, m.Trailers...)
	if len(trailers) > 0 {
		b.WriteString("\n")
		for _, t := range trailers {
			b.WriteString(t.Key)
			b.WriteString(": ")
			b.WriteString(strings.TrimSpace(strings.ReplaceAll(t.Value, "\n", " ")))
			b.WriteString("\n")
		}
	}
	return b.String()
}

// Trailers are the trailers of a commit message by key, values in order.
type Trailers map[string][]string

// Get is the last value of key, or "".
func (t Trailers) Get(key string) string {
	v := t[key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

var trailerLine = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9-]*):\s*(.*)$`)

// CommitTrailers parses the trailers of a commit message: the lines of its
// last paragraph, when that paragraph is not the subject and every line of
// it is "Key: value" (or a continuation indented by whitespace).
func CommitTrailers(message string) Trailers {
	lines := strings.Split(strings.TrimRight(message, "\n \t"), "\n")
	end := len(lines)
	start := end
	for start > 0 && strings.TrimSpace(lines[start-1]) != "" {
		start--
	}
	if start == 0 || start == end {
		// No blank line: the only paragraph is the subject.
		return Trailers{}
	}
	out := Trailers{}
	var lastKey string
	for _, l := range lines[start:end] {
		if (strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")) && lastKey != "" {
			vals := out[lastKey]
			vals[len(vals)-1] += " " + strings.TrimSpace(l)
			continue
		}
		m := trailerLine.FindStringSubmatch(l)
		if m == nil {
			return Trailers{}
		}
		lastKey = m[1]
		out[lastKey] = append(out[lastKey], strings.TrimSpace(m[2]))
	}
	return out
}

// subjectOf is the first line of a commit message.
func subjectOf(message string) string {
	s, _, _ := strings.Cut(message, "\n")
	return strings.TrimSpace(s)
}
