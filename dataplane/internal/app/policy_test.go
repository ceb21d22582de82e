package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/app"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/fakecp"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/openai/openai-go/v3"
)

// TestLimitsThroughTheGateway: a key limited to 60 requests per minute gets its burst
// (10%: 6 requests) at once, then 429s in OpenAI's format naming the key's rpm limit,
// with RateLimit-* and Retry-After headers.
func TestLimitsThroughTheGateway(t *testing.T) {
	h := startHarness(t, harnessOptions{extra: func(s *gatehousev1.Snapshot) {
		for _, k := range s.Keys {
			if k.Id == "acmekey00001" {
				k.Limits = &gatehousev1.Limits{Rpm: 60}
			}
		}
	}})
	body := `{"model":"echo","messages":[{"role":"user","content":"hi"}]}`
	var ok, refused int
	var last *http.Response
	var lastBody []byte
	for range 10 {
		resp, b := h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), body)
		switch resp.StatusCode {
		case 200:
			ok++
			if resp.Header.Get("RateLimit-Limit") != "60" {
				t.Errorf("RateLimit-Limit = %q", resp.Header.Get("RateLimit-Limit"))
			}
		case 429:
			refused++
			last, lastBody = resp, b
		default:
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
	}
	if ok != 6 || refused != 4 {
		t.Fatalf("admitted %d, refused %d; want 6 and 4", ok, refused)
	}
	// A stored-response call counts against the same limits (it spends the provider
	// account's own): refused before its id is even looked at.
	if resp, b := h.do(t, "GET", "/v1/responses/resp_gh1AAAA", bearer(h.fx.key), ""); resp.StatusCode != 429 {
		t.Fatalf("stored-response call past the limit: %d %s", resp.StatusCode, b)
	}
	if resp, b := h.do(t, "POST", "/v1/messages/count_tokens", bearer(h.fx.key), `{"model":"claude","messages":[{"role":"user","content":"hi"}]}`); resp.StatusCode != 429 {
		t.Fatalf("count_tokens past the limit: %d %s", resp.StatusCode, b)
	}
	var e struct {
		Error struct{ Code, Message, Type string } `json:"error"`
	}
	if err := json.Unmarshal(lastBody, &e); err != nil || e.Error.Code != "rate_limit_exceeded" || !strings.Contains(e.Error.Message, "key") ||
		!strings.Contains(e.Error.Message, "requests per minute") {
		t.Fatalf("429 body = %s", lastBody)
	}
	if last.Header.Get("Retry-After") == "" || last.Header.Get("RateLimit-Remaining") != "0" {
		t.Fatalf("429 headers = %v", last.Header)
	}
	// Another key of the same team is not affected.
	if resp, b := h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.limited), body); resp.StatusCode != 200 {
		t.Fatalf("other key: %d %s", resp.StatusCode, b)
	}
	ev := h.waitUsage(t, last.Header.Get("x-request-id"))
	if ev.StatusCode != 429 || ev.ErrorClass != "rate_limit_exceeded" {
		t.Fatalf("usage event of the refusal: %v", ev)
	}
}

// TestRefusedRequestsCountAgainstLimits: requests refused before admission (unknown
// model, malformed body) count against the key's request limit too, and are answered
// with its 429 once over it.
func TestRefusedRequestsCountAgainstLimits(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{extra: func(s *gatehousev1.Snapshot) {
		for _, k := range s.Keys {
			if k.Id == "acmekey00001" {
				k.Limits = &gatehousev1.Limits{Rpm: 60} // a burst of 6
			}
		}
	}})
	for i, c := range []struct {
		path, body string
		status     int
	}{
		{"/v1/chat/completions", `{"model":"nope","messages":[]}`, 404},
		{"/v1/chat/completions", `{"model":"nope","messages":[]}`, 404},
		{"/v1/chat/completions", `{"model":`, 400},
		{"/v1/messages", `{"model":"nope","max_tokens":5,"messages":[]}`, 404},
		{"/v1/messages/count_tokens", `{"model":"nope","messages":[]}`, 404},
		{"/v1/embeddings", `{"model":"nope","input":"x"}`, 404},
		{"/v1/chat/completions", `{"model":"nope","messages":[]}`, 429},
		{"/v1/chat/completions", `{"model":"echo","messages":[{"role":"user","content":"hi"}]}`, 429},
	} {
		resp, b := h.do(t, "POST", c.path, bearer(h.fx.key), c.body)
		if resp.StatusCode != c.status {
			t.Fatalf("request %d (%s %s): %d %s, want %d", i, c.path, c.body, resp.StatusCode, b, c.status)
		}
		if c.status == 429 && (!strings.Contains(string(b), "key limit of 60 requests per minute") || resp.Header.Get("Retry-After") == "") {
			t.Fatalf("request %d: %s %v", i, b, resp.Header)
		}
	}
}

// emailUpstream streams a reply with an email address split across chunks, and
// records the request bodies it received.
func emailUpstream(bodies chan<- string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		select {
		case bodies <- string(raw):
		default:
		}
		var req struct {
			Stream bool `json:"stream"`
		}
		_ = json.Unmarshal(raw, &req)
		parts := []string{"Write to ", "jo", "hn.doe@exa", "mple.com", " today."}
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","created":1,"model":"up-echo","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}`,
				strings.Join(parts, ""))
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, p := range parts {
			fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up-echo\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":null}]}\n\n", p)
			w.(http.Flusher).Flush()
		}
		fmt.Fprint(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up-echo\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
		fmt.Fprint(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up-echo\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12}}\n\ndata: [DONE]\n\n")
	})
}

// TestGuardrailsThroughTheGateway: a team's rules redact emails in responses (also when
// streamed and split across chunks), block API keys in requests, and every trigger is
// on the usage event.
func TestGuardrailsThroughTheGateway(t *testing.T) {
	bodies := make(chan string, 16)
	h := startHarness(t, harnessOptions{upstream: emailUpstream(bodies), extra: func(s *gatehousev1.Snapshot) {
		for _, tm := range s.Teams {
			if tm.Id == "team-a" {
				tm.Guardrails = []*gatehousev1.GuardrailRule{
					{Id: "g-email", Name: "no-emails", Detector: gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_EMAIL,
						Mode: gatehousev1.GuardrailMode_GUARDRAIL_MODE_REDACT, Direction: gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_BOTH},
					{Id: "g-keys", Name: "no-secrets", Detector: gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_API_KEY,
						Mode: gatehousev1.GuardrailMode_GUARDRAIL_MODE_BLOCK, Direction: gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_REQUEST},
				}
			}
		}
	}})
	ctx := context.Background()

	// Request side: the API key is blocked before anything goes upstream.
	secret := "sk-proj-" + strings.Repeat("a1B2c3D4", 6)
	resp, b := h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"echo","messages":[{"role":"user","content":"my key is `+secret+`"}]}`)
	if resp.StatusCode != 400 || !strings.Contains(string(b), "content_blocked") || strings.Contains(string(b), secret) {
		t.Fatalf("blocked request: %d %s", resp.StatusCode, b)
	}
	ev := h.waitUsage(t, resp.Header.Get("x-request-id"))
	if len(ev.GuardrailEvents) == 0 || ev.GuardrailEvents[0].RuleId != "g-keys" || !slices.Equal(ev.GuardrailEvents[0].Texts, []string{"request"}) {
		t.Fatalf("usage event guardrails = %v", ev.GuardrailEvents)
	}

	// Request side: an email is redacted before it goes upstream.
	resp, b = h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"echo","messages":[{"role":"user","content":"mail ana@example.org"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("redacted request: %d %s", resp.StatusCode, b)
	}
	if len(bodies) != 1 {
		t.Fatalf("upstream calls = %d, want 1 (the blocked request must not go upstream)", len(bodies))
	}
	if sent := <-bodies; strings.Contains(sent, "ana@example.org") || !strings.Contains(sent, "REDACTED") {
		t.Fatalf("email reached the upstream: %s", sent)
	}

	// Response side, not streamed and streamed: the email split across chunks is redacted.
	got, err := h.client(h.fx.key).Chat.Completions.New(ctx, chatParams("echo"))
	if err != nil {
		t.Fatal(err)
	}
	if c := got.Choices[0].Message.Content; strings.Contains(c, "john.doe@example.com") || !strings.Contains(c, "today.") {
		t.Fatalf("non-streamed content = %q", c)
	}
	stream := h.client(h.fx.key).Chat.Completions.NewStreaming(ctx, chatParams("echo"))
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if c := acc.Choices[0].Message.Content; strings.Contains(c, "john.doe@example.com") || !strings.Contains(c, "Write to ") || !strings.Contains(c, "today.") {
		t.Fatalf("streamed content = %q", c)
	}
}

// TestFallbackModelsLimitsHold: a fallback model's own limits hold for the requests it
// answers as a fallback, and the model asked for is not charged for tokens another
// model produced — also when a guardrail rewrote the request.
func TestFallbackModelsLimitsHold(t *testing.T) {
	t.Parallel()
	for _, rewritten := range []bool{false, true} {
		t.Run(fmt.Sprintf("rewritten=%v", rewritten), func(t *testing.T) {
			t.Parallel()
			testFallbackLimits(t, rewritten)
		})
	}
}

func testFallbackLimits(t *testing.T, rewritten bool) {
	primary := newFaultUpstream(t, "500")
	fb := newFaultUpstream(t, "ok")
	h := startHarness(t, harnessOptions{extra: func(s *gatehousev1.Snapshot) {
		withFaultModel("primary", primary, &gatehousev1.Routing{MaxRetries: 0, RetryBackoffMs: 1, BreakerFailures: 1000}, "fb")(s)
		withFaultModel("fb", fb, &gatehousev1.Routing{MaxRetries: 0})(s)
		for _, m := range s.Models {
			switch m.Name {
			case "primary":
				m.Limits = &gatehousev1.Limits{Tpm: 600} // a burst of 60 tokens
			case "fb":
				m.Limits = &gatehousev1.Limits{Rpm: 60} // a burst of 6 requests
			}
		}
		for _, tm := range s.Teams {
			if rewritten && tm.Id == "team-a" {
				tm.Guardrails = []*gatehousev1.GuardrailRule{{Id: "g-email", Name: "no-emails", Detector: gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_EMAIL,
					Mode: gatehousev1.GuardrailMode_GUARDRAIL_MODE_REDACT, Direction: gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_REQUEST}}
			}
		}
	}})
	body := `{"model":"primary","max_tokens":20,"messages":[{"role":"user","content":"hi ana@example.org"}]}`
	// Each answer uses more tokens than the primary's burst allows in a few requests:
	// charged to the primary, they would refuse it before the fallback's limit is hit.
	for i := range 6 {
		resp, b := h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), body)
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
		}
	}
	if fb.count() != 6 {
		t.Fatalf("fallback called %d times, want 6", fb.count())
	}
	// The fallback's rpm is spent: the primary's failure is the answer, and the
	// fallback is not called past its limit.
	before := primary.count()
	resp, b := h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), body)
	if resp.StatusCode != 500 || fb.count() != 6 || primary.count() == before {
		t.Fatalf("past the fallback's limit: %d %s (fallback called %d times, primary %d)", resp.StatusCode, b, fb.count(), primary.count())
	}
	// Asked for directly, the fallback is refused, naming its own limit.
	resp, b = h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"fb","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 429 || !strings.Contains(string(b), "model") || !strings.Contains(string(b), "requests per minute") {
		t.Fatalf("fallback asked for directly: %d %s", resp.StatusCode, b)
	}
	// The primary still admits requests: it was never charged for the fallback's
	// tokens, and got back its estimate each time it was left.
	before = primary.count()
	resp, b = h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), body)
	if resp.StatusCode != 500 || primary.count() == before {
		t.Fatalf("the primary after 8 requests: %d %s, want its own 500 (admitted)", resp.StatusCode, b)
	}
}

// TestPeerCountKept: the gateway keeps the region's gateway count in its config cache
// directory, and a restart starts from it (peers.Options.Floor) rather than from a
// lone gateway's share.
func TestPeerCountKept(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "peers.count"), []byte("3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := app.ReadPeerCount(dir); got != 3 {
		t.Fatalf("kept count read as %d, want 3", got)
	}
	startHarness(t, harnessOptions{cacheDir: dir})
	// Alone in its region (heartbeats every 50 ms), it settles and keeps 1.
	fakecp.Eventually(t, 5*time.Second, func() error {
		b, err := os.ReadFile(filepath.Join(dir, "peers.count"))
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(b)) != "1" {
			return fmt.Errorf("kept %q", b)
		}
		return nil
	})
}
