package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/llm"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"google.golang.org/protobuf/proto"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/fakecp"
)

// faultUpstream is an OpenAI-compatible provider that misbehaves on script: each call
// takes the next action (the last one repeats).
type faultUpstream struct {
	srv *httptest.Server

	mu      sync.Mutex
	actions []string
	calls   []time.Time
	headers []http.Header
}

// Actions:
//
//	ok          a normal answer ("Hello", streamed when asked)
//	429         429 with retry-after-ms: 300
//	500         500
//	slow-first  a stream whose first event comes after 3s
//	slow-content a stream with a role-only chunk at once, its first token after 3s
//	drop        a stream that breaks the connection after its first content
//	stall       a stream that sends nothing more after its first content (for 10 s)
//	role-stall  the same after a role-only chunk first
//	trickle     a stream whose chunks come 150 ms apart (role, five tokens, the end)
//	trickle-stall the same, silent (10 s) after its third token
//	garbage     an answer that is not JSON (a stream whose second event is not)
func newFaultUpstream(t *testing.T, actions ...string) *faultUpstream {
	f := &faultUpstream{actions: actions}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *faultUpstream) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func (f *faultUpstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	action := f.actions[min(len(f.calls), len(f.actions)-1)]
	f.calls = append(f.calls, time.Now())
	f.headers = append(f.headers, r.Header.Clone())
	f.mu.Unlock()
	stream := strings.Contains(string(body), `"stream":true`)
	switch action {
	case "429":
		w.Header().Set("retry-after-ms", "300")
		writeWireError(w, "openai", http.StatusTooManyRequests, "slow down")
		return
	case "500":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `{"error":{"message":"boom","type":"server_error","param":null,"code":null}}`)
		return
	case "429-operator": // OpenAI's 429 names the operator's organization
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"error":{"message":"Rate limit reached for gpt-4o in organization org-AbCdEf0123456789XyZabc12 (project proj_Zyx9876543210abcdefGHIJ) on tokens per min (TPM): Limit 30000. Key sk-proj-abc1****************************wxyz.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}`)
		return
	case "stream-error-operator": // an in-stream error naming the operator's organization
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"id\":\"chatcmpl-f\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"fault\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n")
		fmt.Fprint(w, "data: {\"error\":{\"message\":\"Quota exceeded in organization org-AbCdEf0123456789XyZabc12.\",\"type\":\"server_error\"}}\n\n")
		return
	case "half": // half an event, then the connection breaks
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, `data: {"id":"chatcmpl-f","object":"chat.completion.chunk","created":1,"model":"fault","choices":[{"index":0,"delta":{"content":"Hel`)
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	case "302":
		http.Redirect(w, r, "http://127.0.0.1:1/elsewhere", http.StatusFound)
		return
	case "gemini-bad-key": // what Gemini answers for an API key it does not know
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT",`+
			`"details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}`)
		return
	case "garbage":
		if stream {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\ndata: {not json at all\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `<html>not json</html>`)
		return
	}
	if !stream {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"chatcmpl-f","object":"chat.completion","created":1,"model":"fault","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":%s}`, openAIUsage())
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	flusher := w.(http.Flusher)
	flusher.Flush()
	if action == "trickle" || action == "trickle-stall" {
		chunk := func(delta string) {
			fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-f\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"fault\",\"choices\":[{\"index\":0,\"delta\":%s,\"finish_reason\":null}]}\n\n", delta)
			flusher.Flush()
			time.Sleep(150 * time.Millisecond)
		}
		chunk(`{"role":"assistant","content":""}`)
		for i, tok := range []string{"H", "e", "l", "l", "o"} {
			if i == 3 && action == "trickle-stall" {
				select {
				case <-time.After(10 * time.Second):
				case <-r.Context().Done():
				}
				return
			}
			chunk(`{"content":"` + tok + `"}`)
		}
		fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-f\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"fault\",\"choices\":[],\"usage\":%s}\n\ndata: [DONE]\n\n", openAIUsage())
		return
	}
	if action == "slow-content" || action == "role-stall" {
		// A role-only chunk at once, then nothing: no token yet.
		fmt.Fprint(w, "data: {\"id\":\"chatcmpl-f\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"fault\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n")
		flusher.Flush()
	}
	if action == "slow-first" || action == "slow-content" {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
			return
		}
	}
	fmt.Fprint(w, "data: {\"id\":\"chatcmpl-f\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"fault\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n")
	flusher.Flush()
	if action == "drop" {
		panic(http.ErrAbortHandler)
	}
	if action == "stall" || action == "role-stall" {
		select {
		case <-time.After(10 * time.Second):
		case <-r.Context().Done():
		}
		return
	}
	fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-f\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"fault\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\ndata: {\"id\":\"chatcmpl-f\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"fault\",\"choices\":[],\"usage\":%s}\n\ndata: [DONE]\n\n", openAIUsage())
}

// withFaultModel adds a provider at f and a model "name" served by it.
func withFaultModel(name string, f *faultUpstream, routing *gatehousev1.Routing, fallbacks ...string) func(*gatehousev1.Snapshot) {
	return func(s *gatehousev1.Snapshot) {
		s.Providers = append(s.Providers, &gatehousev1.Provider{Id: "p-" + name, Name: name, Type: gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE,
			BaseUrl: f.srv.URL + "/v1", ApiKey: upstreamKey})
		s.Models = append(s.Models, &gatehousev1.Model{Id: "m-" + name, Name: name, ProviderId: "p-" + name, UpstreamModel: "fault",
			InputPricePerMtokMicros: 4_000_000, OutputPricePerMtokMicros: 16_000_000, Routing: routing, Fallbacks: fallbacks})
	}
}

// TestUpstreamRedirectAndGeminiKeyRefusal: a redirect from a provider is not relayed
// (it would send the caller elsewhere) but retried as a bad answer, and Gemini's 400
// API_KEY_INVALID is the operator's credential failing — 502 upstream_auth_failed —
// not the caller's request.
func TestUpstreamRedirectAndGeminiKeyRefusal(t *testing.T) {
	t.Parallel()
	redirect := newFaultUpstream(t, "302", "ok")
	badKey := newFaultUpstream(t, "gemini-bad-key")
	h := startHarness(t, harnessOptions{extra: func(s *gatehousev1.Snapshot) {
		withFaultModel("redirect", redirect, &gatehousev1.Routing{MaxRetries: 1, RetryBackoffMs: 1})(s)
		s.Providers = append(s.Providers, &gatehousev1.Provider{Id: "p-gem-bad", Name: "gem-bad", Type: gatehousev1.ProviderType_PROVIDER_TYPE_GEMINI,
			BaseUrl: badKey.srv.URL, ApiKey: upstreamKey})
		s.Models = append(s.Models, &gatehousev1.Model{Id: "m-gem-bad", Name: "gem-bad", ProviderId: "p-gem-bad", UpstreamModel: "gemini-x"})
	}})
	got, err := h.client(h.fx.key).Chat.Completions.New(context.Background(), chatParams("redirect"))
	if err != nil {
		t.Fatalf("after a redirect: %v (%d calls)", err, redirect.count())
	}
	if len(got.Choices) != 1 || got.Choices[0].Message.Content != "Hello" || redirect.count() != 2 {
		t.Fatalf("after a redirect: %+v (%d calls)", got.Choices, redirect.count())
	}
	_, err = h.client(h.fx.key).Chat.Completions.New(context.Background(), chatParams("gem-bad"))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 502 || apiErr.Code != "upstream_auth_failed" {
		t.Fatalf("Gemini refusing its key: %v, want a 502 upstream_auth_failed", err)
	}
}

// TestProviderErrorsDoNotNameTheOperatorsAccount: a provider's error is relayed with
// its detail, but not the operator's organization, project or key.
func TestProviderErrorsDoNotNameTheOperatorsAccount(t *testing.T) {
	t.Parallel()
	f := newFaultUpstream(t, "429-operator")
	s := newFaultUpstream(t, "stream-error-operator")
	h := startHarness(t, harnessOptions{extra: func(snap *gatehousev1.Snapshot) {
		withFaultModel("op", f, &gatehousev1.Routing{MaxRetries: 1, RetryBackoffMs: 1})(snap)
		withFaultModel("op-stream", s, nil)(snap)
	}})
	for _, tc := range []struct{ path, body, want string }{
		{"/v1/chat/completions", `{"model":"op","messages":[{"role":"user","content":"hi"}]}`, "Rate limit reached for gpt-4o in organization [redacted]"},
		{"/v1/messages", `{"model":"op","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, "Rate limit reached for gpt-4o in organization [redacted]"},
		// Streamed: relayed as it came, and translated.
		{"/v1/chat/completions", `{"model":"op-stream","stream":true,"messages":[{"role":"user","content":"hi"}]}`, "Quota exceeded in organization [redacted]"},
		{"/v1/messages", `{"model":"op-stream","stream":true,"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, "Quota exceeded in organization [redacted]"},
	} {
		resp, body := h.do(t, "POST", tc.path, bearer(h.fx.key), tc.body)
		if !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: %d %s", tc.path, resp.StatusCode, body)
		}
		if strings.Contains(tc.body, `"stream"`) {
			continue
		}
		if resp.StatusCode != 429 || !json.Valid(body) {
			t.Errorf("%s: %d %s", tc.path, resp.StatusCode, body)
		}
		for _, secret := range []string{"org-AbCdEf", "proj_Zyx", "sk-proj", "wxyz"} {
			if strings.Contains(string(body), secret) {
				t.Errorf("%s: the answer names %q: %s", tc.path, secret, body)
			}
		}
	}
}

func TestRetryOn429HonoursRetryAfter(t *testing.T) {
	t.Parallel()
	f := newFaultUpstream(t, "429", "ok")
	h := startHarness(t, harnessOptions{extra: withFaultModel("r429", f, &gatehousev1.Routing{RetryBackoffMs: 1})})
	var httpResp *http.Response
	got, err := h.client(h.fx.key).Chat.Completions.New(context.Background(), chatParams("r429"), option.WithResponseInto(&httpResp))
	if err != nil {
		t.Fatal(err)
	}
	if got.Choices[0].Message.Content != "Hello" || f.count() != 2 {
		t.Fatalf("content %q after %d calls", got.Choices[0].Message.Content, f.count())
	}
	f.mu.Lock()
	gap := f.calls[1].Sub(f.calls[0])
	f.mu.Unlock()
	if gap < 250*time.Millisecond {
		t.Errorf("retried %v after a 429 asking for 300ms", gap)
	}
	ev := h.waitUsage(t, httpResp.Header.Get("x-request-id"))
	if ev.Retries != 1 || ev.DeploymentId != "m-r429" || ev.FallbackModel != "" || ev.StatusCode != 200 {
		t.Errorf("usage event = %v", ev)
	}
	// The overhead excludes the upstream wait and the backoff.
	if ev.OverheadUs <= 0 || ev.OverheadUs > 250_000 {
		t.Errorf("overhead %dus counts the retry wait", ev.OverheadUs)
	}
}

func TestRetriesExhaustedRelayTheLastAnswer(t *testing.T) {
	t.Parallel()
	f := newFaultUpstream(t, "429")
	h := startHarness(t, harnessOptions{extra: withFaultModel("r429", f, &gatehousev1.Routing{MaxRetries: 2, RetryBackoffMs: 1})})
	resp, body := h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"r429","messages":[]}`)
	checkError(t, resp, body, 429, "rate_limit_error", "rate_limit_exceeded", upstreamKey)
	if f.count() != 3 {
		t.Errorf("upstream called %d times, want 1 + 2 retries", f.count())
	}
	ev := h.waitUsage(t, resp.Header.Get("x-request-id"))
	if ev.Retries != 2 || ev.StatusCode != 429 || ev.ErrorClass != "upstream_status" {
		t.Errorf("usage event = %v", ev)
	}
}

func TestFallbackAfter500s(t *testing.T) {
	t.Parallel()
	f := newFaultUpstream(t, "500")
	h := startHarness(t, harnessOptions{extra: withFaultModel("primary", f, &gatehousev1.Routing{MaxRetries: 1, RetryBackoffMs: 1}, "echo")})
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			before := f.count()
			resp, body := h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key),
				fmt.Sprintf(`{"model":"primary","stream":%v,"messages":[{"role":"user","content":"hi"}]}`, stream))
			if resp.StatusCode != 200 || !strings.Contains(string(body), "Hel") {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if n := f.count() - before; n != 2 {
				t.Errorf("primary called %d times, want 2", n)
			}
			ev := h.waitUsage(t, resp.Header.Get("x-request-id"))
			// Charged at the fallback's prices: (11-3)*2 + 3*0.5 + 7*8 = 73.5.
			if ev.FallbackModel != "echo" || ev.Retries != 2 || ev.DeploymentId != "m-echo" || ev.Model != "primary" ||
				ev.UpstreamModel != "up-echo" || ev.CostMicros != 74 {
				t.Errorf("usage event = %v", ev)
			}
		})
	}
	resp, body := h.do(t, "GET", "/metrics", nil, "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "gatehouse_gateway_fallbacks_total 2") ||
		!strings.Contains(string(body), `gatehouse_gateway_upstream_retries_total{reason="status_5xx"}`) {
		t.Errorf("fallback and retry metrics missing")
	}
}

func TestBreakerStopsCallingAFailingDeployment(t *testing.T) {
	t.Parallel()
	f := newFaultUpstream(t, "500")
	h := startHarness(t, harnessOptions{extra: withFaultModel("flaky", f,
		&gatehousev1.Routing{MaxRetries: 1, RetryBackoffMs: 1, BreakerFailures: 3, BreakerCooldownMs: 60_000}, "echo")})
	for i := range 5 {
		resp, body := h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"flaky","messages":[]}`)
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
		}
	}
	// Two attempts for the first request, one more opens the breaker; after that
	// requests go straight to the fallback.
	if n := f.count(); n != 3 {
		t.Errorf("failing deployment called %d times, want 3", n)
	}
	resp, body := h.do(t, "GET", "/metrics", nil, "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `gatehouse_gateway_deployment_breaker_state{deployment="acme/m-flaky"} 2`) {
		t.Errorf("breaker metric missing or not open")
	}
	// Without a fallback, an open breaker answers 503 at once.
	f2 := newFaultUpstream(t, "500")
	h2 := startHarness(t, harnessOptions{extra: withFaultModel("alone", f2, &gatehousev1.Routing{MaxRetries: 1, RetryBackoffMs: 1, BreakerFailures: 2, BreakerCooldownMs: 60_000})})
	resp, body = h2.do(t, "POST", "/v1/chat/completions", bearer(h2.fx.key), `{"model":"alone","messages":[]}`)
	if resp.StatusCode != 500 {
		t.Fatalf("first request: %d %s", resp.StatusCode, body)
	}
	resp, body = h2.do(t, "POST", "/v1/chat/completions", bearer(h2.fx.key), `{"model":"alone","messages":[]}`)
	checkError(t, resp, body, 503, "upstream_error", "upstream_unavailable", upstreamKey)
	if n := f2.count(); n != 2 {
		t.Errorf("deployment called %d times through an open breaker", n)
	}
}

func TestTTFTTimeoutMovesToAnotherDeployment(t *testing.T) {
	t.Parallel()
	for _, action := range []string{"slow-first", "slow-content"} {
		t.Run(action, func(t *testing.T) {
			t.Parallel()
			slow := newFaultUpstream(t, action)
			good := newFaultUpstream(t, "ok")
			h := startHarness(t, harnessOptions{extra: func(s *gatehousev1.Snapshot) {
				withFaultModel("ttft", slow, &gatehousev1.Routing{TtftTimeoutMs: 1000, RetryBackoffMs: 1})(s)
				s.Providers = append(s.Providers, &gatehousev1.Provider{Id: "p-good", Type: gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE,
					BaseUrl: good.srv.URL + "/v1", ApiKey: upstreamKey})
				m := s.Models[len(s.Models)-1]
				// The slow deployment (the model's own, weight 1) goes first: smooth
				// weighted round robin starts with the first of equal weights.
				m.Deployments = []*gatehousev1.Deployment{{Id: "d-good", ProviderId: "p-good", UpstreamModel: "fault", Weight: 1}}
			}})
			var httpResp *http.Response
			stream := h.client(h.fx.key).Chat.Completions.NewStreaming(context.Background(), chatParams("ttft"), option.WithResponseInto(&httpResp))
			var acc openai.ChatCompletionAccumulator
			for stream.Next() {
				acc.AddChunk(stream.Current())
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if acc.Choices[0].Message.Content != "Hello" {
				t.Errorf("content = %q", acc.Choices[0].Message.Content)
			}
			if slow.count() != 1 || good.count() != 1 {
				t.Errorf("calls: slow %d, good %d", slow.count(), good.count())
			}
			ev := h.waitUsage(t, httpResp.Header.Get("x-request-id"))
			if ev.DeploymentId != "d-good" || ev.Retries != 1 || !ev.Streamed || ev.CompletionTokens != outputTokens {
				t.Errorf("usage event = %v", ev)
			}
		})
	}
}

// streamChat streams a chat completion of model through the gateway with openai-go
// and returns the content of its first choice, the response and the stream's error.
func streamChat(h *harness, model string) (string, *http.Response, error) {
	var httpResp *http.Response
	stream := h.client(h.fx.key).Chat.Completions.NewStreaming(context.Background(), chatParams(model), option.WithResponseInto(&httpResp))
	var content strings.Builder
	for stream.Next() {
		if c := stream.Current(); len(c.Choices) > 0 {
			content.WriteString(c.Choices[0].Delta.Content)
		}
	}
	return content.String(), httpResp, stream.Err()
}

// TestStreamIdleTimeout: with --stream-idle-timeout, a stream whose provider goes
// silent after its first token ends with an error event once the bound passes
// (not at the 10 s the provider would hold it), and the attempt counts against the
// deployment; the silence before the first token (a model thinking) is not bounded
// by it.
func TestStreamIdleTimeout(t *testing.T) {
	t.Parallel()
	stall, roleStall, think, trickle := newFaultUpstream(t, "stall"), newFaultUpstream(t, "role-stall"), newFaultUpstream(t, "slow-content"), newFaultUpstream(t, "trickle")
	trickleStall := newFaultUpstream(t, "trickle-stall")
	h := startHarness(t, harnessOptions{streamIdleTimeout: 300 * time.Millisecond, extra: func(s *gatehousev1.Snapshot) {
		withFaultModel("stalls", stall, nil)(s)
		withFaultModel("role-stalls", roleStall, nil)(s)
		withFaultModel("thinks", think, nil)(s)
		withFaultModel("trickles", trickle, nil)(s)
		withFaultModel("trickle-stalls", trickleStall, nil)(s)
	}})
	// Stalled right after its first token, after a role-only chunk and then its first
	// token (the bound starts at the token either way), or after three tokens.
	var httpResp *http.Response
	for _, model := range []string{"role-stalls", "trickle-stalls", "stalls"} {
		start := time.Now()
		content, resp, err := streamChat(h, model)
		took := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), "upstream_timeout") || content != "Hel" {
			t.Errorf("%s: %q, error %v; want Hel and the final timeout event", model, content, err)
		}
		if took > 5*time.Second {
			t.Errorf("%s: the stalled stream ended after %v, not at its idle bound", model, took)
		}
		httpResp = resp
	}
	// Chunks 150 ms apart for ~0.9 s in all: each silence is under the bound.
	if content, _, err := streamChat(h, "trickles"); err != nil || content != "Hello" {
		t.Errorf("trickling stream: %q, %v", content, err)
	}
	ev := h.waitUsage(t, httpResp.Header.Get("x-request-id"))
	if ev.ErrorClass == "" || !ev.Streamed || ev.CompletionTokens == 0 {
		t.Errorf("usage event = %v", ev)
	}
	if _, body := h.do(t, "GET", "/metrics", nil, ""); !strings.Contains(string(body), `upstream_attempts_total{outcome="stream_idle",provider_type="openai_compatible"} 3`) {
		t.Error("no stream_idle attempt in the metrics")
	}
	// A model's own bound, on a gateway without one.
	perModel := newFaultUpstream(t, "stall")
	h2 := startHarness(t, harnessOptions{extra: withFaultModel("own-bound", perModel, &gatehousev1.Routing{StreamIdleTimeoutMs: 300})})
	start := time.Now()
	if content, _, err := streamChat(h2, "own-bound"); err == nil || !strings.Contains(err.Error(), "upstream_timeout") || content != "Hel" ||
		time.Since(start) > 5*time.Second {
		t.Errorf("a model's own bound: %q, %v after %v", content, err, time.Since(start))
	}
	// 3 s of silence before the first token, ten times the idle bound: answered.
	thinking := h.client(h.fx.key).Chat.Completions.NewStreaming(context.Background(), chatParams("thinks"))
	var acc openai.ChatCompletionAccumulator
	for thinking.Next() {
		acc.AddChunk(thinking.Current())
	}
	if err := thinking.Err(); err != nil || acc.Choices[0].Message.Content != "Hello" {
		t.Errorf("a slow first token: %v, %+v", err, acc.Choices)
	}
}

func TestStreamDroppedMidwayIsNotRetried(t *testing.T) {
	t.Parallel()
	f := newFaultUpstream(t, "drop", "ok")
	h := startHarness(t, harnessOptions{extra: withFaultModel("drops", f, &gatehousev1.Routing{MaxRetries: 3, RetryBackoffMs: 1})})
	content, httpResp, err := streamChat(h, "drops")
	if err == nil || !strings.Contains(err.Error(), "upstream_stream_broken") {
		t.Errorf("stream error = %v, want the final error event", err)
	}
	if content != "Hel" {
		t.Errorf("content = %q", content)
	}
	if f.count() != 1 {
		t.Errorf("upstream called %d times: a stream that began must not be retried", f.count())
	}
	ev := h.waitUsage(t, httpResp.Header.Get("x-request-id"))
	if ev.ErrorClass != "upstream_stream_broken" || !ev.Streamed || ev.Retries != 0 || ev.CompletionTokens != 1 || ev.PromptTokens != 1 || ev.CostMicros == 0 {
		t.Errorf("usage event = %v, want the partial usage estimated", ev)
	}
}

func TestClientDisconnectChargesPartialUsage(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	for _, model := range []string{"block", "claude-block"} {
		t.Run(model, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			var httpResp *http.Response
			stream := h.client(h.fx.key).Chat.Completions.NewStreaming(ctx, chatParams(model), option.WithResponseInto(&httpResp))
			for stream.Next() && stream.Current().Choices[0].Delta.Content == "" {
			}
			cancel()
			stream.Close()
			select {
			case <-h.upstream.cancelled:
			case <-time.After(5 * time.Second):
				t.Fatal("upstream request not cancelled after the client left")
			}
			ev := h.waitUsage(t, httpResp.Header.Get("x-request-id"))
			if ev.ErrorClass != "client_closed" || ev.CompletionTokens < 1 || ev.PromptTokens < 1 || ev.CostMicros == 0 {
				t.Errorf("usage event = %v, want partial usage charged", ev)
			}
		})
	}
}

// TestClientLeavingBeforeTheAnswerIsCharged: a caller that leaves while the provider
// is still working on a non-streamed answer is charged the prompt (an estimate: the
// provider has read it) — streamed and not, before the first byte as after.
func TestClientLeavingBeforeTheAnswerIsCharged(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := h.client(h.fx.key).Chat.Completions.New(ctx, chatParams("slow")); err == nil {
		t.Fatal("the slow model answered")
	}
	ev := h.waitModelUsage(t, "slow")
	if ev.ErrorClass != "client_closed" || ev.PromptTokens < 1 || ev.CompletionTokens != 0 || ev.CostMicros == 0 {
		t.Errorf("usage event = %v, want the prompt charged", ev)
	}
}

// TestClientLeavingKeepsTheLimitsCharge: a caller that leaves before the answer began
// keeps its admission's token estimate on its limits — the provider may have generated
// the whole answer for nobody — so leaving early is no way around a tokens-per-minute
// limit.
func TestClientLeavingKeepsTheLimitsCharge(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{extra: func(s *gatehousev1.Snapshot) {
		for _, k := range s.Keys {
			if k.Id == "acmekey00001" {
				k.Limits = &gatehousev1.Limits{Tpm: 6000} // a burst of 600 tokens
			}
		}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	params := chatParams("slow")
	params.MaxTokens = openai.Int(700)
	if _, err := h.client(h.fx.key).Chat.Completions.New(ctx, params); err == nil {
		t.Fatal("the slow model answered")
	}
	// The ticket is settled before the request's usage event is sent.
	h.waitModelUsage(t, "slow")
	resp, b := h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"echo","max_tokens":200,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 429 || !strings.Contains(string(b), "tokens per minute") {
		t.Fatalf("after leaving a 700-token request: %d %s, want the key's tpm refusal", resp.StatusCode, b)
	}
}

func TestTraceContextPropagatedUpstream(t *testing.T) {
	t.Parallel()
	f := newFaultUpstream(t, "ok")
	h := startHarness(t, harnessOptions{extra: withFaultModel("traced", f, nil)})
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	resp, body := h.do(t, "POST", "/v1/chat/completions", map[string]string{
		"Authorization": "Bearer " + h.fx.key, "traceparent": "00-" + traceID + "-00f067aa0ba902b7-01",
	}, `{"model":"traced","messages":[]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	f.mu.Lock()
	tp := f.headers[0].Get("traceparent")
	f.mu.Unlock()
	if !strings.HasPrefix(tp, "00-"+traceID+"-") {
		t.Errorf("upstream traceparent = %q, want trace %s", tp, traceID)
	}
}

// TestHalfAnEventIsRetried: with a time-to-first-token bound, a first event the
// connection cut in half is no answer yet: the attempt is retried, and the caller gets
// the whole answer of the next one, never the half event.
func TestHalfAnEventIsRetried(t *testing.T) {
	t.Parallel()
	f := newFaultUpstream(t, "half", "ok")
	h := startHarness(t, harnessOptions{extra: withFaultModel("halved", f, &gatehousev1.Routing{MaxRetries: 1, RetryBackoffMs: 1, TtftTimeoutMs: 5000})})
	resp, body := h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"halved","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || f.count() != 2 || strings.Count(string(body), `"content":"Hel"`) != 1 ||
		strings.Contains(string(body), "Hel\n") || !strings.Contains(string(body), "[DONE]") {
		t.Fatalf("%d after %d calls: %s", resp.StatusCode, f.count(), body)
	}
}

// TestUnusableAnswerThenRetryIsCharged: an answer the gateway could not use, retried,
// is charged its prompt on top of the answer that served.
func TestUnusableAnswerThenRetryIsCharged(t *testing.T) {
	t.Parallel()
	f := newFaultUpstream(t, "garbage", "ok")
	h := startHarness(t, harnessOptions{extra: withFaultModel("garbled", f, &gatehousev1.Routing{MaxRetries: 1, RetryBackoffMs: 1})})
	// Translated (the Messages surface): an OpenAI-compatible answer that is not one.
	resp, body := h.do(t, "POST", "/v1/messages", bearer(h.fx.key), `{"model":"garbled","max_tokens":5,"messages":[{"role":"user","content":"`+strings.Repeat("x", 400)+`"}]}`)
	if resp.StatusCode != 200 || f.count() != 2 {
		t.Fatalf("%d %s after %d calls", resp.StatusCode, body, f.count())
	}
	if ev := h.waitUsage(t, resp.Header.Get("x-request-id")); ev.PromptTokens != promptTokens+100 || ev.CompletionTokens != outputTokens {
		t.Errorf("usage event = %v, want the answer's %d prompt tokens and the unusable one's 100", ev, promptTokens)
	}
}

// TestMalformedUpstreamAnswers checks that answers the gateway cannot read become
// clean errors in the caller's format: retried while nothing was sent, an error event
// once a stream began.
func TestMalformedUpstreamAnswers(t *testing.T) {
	t.Parallel()
	f := newFaultUpstream(t, "garbage")
	h := startHarness(t, harnessOptions{extra: withFaultModel("garbled", f, &gatehousev1.Routing{MaxRetries: 1, RetryBackoffMs: 1})})
	resp, body := h.do(t, "POST", "/v1/messages", bearer(h.fx.key), `{"model":"garbled","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`)
	if resp.StatusCode != 502 || !strings.Contains(string(body), `"type":"api_error"`) || strings.Contains(string(body), "html") {
		t.Errorf("messages: %d %s", resp.StatusCode, body)
	}
	if f.count() != 2 {
		t.Errorf("upstream called %d times, want a retry", f.count())
	}
	// Both answers came and were left unused: the prompt they read is charged.
	if ev := h.waitUsage(t, resp.Header.Get("x-request-id")); ev.PromptTokens != 2 || ev.CostMicros == 0 {
		t.Errorf("usage event of two unusable answers = %v, want 2 prompt estimates of 1", ev)
	}
	resp, body = h.do(t, "POST", "/v1/responses", bearer(h.fx.key), `{"model":"garbled","stream":true,"input":"x"}`)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"delta":"Hel"`) || !strings.Contains(string(body), "response.failed") {
		t.Errorf("responses stream: %d %s", resp.StatusCode, body)
	}
	ev := h.waitUsage(t, resp.Header.Get("x-request-id"))
	if ev.ErrorClass != "upstream_bad_response" || ev.CompletionTokens != 1 {
		t.Errorf("usage event = %v", ev)
	}
}

// TestInvalidCapability3SnapshotIsNACKed publishes an update with a fallback cycle:
// the gateway rejects it (NACK with the reason in its heartbeat) and keeps serving the
// org's previous config.
func TestInvalidCapability3SnapshotIsNACKed(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	sub, err := h.cp.NC.SubscribeSync(wire.StatusSubject(region, "gw-test"))
	if err != nil {
		t.Fatal(err)
	}
	bad := proto.Clone(h.fx.snap).(*gatehousev1.Snapshot)
	for _, m := range bad.Models {
		switch m.Name {
		case "echo":
			m.Fallbacks = []string{"block"}
		case "block":
			m.Fallbacks = []string{"echo"}
		}
	}
	h.cp.Publish(region, bad)
	fakecp.Eventually(t, 5*time.Second, func() error {
		msg, err := sub.NextMsg(time.Second)
		if err != nil {
			return err
		}
		var st gatehousev1.GatewayStatus
		if err := proto.Unmarshal(msg.Data, &st); err != nil {
			return err
		}
		for _, o := range st.Orgs {
			if o.OrgId == "acme" && o.RejectedVersion == 2 && strings.Contains(o.RejectedReason, "fallback cycle") && o.AppliedVersion == 1 {
				return nil
			}
		}
		return fmt.Errorf("status = %v", &st)
	})
	if resp, body := h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"echo","messages":[]}`); resp.StatusCode != 200 {
		t.Errorf("previous config not serving: %d %s", resp.StatusCode, body)
	}
}

// usageUpstream answers chat completions with usage as its "usage" query says: "none"
// leaves it out (as some OpenAI-compatible servers do), "huge" reports 4·10^12 prompt
// tokens, "negative" a negative completion count; embeddings come without usage.
func usageUpstream() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/embeddings") {
			fmt.Fprint(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,0.25]}],"model":"up"}`)
			return
		}
		if strings.HasSuffix(r.URL.Path, "/messages") { // Anthropic, without usage
			fmt.Fprintf(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":%q}],"stop_reason":"end_turn"}`,
				strings.Repeat("word ", 40))
			return
		}
		usage := `,"usage":{"prompt_tokens":4000000000000,"completion_tokens":7,"total_tokens":4000000000007}`
		switch {
		case strings.Contains(string(raw), "none"):
			usage = ""
		case strings.Contains(string(raw), "negative"):
			usage = `,"usage":{"prompt_tokens":10,"completion_tokens":-1000000,"total_tokens":-999990}`
		}
		fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","created":1,"model":"up","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}]%s}`,
			strings.Repeat("word ", 40), usage)
	})
}

// TestUsageTheProviderGetsWrong: an answer without usage is charged an estimate, not
// nothing; absurd counts are held within bounds, so a cost never wraps negative (which
// would credit the team's spend).
func TestUsageTheProviderGetsWrong(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{upstream: usageUpstream()})
	prompt := strings.Repeat("x", 400) // ~100 tokens
	for _, c := range []struct {
		name, path, body string
		check            func(ev *gatehousev1.UsageEvent) bool
	}{
		{"chat without usage", "/v1/chat/completions", `{"model":"echo","messages":[{"role":"user","content":"none ` + prompt + `"}]}`,
			func(ev *gatehousev1.UsageEvent) bool {
				return ev.PromptTokens >= 100 && ev.CompletionTokens >= 40 && ev.CostMicros > 0
			}},
		{"messages without usage (translated)", "/v1/messages", `{"model":"echo","max_tokens":50,"messages":[{"role":"user","content":"none ` + prompt + `"}]}`,
			func(ev *gatehousev1.UsageEvent) bool {
				return ev.PromptTokens >= 100 && ev.CompletionTokens >= 40 && ev.CostMicros > 0
			}},
		{"anthropic without usage, on the chat surface", "/v1/chat/completions", `{"model":"claude","messages":[{"role":"user","content":"none ` + prompt + `"}]}`,
			func(ev *gatehousev1.UsageEvent) bool {
				return ev.PromptTokens >= 100 && ev.CompletionTokens >= 40 && ev.CostMicros > 0
			}},
		{"embeddings without usage", "/v1/embeddings", `{"model":"echo","input":"` + prompt + `"}`,
			func(ev *gatehousev1.UsageEvent) bool { return ev.PromptTokens >= 100 && ev.CostMicros > 0 }},
		{"4·10^12 prompt tokens", "/v1/chat/completions", `{"model":"echo","messages":[{"role":"user","content":"hi"}]}`,
			func(ev *gatehousev1.UsageEvent) bool {
				return ev.PromptTokens == llm.MaxUsageTokens && ev.CostMicros > 0
			}},
		{"negative completion tokens", "/v1/chat/completions", `{"model":"echo","messages":[{"role":"user","content":"negative"}]}`,
			func(ev *gatehousev1.UsageEvent) bool {
				return ev.PromptTokens == 10 && ev.CompletionTokens == 0 && ev.CostMicros >= 0
			}},
	} {
		resp, b := h.do(t, "POST", c.path, bearer(h.fx.key), c.body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", c.name, resp.StatusCode, b)
		}
		if ev := h.waitUsage(t, resp.Header.Get("x-request-id")); !c.check(ev) {
			t.Errorf("%s: usage event %v", c.name, ev)
		}
	}
}

// streamUsageUpstream streams answers whose usage the gateway must keep: what the body
// names decides the stream (see TestStreamedUsageIsKept).
func streamUsageUpstream() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		body := string(raw)
		w.Header().Set("Content-Type", "text/event-stream")
		flush := func() { w.(http.Flusher).Flush() }
		anthropicEvent := func(typ, data string) { fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ, data) }
		switch {
		case strings.Contains(r.URL.Path, "streamGenerateContent") && strings.Contains(body, "early"): // counts without the answer yet
			fmt.Fprintf(w, `data: {"candidates":[{"content":{"role":"model","parts":[{"text":%q}]},"index":0}],"usageMetadata":{"promptTokenCount":100}}`+"\n\n", strings.Repeat("word ", 800))
			flush()
			panic(http.ErrAbortHandler)
		case strings.Contains(r.URL.Path, "streamGenerateContent"): // Gemini, cut after its counts
			fmt.Fprint(w, `data: {"candidates":[{"content":{"role":"model","parts":[{"text":"Hello"}]},"index":0}],"usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":5,"thoughtsTokenCount":8000,"totalTokenCount":8105}}`+"\n\n")
			flush()
			panic(http.ErrAbortHandler)
		case strings.HasSuffix(r.URL.Path, "/chat/completions"): // OpenAI, cut after the usage chunk
			fmt.Fprint(w, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"up","choices":[{"index":0,"delta":{"role":"assistant","content":"Hello"},"finish_reason":null}]}`+"\n\n")
			fmt.Fprint(w, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"up","choices":[],"usage":{"prompt_tokens":100,"completion_tokens":9000,"total_tokens":9100}}`+"\n\n")
			flush()
			panic(http.ErrAbortHandler)
		}
		// Anthropic.
		start := `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":null,"usage":%s}}`
		switch {
		case strings.Contains(body, "cache-in-start"):
			anthropicEvent("message_start", fmt.Sprintf(start, `{"input_tokens":10,"cache_creation_input_tokens":2000,"cache_read_input_tokens":3000,"output_tokens":1}`))
		case strings.Contains(body, "cache-in-delta"), strings.Contains(body, "cut-thinking"):
			anthropicEvent("message_start", fmt.Sprintf(start, `{"input_tokens":10,"output_tokens":1}`))
		}
		if strings.Contains(body, "cut-thinking") {
			anthropicEvent("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}`)
			anthropicEvent("content_block_delta", fmt.Sprintf(`{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":%q}}`, strings.Repeat("hmm ", 1000)))
			flush()
			panic(http.ErrAbortHandler)
		}
		anthropicEvent("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
		anthropicEvent("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}`)
		anthropicEvent("content_block_stop", `{"type":"content_block_stop","index":0}`)
		delta := `{"input_tokens":10,"output_tokens":50}`
		if strings.Contains(body, "cache-in-delta") {
			delta = `{"cache_read_input_tokens":3000,"output_tokens":50}`
		}
		anthropicEvent("message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":`+delta+`}`)
		anthropicEvent("message_stop", `{"type":"message_stop"}`)
	})
}

// TestStreamedUsageIsKept: what a provider reported in a stream is charged, also when
// the stream broke before its end, and Anthropic's cache counts survive a message_delta
// that repeats (or alone carries) the input counts.
func TestStreamedUsageIsKept(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{upstream: streamUsageUpstream()})
	for _, c := range []struct {
		name, path, body           string
		prompt, cached, completion int64 // completion -1: at least 1,000
	}{
		{"gemini cut after its counts (thinking billed)", "/v1/chat/completions", `{"model":"gemini","stream":true,"messages":[{"role":"user","content":"hi"}]}`, 100, 0, 8005},
		{"gemini cut before its counts name the answer", "/v1/chat/completions", `{"model":"gemini","stream":true,"messages":[{"role":"user","content":"early"}]}`, 100, 0, -1},
		{"openai cut after the usage chunk, translated", "/v1/messages", `{"model":"echo","stream":true,"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, 100, 0, 9000},
		{"anthropic cache counts in message_start", "/v1/messages", `{"model":"claude","stream":true,"max_tokens":5,"messages":[{"role":"user","content":"cache-in-start"}]}`, 5010, 3000, 50},
		{"anthropic cache counts in message_delta", "/v1/messages", `{"model":"claude","stream":true,"max_tokens":5,"messages":[{"role":"user","content":"cache-in-delta"}]}`, 3010, 3000, 50},
		{"anthropic cut in its thinking", "/v1/messages", `{"model":"claude","stream":true,"max_tokens":5000,"messages":[{"role":"user","content":"cut-thinking"}]}`, 10, 0, -1},
	} {
		resp, b := h.do(t, "POST", c.path, bearer(h.fx.key), c.body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", c.name, resp.StatusCode, b)
		}
		ev := h.waitUsage(t, resp.Header.Get("x-request-id"))
		okCompletion := ev.CompletionTokens == c.completion || c.completion == -1 && ev.CompletionTokens >= 1000
		if ev.PromptTokens != c.prompt || ev.CachedTokens != c.cached || !okCompletion {
			t.Errorf("%s: prompt %d cached %d completion %d, want %d %d %d", c.name, ev.PromptTokens, ev.CachedTokens, ev.CompletionTokens,
				c.prompt, c.cached, c.completion)
		}
	}
}

// TestKeepAliveStartsTheAnswer: without a time-to-first-token bound, the answer goes
// out from the upstream's first event, a keep-alive comment too: the caller has its
// head while the model is still queued (a proxy in front would otherwise time out).
func TestKeepAliveStartsTheAnswer(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, ": queued\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"up","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}`+"\n\ndata: [DONE]\n\n")
	})
	h := startHarness(t, harnessOptions{upstream: upstream})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", h.url+"/v1/chat/completions",
		strings.NewReader(`{"model":"echo","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.fx.key)
	// The head arrives while the upstream still holds its first data event back.
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("no head before the first data event: %v", err)
	}
	defer resp.Body.Close()
	close(release)
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || !strings.Contains(string(body), `"content":"Hi"`) {
		t.Fatalf("%d %s (%v)", resp.StatusCode, body, err)
	}
}

// TestAnthropicCacheWritesArePriced: tokens Anthropic writes to its prompt cache cost
// more than plain input (1.25 times for 5 minutes, 2 times for an hour), streamed or
// not, through either API.
func TestAnthropicCacheWritesArePriced(t *testing.T) {
	t.Parallel()
	const usage = `{"input_tokens":1000,"cache_read_input_tokens":3000,"cache_creation_input_tokens":2000,` +
		`"cache_creation":{"ephemeral_5m_input_tokens":1500,"ephemeral_1h_input_tokens":500},"output_tokens":100}`
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(raw), `"stream":true`) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"Hello"}],"stop_reason":"end_turn","usage":`+usage+`}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		ev := func(typ, data string) { fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ, data) }
		ev("message_start", `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":null,"usage":`+usage+`}}`)
		ev("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
		ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}`)
		ev("content_block_stop", `{"type":"content_block_stop","index":0}`)
		ev("message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":100}}`)
		ev("message_stop", `{"type":"message_stop"}`)
	})
	h := startHarness(t, harnessOptions{upstream: upstream})
	// At $2 input, $0.50 cached, $8 output per million: 1,000 plain tokens 2,000 µUSD,
	// 3,000 cached 1,500, 1,500 written for 5 minutes 3,750, 500 for an hour 2,000,
	// 100 out 800 (priced as plain input, the writes would make 8,300).
	const want = 10_050
	for _, path := range []string{"/v1/chat/completions", "/v1/messages"} {
		for _, stream := range []bool{false, true} {
			body := fmt.Sprintf(`{"model":"claude","max_tokens":50,"stream":%v,"messages":[{"role":"user","content":"hi"}]}`, stream)
			resp, b := h.do(t, "POST", path, bearer(h.fx.key), body)
			if resp.StatusCode != 200 {
				t.Fatalf("%s stream=%v: %d %s", path, stream, resp.StatusCode, b)
			}
			ev := h.waitUsage(t, resp.Header.Get("x-request-id"))
			if ev.CostMicros != want || ev.PromptTokens != 6000 || ev.CachedTokens != 3000 || ev.CompletionTokens != 100 ||
				ev.CacheWriteTokens != 2000 || ev.CacheWriteHourTokens != 500 {
				t.Errorf("%s stream=%v: cost %d µUSD, prompt %d, cached %d, completion %d, cache writes %d (1h %d); want %d, 6000, 3000, 100, 2000 (500)",
					path, stream, ev.CostMicros, ev.PromptTokens, ev.CachedTokens, ev.CompletionTokens, ev.CacheWriteTokens, ev.CacheWriteHourTokens, want)
			}
		}
	}
}
