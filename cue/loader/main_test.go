package loader

import (
	"fmt"
	"os"
	"testing"
)

// childEnv makes the test binary act as the sandbox's child, as the gitgw
// binary does with its hidden subcommand.
const childEnv = "GITGW_TEST_LOADER_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" || len(os.Args) > 1 && os.Args[1] == ChildCommand {
		if err := ServeChild(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testSandbox runs children from the test binary itself.
func testSandbox(t testing.TB) *Sandbox {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return &Sandbox{Command: []string{exe}, Env: []string{childEnv + "=1"}}
}
