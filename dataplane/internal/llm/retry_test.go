package llm

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// failing answers 500 for its first n calls, then a completion.
func failing(t *testing.T, n int64, header http.Header) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= n {
			for k, v := range header {
				w.Header()[k] = v
			}
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"error":{"message":"boom"}}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"c","object":"chat.completion","created":1,"model":"x","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func chatRequest(t *testing.T, models ...*runtime.Model) *Request {
	t.Helper()
	chat, err := ParseChatRequest([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	return &Request{Surface: SurfaceChat, Chat: chat, Candidates: models}
}

func TestRetryBackoffSchedule(t *testing.T) {
	t.Parallel()
	srv, calls := failing(t, 4, http.Header{"Retry-After-Ms": {"350"}})
	c := testClient(t)
	var waits []time.Duration
	c.sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	c.jitter = func(d time.Duration) time.Duration { return d } // the top of each full-jitter range
	m := testModel(t, openAIType, srv.URL)
	m.Routing = runtime.Routing{MaxRetries: 5, RetryBackoff: 100 * time.Millisecond, BreakerFailures: 100}
	rec := httptest.NewRecorder()
	res, err := c.Serve(context.Background(), rec, chatRequest(t, m))
	if err != nil || rec.Code != 200 || calls.Load() != 5 || res.Retries != 4 {
		t.Fatalf("err %v, status %d, calls %d, retries %d", err, rec.Code, calls.Load(), res.Retries)
	}
	// 100ms·2^n, but never below the provider's Retry-After.
	want := []time.Duration{350 * time.Millisecond, 350 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}
	if diff := cmp.Diff(want, waits); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
}

func TestFailoverToAnotherDeploymentIsImmediate(t *testing.T) {
	t.Parallel()
	bad, badCalls := failing(t, 100, nil)
	good, goodCalls := failing(t, 0, nil)
	c := testClient(t)
	c.sleep = func(context.Context, time.Duration) error {
		t.Error("slept before trying another deployment")
		return nil
	}
	m := testModel(t, openAIType, bad.URL)
	other := testModel(t, openAIType, good.URL).Deployments[0]
	other.ID, other.StateKey = "d2", t.Name()+"/d2"
	m.Deployments = append(m.Deployments, other)
	rec := httptest.NewRecorder()
	res, err := c.Serve(context.Background(), rec, chatRequest(t, m))
	if err != nil || rec.Code != 200 || badCalls.Load() != 1 || goodCalls.Load() != 1 || res.Deployment.ID != "d2" || res.Retries != 1 {
		t.Fatalf("err %v, status %d, calls %d/%d, result %+v", err, rec.Code, badCalls.Load(), goodCalls.Load(), res)
	}
}

func TestLinkLocalUpstreamIsRefusedAtDialTime(t *testing.T) {
	t.Parallel()
	good, goodCalls := failing(t, 0, nil)
	c := testClient(t)
	c.sleep = func(context.Context, time.Duration) error {
		t.Error("retried an address that is refused")
		return nil
	}
	// A name registered as harmless that now resolves to the metadata service looks
	// like this to the dialer.
	m := testModel(t, openAIType, "http://169.254.169.254/v1")
	res, err := c.Serve(context.Background(), httptest.NewRecorder(), chatRequest(t, m))
	if !errors.Is(err, ErrUpstreamAddrRefused) || res.Retries != 0 {
		t.Fatalf("err %v, result %+v: want ErrUpstreamAddrRefused without retries", err, res)
	}
	// Another deployment of the model still serves.
	other := testModel(t, openAIType, good.URL).Deployments[0]
	other.ID, other.StateKey = "d2", t.Name()+"/d2"
	m.Deployments = append(m.Deployments, other)
	rec := httptest.NewRecorder()
	if _, err := c.Serve(context.Background(), rec, chatRequest(t, m)); err != nil || rec.Code != 200 || goodCalls.Load() != 1 {
		t.Fatalf("err %v, status %d, calls %d", err, rec.Code, goodCalls.Load())
	}
}
