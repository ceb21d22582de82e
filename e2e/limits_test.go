package e2e_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/e2e/stack"
)

// TestLimitsAcrossThreeGateways: a key limited to 60 requests per minute, hammered
// through three gateways of one region, gets the region-wide burst (each gateway
// enforces a third of the limit with a 10% burst: 2 at once each, 6 in all) — not three
// times the limit's burst.
func TestLimitsAcrossThreeGateways(t *testing.T) {
	st, _, admin, _ := fleetStack(t, 2)
	ctx := context.Background()
	var key stack.Object
	if err := admin.Do(ctx, "POST", "/orgs/demo/teams/platform/keys", map[string]any{"name": "limited", "limits": map[string]any{"rpm": 60}}, &key); err != nil {
		t.Fatal(err)
	}
	eu := st.Fleet["eu"]
	if len(eu) != 3 {
		t.Fatalf("eu gateways = %d", len(eu))
	}
	// Wait until every gateway has the key and has heard its two peers (heartbeats go
	// out at once after a config change, then every 5 s; under make test's load a
	// gateway has been seen to take more than 15 s to count both).
	eventually(t, 30*time.Second, func() error {
		for _, gw := range eu {
			// GET /v1/models is not rate limited, so this spends nothing.
			if ok, err := stack.KeyWorks(ctx, gw, key.Secret); !ok {
				return fmt.Errorf("%s: %v", gw, err)
			}
			if n, err := stack.Peers(ctx, gw); err != nil || n != 3 {
				return fmt.Errorf("%s counts %d peers (%v)", gw, n, err)
			}
		}
		return nil
	})
	admitted, refused := 0, 0
	for i := range 30 {
		status, code, _ := call(eu[i%3], key.Secret, "demo-chat")
		switch {
		case status == 200:
			admitted++
		case status == 429 && code == "rate_limit_exceeded":
			refused++
		default:
			t.Fatalf("status %d code %q", status, code)
		}
	}
	if admitted < 3 || admitted > 6 {
		t.Fatalf("admitted %d of 30 at once across 3 gateways, want 3..6 (a gateway alone would admit 6)", admitted)
	}
	if admitted+refused != 30 {
		t.Fatalf("admitted %d + refused %d", admitted, refused)
	}
}
