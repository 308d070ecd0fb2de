package loader

import (
	"context"
	"strings"
	"testing"
)

// TestHTTPFetchSubjects: the numeric subjects take a header (but
// source_port) and HAProxy's integer ranges only, without a match; match
// dir is for the string subjects; what is written reaches the view.
func TestHTTPFetchSubjects(t *testing.T) {
	good := `		{when: [{subject: "source_port", values: ["0:1023"]}], deny: 403},
		{when: [{subject: "header_count", header: "host", values: ["2:"]}], deny: 403},
		{when: [{subject: "header_value", header: "content-length", values: [":-1", "7"]}], deny: 403},
		{when: [{subject: "version", values: ["1.0"]}], deny: 403},
		{when: [{subject: "path", match: "dir", values: ["chat"], ignore_case: true}], deny: 403},`
	_, view, err := Load(context.Background(), writeAuthSite(t, "", good), "gw1")
	if err != nil {
		t.Fatal(err)
	}
	rules := view.Services["web"].HTTP.Rules
	if c := rules[2].When[0]; c.Subject != "header_value" || c.Header != "content-length" || strings.Join(c.Values, " ") != ":-1 7" || c.Match != "" {
		t.Errorf("header_value condition %+v", c)
	}
	if c := rules[4].When[0]; c.Match != "dir" || !c.IgnoreCase {
		t.Errorf("path dir condition %+v", c)
	}
	for _, bad := range []string{
		`{when: [{subject: "header_count", values: ["1"]}], deny: 403},`,                                // no header
		`{when: [{subject: "source_port", values: ["low"]}], deny: 403},`,                               // not a range
		`{when: [{subject: "source_port", values: [":"]}], deny: 403},`,                                 // no bound
		`{when: [{subject: "source_port", match: "prefix", values: ["1"]}], deny: 403},`,                // no match on numbers
		`{when: [{subject: "header_value", header: "x", values: ["1"], ignore_case: true}], deny: 403}`, // nor -i
		`{when: [{subject: "source_port"}], deny: 403},`,                                                // no value
	} {
		if _, _, err := Load(context.Background(), writeAuthSite(t, "", "\t\t"+bad), "gw1"); err == nil {
			t.Errorf("%s: loaded", bad)
		}
	}
}
