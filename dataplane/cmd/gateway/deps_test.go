package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyFence keeps the gateway binary free of control-plane code: no Postgres,
// no casbin, no templ, no OIDC login, none of the control plane's modules.
func TestDependencyFence(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "github.com/gatehouse-dev/gatehouse/dataplane/cmd/gateway").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/jackc/pgx",
		"github.com/casbin",
		"github.com/a-h/templ",
		"github.com/coreos/go-oidc",
		"golang.org/x/oauth2",
		"github.com/gatehouse-dev/gatehouse/controlplane",
		"github.com/gatehouse-dev/gatehouse/web",
		"github.com/gatehouse-dev/gatehouse/migrations",
		// Test-only harnesses must not leak into the binary either.
		"github.com/nats-io/nats-server",
		"github.com/openai/openai-go",
		"github.com/anthropics/anthropic-sdk-go",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list returned only %d packages: %s", len(deps), out)
	}
	for _, dep := range deps {
		for _, bad := range forbidden {
			if strings.HasPrefix(dep, bad) {
				t.Errorf("gateway depends on %s", dep)
			}
		}
	}
}
