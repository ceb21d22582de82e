package e2e_test

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/e2e/stack"
)

// BenchmarkRevocationPropagation measures how long a key revocation takes to be
// enforced on every gateway: 2 regions × 2 gateways, real control plane and NATS.
// Each round mints a key, waits until every gateway accepts it, revokes it through
// the admin API and polls all gateways every 2 ms until each refuses it; the round's
// time is the slowest gateway's. Reported: p50, p99 and max over the rounds.
//
//	go test -run '^$' -bench RevocationPropagation ./e2e/
func BenchmarkRevocationPropagation(b *testing.B) {
	st, _, admin, _ := fleetStack(b, 1)
	ctx := context.Background()
	const rounds = 50
	var gateways []string
	for _, gws := range st.Fleet {
		gateways = append(gateways, gws...)
	}
	models := func(gw, key string) int {
		req, _ := http.NewRequest("GET", gw+"/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	var roundMs []float64
	b.ResetTimer()
	for range b.N {
		for range rounds {
			var key stack.Object
			if err := admin.Do(ctx, "POST", "/orgs/demo/teams/platform/keys", map[string]any{"name": "bench"}, &key); err != nil {
				b.Fatal(err)
			}
			for _, gw := range gateways {
				deadline := time.Now().Add(10 * time.Second)
				for models(gw, key.Secret) != 200 {
					if time.Now().After(deadline) {
						b.Fatalf("%s never accepted the key", gw)
					}
					time.Sleep(2 * time.Millisecond)
				}
			}
			start := time.Now()
			if err := admin.Do(ctx, "POST", "/orgs/demo/teams/platform/keys/"+key.ID+"/revoke", nil, nil); err != nil {
				b.Fatal(err)
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			var slowest time.Duration
			for _, gw := range gateways {
				wg.Add(1)
				go func() {
					defer wg.Done()
					deadline := start.Add(10 * time.Second)
					for models(gw, key.Secret) != http.StatusUnauthorized {
						if time.Now().After(deadline) {
							return
						}
						time.Sleep(2 * time.Millisecond)
					}
					d := time.Since(start)
					mu.Lock()
					slowest = max(slowest, d)
					mu.Unlock()
				}()
			}
			wg.Wait()
			roundMs = append(roundMs, float64(slowest.Microseconds())/1000)
		}
	}
	b.StopTimer()
	slices.Sort(roundMs)
	q := func(p float64) float64 { return roundMs[min(len(roundMs)-1, int(p*float64(len(roundMs))))] }
	b.ReportMetric(q(0.50), "p50_ms")
	b.ReportMetric(q(0.99), "p99_ms")
	b.ReportMetric(roundMs[len(roundMs)-1], "max_ms")
	b.ReportMetric(float64(len(gateways)), "gateways")
}
