package llm

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// A deployment skipped because it cannot carry the request was not tried: it is no
// retry.
func TestSkippedDeploymentIsNoRetry(t *testing.T) {
	t.Parallel()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"message":"down"}}`, http.StatusInternalServerError)
	}))
	defer failing.Close()
	gpt := testModel(t, openAIType, failing.URL)
	gpt.Routing = runtime.Routing{BreakerFailures: 1}
	claude, calls := countingUpstream(t, anthropicType)

	reg := prometheus.NewRegistry()
	c, err := NewClient(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.sleep = func(context.Context, time.Duration) error { return nil }
	req := parseGoldenRequest(t, SurfaceChat, []byte(`{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}]}`))
	req.Candidates = []*runtime.Model{gpt, claude}
	_, _ = c.Serve(context.Background(), httptest.NewRecorder(), req)
	if calls.Load() != 0 {
		t.Fatalf("Anthropic called %d times with n = 2", calls.Load())
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	retries := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "gatehouse_gateway_upstream_retries_total" {
			for _, m := range mf.GetMetric() {
				retries += m.GetCounter().GetValue()
			}
		}
	}
	if want := float64(0); retries != want {
		t.Errorf("retries metric %v, want %v: only the OpenAI deployment was tried, and once", retries, want)
	}
}
