package loader

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// secret is the content of a root-only file outside the site: no error,
// whatever the site tries, may carry it.
const secret = "TOPSECRET-7f3a9c"

// baseSite is a valid site with one node.
const baseSite = `package site

nodes: gw1: interfaces: eth0: addresses: ["203.0.113.11/24"]
`

// writeTree writes files (slash paths relative to dir; a value starting
// with "->" makes a symlink to the rest).
func writeTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(body, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConfinedToSite tries each way out of the site directory: a symlink
// to a secret file (as a CUE file, as an embedded file, as a directory of
// an imported package, as cue.mod/pkg), @embed of a parent or absolute
// path, @embed without a symlink, an import from outside the site's
// module. Every load is refused with an error that names the site's file,
// and the secret's content appears in none of them, whether the whole site
// or one node's part is evaluated, or the site policies.
func TestConfinedToSite(t *testing.T) {
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{
		"secret":          secret + "\n",
		"secret.cue":      "package site\n\nsite: name: \"" + secret + " \"\n",
		"pkg/p.cue":       "package p\n\nx: \"" + secret + " \"\n",
		"other/other.cue": "package other\n\nx: \"" + secret + " \"\n",
	})
	for _, f := range []string{"secret", "secret.cue", "pkg/p.cue"} {
		if err := os.Chmod(filepath.Join(outside, f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mod := "module: \"example.net/t@v0\"\nlanguage: version: \"v0.17.0\"\n"
	embedSite := func(file string) string {
		return "@extern(embed)\n\npackage site\n\nnodes: gw1: interfaces: eth0: addresses: [\"203.0.113.11/24\"]\nsite: name: _ @embed(file=\"" + file + "\", type=text)\n"
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string // in the error
	}{
		{"symlinked CUE file", map[string]string{
			"site.cue": baseSite,
			"leak.cue": "->" + filepath.Join(outside, "secret.cue"),
		}, "leak.cue:1:1: a site may not contain symlinks"},
		{"symlinked non-CUE file, embedded", map[string]string{
			"site.cue":   embedSite("data.txt"),
			"data.txt":   "->" + filepath.Join(outside, "secret"),
			"README.txt": "a site",
		}, "data.txt:1:1: a site may not contain symlinks"},
		{"embed of a file of the site", map[string]string{
			"site.cue": embedSite("data.txt"),
			"data.txt": "a file of the site\n",
		}, "site.cue:1:1: @extern is not allowed in a site"},
		{"embed of a parent path", map[string]string{
			"site.cue": embedSite("../../secret"),
		}, "site.cue:1:1: @extern is not allowed in a site"},
		{"embed of an absolute path", map[string]string{
			"site.cue": embedSite(filepath.Join(outside, "secret")),
		}, "site.cue:1:1: @extern is not allowed in a site"},
		{"symlinked package directory", map[string]string{
			"site.cue": "package site\n\nimport \"example.net/t/pkg:p\"\n\nnodes: gw1: interfaces: eth0: addresses: [\"203.0.113.11/24\"]\nsite: name: p.x\n",
			"pkg":      "->" + filepath.Join(outside, "pkg"),
		}, "pkg:1:1: a site may not contain symlinks"},
		{"symlinked cue.mod/pkg", map[string]string{
			"site.cue":                  "package site\n\nimport \"other.example/p\"\n\nnodes: gw1: interfaces: eth0: addresses: [\"203.0.113.11/24\"]\nsite: name: p.x\n",
			"cue.mod/pkg/other.example": "->" + outside,
		}, "cue.mod/pkg/other.example:1:1: a site may not contain symlinks"},
		{"import from outside the module", map[string]string{
			"site.cue": "package site\n\nimport \"other.example/other\"\n\nnodes: gw1: interfaces: eth0: addresses: [\"203.0.113.11/24\"]\nsite: name: other.x\n",
			"cue.mod/pkg/other.example/other/other.cue": "package other\n\nx: \"" + secret + " \"\n",
		}, `site.cue:3:8: import "other.example/other" is not allowed`},
		{"tool package", map[string]string{
			"site.cue": "package site\n\nimport \"tool/file\"\n\nnodes: gw1: interfaces: eth0: addresses: [\"203.0.113.11/24\"]\n_r: file.Read & {filename: \"" + filepath.Join(outside, "secret") + "\"}\nsite: name: _r.contents\n",
		}, `site.cue:3:8: import "tool/file" is not allowed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.files["cue.mod/module.cue"] = mod
			writeTree(t, dir, tc.files)
			ctx := context.Background()
			check := func(what string, err error) {
				t.Helper()
				if err == nil {
					t.Errorf("%s: loaded; want refused", what)
					return
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("%s: the error carries the secret:\n%v", what, err)
				}
				if !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s: error\n%v\nwant it to contain %q", what, err, tc.want)
				}
			}
			_, _, err := Load(ctx, dir, "")
			check("site", err)
			_, _, err = LoadWith(ctx, dir, "gw1", Options{Scope: ScopeNode})
			check("node scope", err)
			writeTree(t, dir, map[string]string{"policies/org.cue": "package site\n\nsite: name: string\n"})
			_, err = SitePolicies(ctx, dir)
			check("site policies", err)
		})
	}
}

// TestAllowedImports: the standard library, the schema and the site's own
// packages stay importable.
func TestAllowedImports(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"cue.mod/module.cue": "module: \"example.net/t@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue": `package site

import (
	"strings"
	"gitgw.dev/schema"
	"example.net/t/names"
)

nodes: gw1: schema.#Node & {interfaces: eth0: addresses: ["203.0.113.11/24"]}
site: name: strings.ToLower(names.site)
`,
		"names/names.cue": "package names\n\nsite: \"LAB\"\n",
	})
	s, v, err := Load(context.Background(), dir, "gw1")
	if err != nil {
		t.Fatal(err)
	}
	if v.Site.Name != "lab" || len(s.Nodes) != 1 {
		t.Errorf("site name %q, nodes %v", v.Site.Name, s.Nodes)
	}
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSchemaNotExtended: files a site puts under the schema's import path
// (cue.mod/usr, gen or pkg, which CUE merges) are not evaluated: a
// definition they would open stays closed.
func TestSchemaNotExtended(t *testing.T) {
	for _, local := range []string{"usr", "gen", "pkg"} {
		dir := t.TempDir()
		writeTree(t, dir, map[string]string{
			"cue.mod/module.cue":                              "module: \"example.net/t@v0\"\nlanguage: version: \"v0.17.0\"\n",
			"cue.mod/" + local + "/gitgw.dev/schema/open.cue": "package schema\n\n#Node: {backdoor?: string}\n",
			"site.cue": "package site\n\nnodes: gw1: {backdoor: \"x\", interfaces: eth0: addresses: [\"203.0.113.11/24\"]}\n",
		})
		_, _, err := Load(context.Background(), dir, "gw1")
		if errs, ok := AsErrors(err); !ok || !strings.Contains(errs.Error(), "site.cue:3:14: nodes.gw1.backdoor: field not allowed") {
			t.Errorf("cue.mod/%s: err = %v", local, err)
		}
	}
}
