package app_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/httpapi"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/llm"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// fakeAdmitter refuses models named "refused" and records what it admitted and settled.
type fakeAdmitter struct {
	mu       sync.Mutex
	admitted []httpapi.Admission
	settled  []llm.Usage
}

func (a *fakeAdmitter) Admit(_ context.Context, ad httpapi.Admission) (httpapi.Ticket, error) {
	if ad.Key.Team.ID == "team-c" {
		return nil, &llm.Refusal{Status: http.StatusTooManyRequests, Code: "rate_limit_exceeded", Message: "Team over its rpm limit.",
			Header: http.Header{"Retry-After": {"7"}}}
	}
	a.mu.Lock()
	a.admitted = append(a.admitted, ad)
	a.mu.Unlock()
	return ticket{a}, nil
}

type ticket struct{ a *fakeAdmitter }

func (t ticket) Header() http.Header { return http.Header{"Ratelimit-Remaining": {"41"}} }

func (t ticket) Settle(u llm.Usage) {
	t.a.mu.Lock()
	t.a.settled = append(t.a.settled, u)
	t.a.mu.Unlock()
}

func (t ticket) Fallback(*runtime.Model) error { return nil }

// fakeGuard blocks requests containing "forbidden", redacts "secret" in requests, and
// in responses upper-cases text and cuts the stream at "lo" when the prompt says "cut".
type fakeGuard struct{}

func (fakeGuard) Request(_ context.Context, in httpapi.GuardInput) ([]byte, []*gatehousev1.GuardrailEvent, error) {
	if bytes.Contains(in.Body, []byte("forbidden")) {
		return nil, []*gatehousev1.GuardrailEvent{{RuleId: "g-block", Mode: "block", Direction: "request", Matches: 1}},
			&llm.Refusal{Status: http.StatusBadRequest, Code: "content_blocked", Message: "The request was blocked by a guardrail."}
	}
	if n := bytes.Count(in.Body, []byte("secret")); n > 0 {
		return bytes.ReplaceAll(in.Body, []byte("secret"), []byte("[REDACTED]")),
			[]*gatehousev1.GuardrailEvent{{RuleId: "g-redact", Mode: "redact", Direction: "request", Matches: int32(n)}}, nil
	}
	return in.Body, nil, nil
}

func (fakeGuard) Response(_ context.Context, in httpapi.GuardInput) httpapi.ResponseGuard {
	return &upperFilter{cut: bytes.Contains(in.Body, []byte("cut"))}
}

type upperFilter struct {
	cut    bool
	events []*gatehousev1.GuardrailEvent
}

func (f *upperFilter) Filter(delta string) (string, error) {
	if f.cut && strings.Contains(delta, "lo") {
		f.events = append(f.events, &gatehousev1.GuardrailEvent{RuleId: "g-cut", Mode: "block", Direction: "response", Matches: 1})
		return "", &llm.Refusal{Code: "content_blocked", Message: "The response was stopped by a guardrail."}
	}
	return strings.ToUpper(delta), nil
}

func (f *upperFilter) Flush() (string, error)                { return "", nil }
func (f *upperFilter) Events() []*gatehousev1.GuardrailEvent { return f.events }

func TestAdmissionHook(t *testing.T) {
	t.Parallel()
	adm := &fakeAdmitter{}
	h := startHarness(t, harnessOptions{admitter: adm, extra: func(s *gatehousev1.Snapshot) { s.Teams[2].Regions = nil }})
	// 16 characters of prompt (4 tokens) + max_tokens 100.
	resp, body := h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"echo","max_tokens":100,"messages":[{"role":"user","content":"0123456789abcdef"}]}`)
	if resp.StatusCode != 200 || resp.Header.Get("Ratelimit-Remaining") != "41" {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
	}
	resp, _ = h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"claude","stream":true,"messages":[{"role":"user","content":"0123456789abcdef"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	adm.mu.Lock()
	if len(adm.admitted) != 2 || adm.admitted[0].EstimatedTokens != 104 || adm.admitted[0].Model.Name != "echo" || adm.admitted[0].Endpoint != "chat.completions" ||
		adm.admitted[1].EstimatedTokens != 4+llm.DefaultCompletionEstimate || !adm.admitted[1].Stream {
		t.Errorf("admitted = %+v", adm.admitted)
	}
	want := llm.Usage{PromptTokens: promptTokens, CompletionTokens: outputTokens, CachedTokens: cachedTokens}
	if len(adm.settled) != 2 || adm.settled[0] != want || adm.settled[1] != want {
		t.Errorf("settled = %+v", adm.settled)
	}
	adm.mu.Unlock()

	// Refusals in the caller's format, with the limiter's headers; nothing upstream.
	calls := h.upstream.calls
	resp, body = h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.teamC), `{"model":"echo","messages":[]}`)
	checkError(t, resp, body, 429, "rate_limit_error", "rate_limit_exceeded")
	if resp.Header.Get("Retry-After") != "7" {
		t.Errorf("Retry-After = %q", resp.Header.Get("Retry-After"))
	}
	ev := h.waitUsage(t, resp.Header.Get("x-request-id"))
	if ev.ErrorClass != "rate_limit_exceeded" || ev.StatusCode != 429 {
		t.Errorf("usage event = %v", ev)
	}
	resp, body = h.do(t, "POST", "/v1/messages", map[string]string{"x-api-key": h.fx.teamC}, `{"model":"echo","max_tokens":5,"messages":[]}`)
	if resp.StatusCode != 429 || !strings.Contains(string(body), `"type":"rate_limit_error"`) || !strings.Contains(string(body), "rpm limit") {
		t.Errorf("messages refusal: %d %s", resp.StatusCode, body)
	}
	h.upstream.mu.Lock()
	if h.upstream.calls != calls {
		t.Error("a refused request reached the provider")
	}
	h.upstream.mu.Unlock()
}

func TestGuardHooks(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{guard: fakeGuard{}})

	t.Run("request blocked", func(t *testing.T) {
		resp, body := h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"echo","messages":[{"role":"user","content":"forbidden"}]}`)
		checkError(t, resp, body, 400, "invalid_request_error", "content_blocked")
		ev := h.waitUsage(t, resp.Header.Get("x-request-id"))
		if ev.ErrorClass != "content_blocked" || len(ev.GuardrailEvents) != 1 || ev.GuardrailEvents[0].RuleId != "g-block" {
			t.Errorf("usage event = %v", ev)
		}
		resp, body = h.do(t, "POST", "/v1/messages", bearer(h.fx.key), `{"model":"echo","max_tokens":5,"messages":[{"role":"user","content":"forbidden"}]}`)
		if resp.StatusCode != 400 || !strings.Contains(string(body), `{"type":"error","error":{"type":"invalid_request_error","message":"The request was blocked by a guardrail."}}`) {
			t.Errorf("messages: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("request rewritten", func(t *testing.T) {
		for _, c := range []struct{ path, body, model string }{
			{"/v1/chat/completions", `{"model":"echo","messages":[{"role":"user","content":"my secret"}]}`, "echo"},
			{"/v1/messages", `{"model":"claude","max_tokens":5,"messages":[{"role":"user","content":"my secret"}]}`, "claude"},
			{"/v1/responses", `{"model":"gemini","input":"my secret"}`, "gemini"},
		} {
			resp, body := h.do(t, "POST", c.path, bearer(h.fx.key), c.body)
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %d %s", c.path, resp.StatusCode, body)
			}
			call, _ := h.upstream.lastCall()
			var sent bytes.Buffer
			for k, v := range call.Body {
				sent.WriteString(k)
				sent.WriteString(strings.ToLower(strings.TrimSpace(strings.ReplaceAll(fmtAny(v), "\n", " "))))
			}
			if strings.Contains(sent.String(), "secret") || !strings.Contains(sent.String(), "[redacted]") {
				t.Errorf("%s: upstream got %s", c.path, sent.String())
			}
			ev := h.waitUsage(t, resp.Header.Get("x-request-id"))
			if len(ev.GuardrailEvents) != 1 || ev.GuardrailEvents[0].RuleId != "g-redact" || ev.GuardrailEvents[0].Matches != 1 {
				t.Errorf("usage event = %v", ev)
			}
		}
	})

	t.Run("response filtered", func(t *testing.T) {
		for _, c := range []struct{ path, body, want string }{
			{"/v1/chat/completions", `{"model":"echo","messages":[{"role":"user","content":"hi"}]}`, `"content":"HELLO"`},
			{"/v1/chat/completions", `{"model":"echo","stream":true,"messages":[{"role":"user","content":"hi"}]}`, `"content":"LO"`},
			{"/v1/messages", `{"model":"claude","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, `"text":"HEL"`},
			{"/v1/messages", `{"model":"claude","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, `"text":"HELLO"`},
			{"/v1/responses", `{"model":"gemini","stream":true,"input":"hi"}`, `"text":"HELLO"`},
		} {
			resp, body := h.do(t, "POST", c.path, bearer(h.fx.key), c.body)
			if resp.StatusCode != 200 || !strings.Contains(string(body), c.want) || strings.Contains(string(body), "Hel") {
				t.Errorf("%s: %d, want %s in %s", c.path, resp.StatusCode, c.want, body)
			}
		}
	})

	t.Run("stream cut", func(t *testing.T) {
		for _, c := range []struct{ path, body, want string }{
			{"/v1/chat/completions", `{"model":"echo","stream":true,"messages":[{"role":"user","content":"cut"}]}`,
				`data: {"error":{"code":"content_blocked","message":"The response was stopped by a guardrail.","param":null,"type":"server_error"}}`},
			{"/v1/messages", `{"model":"claude","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"cut"}]}`,
				"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"The response was stopped by a guardrail.\"}}"},
			{"/v1/responses", `{"model":"gemini","stream":true,"input":"cut"}`, `"status":"failed"`},
		} {
			resp, body := h.do(t, "POST", c.path, bearer(h.fx.key), c.body)
			if resp.StatusCode != 200 || !strings.Contains(string(body), c.want) || strings.Contains(string(body), "LO") {
				t.Errorf("%s: %d, want %s in %s", c.path, resp.StatusCode, c.want, body)
			}
			ev := h.waitUsage(t, resp.Header.Get("x-request-id"))
			if ev.ErrorClass != "content_blocked" || len(ev.GuardrailEvents) != 1 || ev.GuardrailEvents[0].RuleId != "g-cut" || ev.CompletionTokens == 0 {
				t.Errorf("%s: usage event = %v", c.path, ev)
			}
		}
	})
}

func fmtAny(v any) string {
	var b strings.Builder
	var walk func(any)
	walk = func(v any) {
		switch t := v.(type) {
		case string:
			b.WriteString(t + " ")
		case []any:
			for _, x := range t {
				walk(x)
			}
		case map[string]any:
			for _, x := range t {
				walk(x)
			}
		}
	}
	walk(v)
	return b.String()
}
