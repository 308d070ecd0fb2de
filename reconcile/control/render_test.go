package control

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestRender(t *testing.T) {
	st := fixture(t).Status()
	var page, text bytes.Buffer
	if err := RenderPage(&page, st); err != nil {
		t.Fatal(err)
	}
	golden(t, "page.html.golden", page.Bytes())
	if err := RenderText(&text, st); err != nil {
		t.Fatal(err)
	}
	golden(t, "status.txt.golden", text.Bytes())
	js, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "status.json.golden", append(js, '\n'))
	var back Status
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatalf("status JSON does not read back: %v", err)
	}
}
