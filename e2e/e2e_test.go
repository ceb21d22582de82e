// Package e2e_test drives the whole system, built from its real binaries, with the
// official SDKs, against a real Postgres and the control plane's embedded NATS.
package e2e_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// binDir holds the binaries built once for the package.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gatehouse-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	for name, pkg := range map[string]string{
		"controlplane":  "github.com/gatehouse-dev/gatehouse/controlplane/cmd/controlplane",
		"gateway":       "github.com/gatehouse-dev/gatehouse/dataplane/cmd/gateway",
		"demo-upstream": "github.com/gatehouse-dev/gatehouse/e2e/cmd/demo-upstream",
		"dev-idp":       "github.com/gatehouse-dev/gatehouse/e2e/cmd/dev-idp",
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n", name, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// eventually polls fn until it returns nil or d passes.
func eventually(t *testing.T, d time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %v: %v", d, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
