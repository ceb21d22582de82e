package llm

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// countingUpstream answers every call with a complete answer in typ's format and
// counts the calls.
func countingUpstream(t *testing.T, typ gatehousev1.ProviderType) (*runtime.Model, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	answer := `{"id":"c","object":"chat.completion","created":1,"model":"x","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"},{"index":1,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`
	if typ == anthropicType {
		answer = `{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}`
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(answer))
	}))
	t.Cleanup(srv.Close)
	m := testModel(t, typ, srv.URL)
	m.Deployments[0].ID += "-" + typ.String()
	m.Deployments[0].StateKey += "/" + typ.String()
	m.Routing = runtime.Routing{BreakerFailures: 1}
	return m, &calls
}

// TestWhatATargetCannotCarryTriesTheOthers: n > 1 for Anthropic and a document by URL
// for a chat-form upstream skip that deployment: another deployment or a fallback
// that can serve the request does, and the 400 is the answer only when none can.
func TestWhatATargetCannotCarryTriesTheOthers(t *testing.T) {
	t.Parallel()
	const (
		manyChoices = `{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}]}`
		urlDocument = `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"url","url":"https://example.com/a.pdf"}}]}]}`
	)
	serve := func(t *testing.T, surface Surface, body string, models ...*runtime.Model) (int, error) {
		t.Helper()
		req := parseGoldenRequest(t, surface, []byte(body))
		req.Candidates = models
		rec := httptest.NewRecorder()
		_, err := testClient(t).Serve(context.Background(), rec, req)
		return rec.Code, err
	}
	t.Run("fallback model", func(t *testing.T) {
		t.Parallel()
		claude, claudeCalls := countingUpstream(t, anthropicType)
		gpt, gptCalls := countingUpstream(t, openAIType)
		if code, err := serve(t, SurfaceChat, manyChoices, claude, gpt); err != nil || code != 200 {
			t.Fatalf("n > 1 with an OpenAI fallback: %d, %v", code, err)
		}
		if claudeCalls.Load() != 0 || gptCalls.Load() != 1 {
			t.Errorf("calls: anthropic %d, openai %d", claudeCalls.Load(), gptCalls.Load())
		}
		// The skip is no failure: the breaker (one failure opens it) lets the next
		// request through to Anthropic.
		if code, err := serve(t, SurfaceChat, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, claude); err != nil || code != 200 || claudeCalls.Load() != 1 {
			t.Errorf("after the skip: %d, %v, anthropic calls %d", code, err, claudeCalls.Load())
		}
	})
	t.Run("other deployment", func(t *testing.T) {
		t.Parallel()
		claude, claudeCalls := countingUpstream(t, anthropicType)
		gpt, gptCalls := countingUpstream(t, openAIType)
		both := *claude
		both.Deployments = []*runtime.Deployment{claude.Deployments[0], gpt.Deployments[0]}
		for range 5 {
			if code, err := serve(t, SurfaceChat, manyChoices, &both); err != nil || code != 200 {
				t.Fatalf("n > 1 with an OpenAI deployment: %d, %v", code, err)
			}
		}
		if claudeCalls.Load() != 0 || gptCalls.Load() != 5 {
			t.Errorf("calls: anthropic %d, openai %d", claudeCalls.Load(), gptCalls.Load())
		}
	})
	t.Run("document fallback", func(t *testing.T) {
		t.Parallel()
		claude, claudeCalls := countingUpstream(t, anthropicType)
		gpt, gptCalls := countingUpstream(t, openAIType)
		if code, err := serve(t, SurfaceMessages, urlDocument, gpt, claude); err != nil || code != 200 {
			t.Fatalf("a URL document with an Anthropic fallback: %d, %v", code, err)
		}
		if claudeCalls.Load() != 1 || gptCalls.Load() != 0 {
			t.Errorf("calls: anthropic %d, openai %d", claudeCalls.Load(), gptCalls.Load())
		}
	})
	t.Run("an upstream failed before", func(t *testing.T) {
		t.Parallel()
		// The OpenAI deployment answers 503; the Anthropic fallback cannot carry n > 1:
		// the caller gets the provider's 503, not the fallback's 400.
		var calls atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"message":"overloaded","type":"server_error"}}`))
		}))
		t.Cleanup(srv.Close)
		gpt := testModel(t, openAIType, srv.URL)
		claude, claudeCalls := countingUpstream(t, anthropicType)
		code, err := serve(t, SurfaceChat, manyChoices, gpt, claude)
		if err != nil || code != http.StatusServiceUnavailable || calls.Load() == 0 || claudeCalls.Load() != 0 {
			t.Errorf("got %d, %v (openai calls %d, anthropic calls %d); want the relayed 503", code, err, calls.Load(), claudeCalls.Load())
		}
	})
	t.Run("none can", func(t *testing.T) {
		t.Parallel()
		claude, claudeCalls := countingUpstream(t, anthropicType)
		_, err := serve(t, SurfaceChat, manyChoices, claude)
		var invalid *InvalidRequestError
		if !errors.As(err, &invalid) || invalid.Param != "n" || claudeCalls.Load() != 0 {
			t.Errorf("want the 400 naming n, got %v (anthropic calls %d)", err, claudeCalls.Load())
		}
	})
}
