package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

// nativeResponsesUpstream is an OpenAI-compatible provider with a Responses API: it
// records what reached it and answers with a custom tool call and a message, streamed
// or not, with usage.
type nativeResponsesUpstream struct {
	// cancelled receives when a request whose input is "block" ends early: that one
	// streams a delta and then waits for the gateway to give up.
	cancelled chan struct{}
	// other, when set, serves every other path (chat completions).
	other  http.Handler
	mu     sync.Mutex
	calls  int
	path   string
	auth   string
	body   map[string]any
	rawReq string
}

const nativeUsage = `{"input_tokens":11,"input_tokens_details":{"cached_tokens":3},"output_tokens":7,"output_tokens_details":{"reasoning_tokens":2},"total_tokens":18}`

func (u *nativeResponsesUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if u.other != nil && !strings.HasSuffix(r.URL.Path, "/responses") {
		u.other.ServeHTTP(w, r)
		return
	}
	b, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	u.mu.Lock()
	u.calls++
	u.path, u.auth, u.body, u.rawReq = r.URL.Path, r.Header.Get("Authorization"), body, string(b)
	u.mu.Unlock()
	if !strings.HasSuffix(r.URL.Path, "/responses") {
		http.Error(w, "not here", http.StatusNotFound)
		return
	}
	if body["previous_response_id"] == "resp_gone" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":{"message":"Previous response with id 'resp_gone' not found.","type":"invalid_request_error","param":"previous_response_id","code":"previous_response_not_found"}}`))
		return
	}
	call := `{"type":"custom_tool_call","id":"ctc_1","call_id":"call_1","name":"apply_patch","input":"*** Begin Patch","status":"completed"}`
	msg := func(status, text string) string {
		return fmt.Sprintf(`{"type":"message","id":"msg_1","role":"assistant","status":%q,"content":[%s]}`, status, text)
	}
	part := `{"type":"output_text","text":"Patched","annotations":[]}`
	full := func(status, usage string) string {
		return fmt.Sprintf(`{"id":"resp_up1","object":"response","created_at":1700000000,"status":%q,"model":"up-echo","output":[%s,%s],"usage":%s}`,
			status, call, msg("completed", part), usage)
	}
	if body["stream"] != true {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(full("completed", nativeUsage)))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	events := []string{
		`{"type":"response.created","sequence_number":0,"response":{"id":"resp_up1","object":"response","created_at":1700000000,"status":"in_progress","model":"up-echo","output":[],"usage":null}}`,
		`{"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":` + call + `}`,
		`{"type":"response.output_item.done","sequence_number":2,"output_index":0,"item":` + call + `}`,
		`{"type":"response.output_item.added","sequence_number":3,"output_index":1,"item":` + msg("in_progress", "") + `}`,
		`{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":1,"content_index":0,"delta":"Pat"}`,
		`{"type":"response.output_text.delta","sequence_number":5,"item_id":"msg_1","output_index":1,"content_index":0,"delta":"ched"}`,
		`{"type":"response.output_text.done","sequence_number":6,"item_id":"msg_1","output_index":1,"content_index":0,"text":"Patched"}`,
		`{"type":"response.output_item.done","sequence_number":7,"output_index":1,"item":` + msg("completed", part) + `}`,
		`{"type":"response.completed","sequence_number":8,"response":` + full("completed", nativeUsage) + `}`,
	}
	rc := http.NewResponseController(w)
	if body["input"] == "block" || body["input"] == "break" {
		events = events[:5]
	}
	for _, ev := range events {
		var typed struct{ Type string }
		_ = json.Unmarshal([]byte(ev), &typed)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typed.Type, ev)
		_ = rc.Flush()
	}
	switch body["input"] {
	case "block":
		<-r.Context().Done()
		u.cancelled <- struct{}{}
	case "break":
		panic(http.ErrAbortHandler) // the connection drops mid-stream
	}
}

func (u *nativeResponsesUpstream) last() (calls int, path, auth string, body map[string]any, raw string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.calls, u.path, u.auth, u.body, u.rawReq
}

// teamAGuardrail gives team-a the one guardrail rule.
func teamAGuardrail(rule *gatehousev1.GuardrailRule) func(*gatehousev1.Snapshot) {
	return func(s *gatehousev1.Snapshot) {
		for _, tm := range s.Teams {
			if tm.Id == "team-a" {
				tm.Guardrails = []*gatehousev1.GuardrailRule{rule}
			}
		}
	}
}

// nativeParams is a Responses request the chat form cannot carry: it continues a
// stored response and offers a custom (free-form) tool, as Codex does.
func nativeParams(model, text string) responses.ResponseNewParams {
	return responses.ResponseNewParams{
		Model:              model,
		PreviousResponseID: openai.String("resp_prev"),
		Input:              responses.ResponseNewParamsInputUnion{OfString: openai.String(text)},
		Tools:              []responses.ToolUnionParam{{OfCustom: &responses.CustomToolParam{Name: "apply_patch", Description: openai.String("Edit files.")}}},
	}
}

// TestResponsesNative: a Responses request only a provider's own Responses API can
// serve (previous_response_id, a custom tool) goes to an OpenAI-compatible provider's
// /responses as it came — the model replaced, the provider's credential instead of
// the caller's key — and its answer, streamed or not, comes back as the provider sent
// it, metered and priced like any other; the request guardrails still apply.
func TestResponsesNative(t *testing.T) {
	t.Parallel()
	up := &nativeResponsesUpstream{cancelled: make(chan struct{}, 1)}
	h := startHarness(t, harnessOptions{upstream: up, extra: teamAGuardrail(&gatehousev1.GuardrailRule{Id: "g-email", Name: "g-email",
		Detector: gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_EMAIL,
		Mode:     gatehousev1.GuardrailMode_GUARDRAIL_MODE_REDACT, Direction: gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_REQUEST})})
	ctx := context.Background()
	checkSent := func(t *testing.T) {
		t.Helper()
		_, path, auth, body, raw := up.last()
		tools, _ := body["tools"].([]any)
		tool, _ := func() (map[string]any, bool) {
			if len(tools) != 1 {
				return nil, false
			}
			m, ok := tools[0].(map[string]any)
			return m, ok
		}()
		if !strings.HasSuffix(path, "/responses") || auth != "Bearer "+upstreamKey || body["model"] != "up-echo" ||
			body["previous_response_id"] != "resp_prev" || tool["type"] != "custom" || tool["name"] != "apply_patch" {
			t.Errorf("upstream got %s (auth %q): %s", path, auth, raw)
		}
		if strings.Contains(raw, "jane@example.com") || !strings.Contains(raw, "write to") || strings.Contains(raw, h.fx.key) {
			t.Errorf("the request guardrail did not redact what was sent: %s", raw)
		}
	}
	checkUsage := func(t *testing.T, httpResp *http.Response, stream bool) {
		t.Helper()
		ev := h.waitUsage(t, httpResp.Header.Get("x-request-id"))
		if ev.Endpoint != "responses" || ev.PromptTokens != promptTokens || ev.CompletionTokens != outputTokens ||
			ev.CachedTokens != cachedTokens || ev.CostMicros != 74 || ev.Streamed != stream || ev.StatusCode != 200 {
			t.Errorf("usage event = %v", ev)
		}
		if len(ev.GuardrailEvents) != 1 || ev.GuardrailEvents[0].RuleId != "g-email" {
			t.Errorf("guardrail events = %v", ev.GuardrailEvents)
		}
	}

	t.Run("complete", func(t *testing.T) {
		var httpResp *http.Response
		got, err := h.client(h.fx.key).Responses.New(ctx, nativeParams("echo", "write to jane@example.com"), option.WithResponseInto(&httpResp))
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != "resp_up1" || got.OutputText() != "Patched" || len(got.Output) != 2 || got.Output[0].Type != "custom_tool_call" ||
			got.Output[0].Input != "*** Begin Patch" || got.Usage.OutputTokensDetails.ReasoningTokens != 2 {
			t.Errorf("response = %+v", got)
		}
		checkSent(t)
		checkUsage(t, httpResp, false)
	})

	t.Run("stream", func(t *testing.T) {
		var httpResp *http.Response
		s := h.client(h.fx.key).Responses.NewStreaming(ctx, nativeParams("echo", "write to jane@example.com"), option.WithResponseInto(&httpResp))
		var deltas strings.Builder
		var types []string
		var done responses.Response
		for s.Next() {
			ev := s.Current()
			types = append(types, ev.Type)
			switch ev.Type {
			case "response.output_text.delta":
				deltas.WriteString(ev.Delta)
			case "response.completed":
				done = ev.Response
			}
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		if deltas.String() != "Patched" || len(types) != 9 || types[1] != "response.output_item.added" ||
			done.ID != "resp_up1" || done.Usage.InputTokens != promptTokens {
			t.Errorf("deltas %q, events %v, completed %+v", deltas.String(), types, done)
		}
		checkSent(t)
		checkUsage(t, httpResp, true)
	})

	t.Run("client leaves", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var httpResp *http.Response
		s := h.client(h.fx.key).Responses.NewStreaming(ctx, nativeParams("echo", "block"), option.WithResponseInto(&httpResp))
		for s.Next() && s.Current().Type != "response.output_text.delta" {
		}
		cancel()
		s.Close()
		select {
		case <-up.cancelled:
		case <-time.After(5 * time.Second):
			t.Fatal("upstream request not cancelled after the client left")
		}
		// Charged for what was used: the provider never said, so the gateway estimates.
		ev := h.waitUsage(t, httpResp.Header.Get("x-request-id"))
		if ev.ErrorClass != "client_closed" || !ev.Streamed || ev.CompletionTokens < 1 || ev.PromptTokens < 1 || ev.CostMicros < 1 {
			t.Errorf("usage event = %v, want streamed, client_closed, an estimate charged", ev)
		}
	})

	t.Run("stream broken by the provider", func(t *testing.T) {
		s := h.client(h.fx.key).Responses.NewStreaming(ctx, nativeParams("echo", "break"))
		var types []string
		for s.Next() {
			types = append(types, s.Current().Type)
		}
		// The provider's response.created stays the only one; an error event ends it.
		created := 0
		for _, typ := range types {
			if typ == "response.created" {
				created++
			}
		}
		if created != 1 || len(types) != 6 || types[5] != "error" {
			t.Errorf("events %v (err %v)", types, s.Err())
		}
	})

	t.Run("background refused", func(t *testing.T) {
		calls, _, _, _, _ := up.last()
		params := nativeParams("echo", "x")
		params.Background = openai.Bool(true)
		_, err := h.client(h.fx.key).Responses.New(ctx, params)
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != "background" {
			t.Errorf("error = %v", err)
		}
		if now, _, _, _, _ := up.last(); now != calls {
			t.Errorf("upstream called %d times", now-calls)
		}
	})

	t.Run("provider refusal relayed", func(t *testing.T) {
		params := nativeParams("echo", "x")
		params.PreviousResponseID = openai.String("resp_gone")
		_, err := h.client(h.fx.key).Responses.New(ctx, params)
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Code != "previous_response_not_found" {
			t.Errorf("error = %v", err)
		}
	})

	t.Run("only Anthropic deployments", func(t *testing.T) {
		calls, _, _, _, _ := up.last()
		_, err := h.client(h.fx.key).Responses.New(ctx, nativeParams("claude", "x"))
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != "previous_response_id" {
			t.Errorf("error = %v", err)
		}
		if now, _, _, _, _ := up.last(); now != calls {
			t.Errorf("upstream called %d times", now-calls)
		}
	})
}

// TestResponsesNativeResponseGuardrails: a team whose answers pass response
// guardrails is not served through a provider's own Responses API, which the
// gateway relays unchecked: the request is refused before it leaves, and says why.
func TestResponsesNativeResponseGuardrails(t *testing.T) {
	t.Parallel()
	up := &nativeResponsesUpstream{}
	h := startHarness(t, harnessOptions{upstream: up, extra: teamAGuardrail(&gatehousev1.GuardrailRule{Id: "g-card", Name: "g-card",
		Detector: gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_CARD,
		Mode:     gatehousev1.GuardrailMode_GUARDRAIL_MODE_AUDIT, Direction: gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_RESPONSE})})
	for _, stream := range []bool{false, true} {
		var err error
		if stream {
			s := h.client(h.fx.key).Responses.NewStreaming(context.Background(), nativeParams("echo", "x"))
			for s.Next() {
			}
			err = s.Err()
		} else {
			_, err = h.client(h.fx.key).Responses.New(context.Background(), nativeParams("echo", "x"))
		}
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, "response guardrails") {
			t.Errorf("stream=%v: error = %v", stream, err)
		}
	}
	if calls, _, _, _, _ := up.last(); calls != 0 {
		t.Errorf("upstream called %d times", calls)
	}
	// What the chat form carries is served as before, guardrails and all.
	got, err := h.client(h.fx.key).Responses.New(context.Background(), responses.ResponseNewParams{
		Model: "echo", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}})
	if calls, path, _, _, _ := up.last(); calls != 1 || !strings.HasSuffix(path, "/chat/completions") {
		t.Errorf("translated request: %d calls, last %s (%v, %v)", calls, path, got, err)
	}
}

// TestResponsesNativeSkipsProvidersWithout: a deployment whose provider has no
// Responses API (404) is skipped for another of the model's deployments, and its
// breaker, which guards its chat traffic too, learns nothing from it.
func TestResponsesNativeSkipsProvidersWithout(t *testing.T) {
	t.Parallel()
	up := &nativeResponsesUpstream{cancelled: make(chan struct{}, 1)}
	native := httptest.NewServer(up)
	t.Cleanup(native.Close)
	h := startHarness(t, harnessOptions{extra: func(s *gatehousev1.Snapshot) {
		s.Providers = append(s.Providers, &gatehousev1.Provider{Id: "native", Name: "native",
			Type: gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE, BaseUrl: native.URL + "/v1", ApiKey: upstreamKey})
		for _, m := range s.Models {
			if m.Name == "echo" {
				m.Deployments = []*gatehousev1.Deployment{
					{Id: "d-plain", ProviderId: "up", UpstreamModel: "up-echo", Weight: 1},
					{Id: "d-native", ProviderId: "native", UpstreamModel: "up-echo", Weight: 1},
				}
			}
		}
	}})
	up.other = http.HandlerFunc(h.upstream.serve)
	for i := range 20 {
		got, err := h.client(h.fx.key).Responses.New(context.Background(), nativeParams("echo", "x"))
		if err != nil || got.ID != "resp_up1" {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if calls, _, _, _, _ := up.last(); calls != 20 {
		t.Errorf("the native provider answered %d of 20", calls)
	}
	resp, body := h.do(t, "GET", "/metrics", nil, "")
	if resp.StatusCode != 200 {
		t.Fatalf("metrics = %d", resp.StatusCode)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "gatehouse_gateway_deployment_breaker_state") && !strings.HasSuffix(line, " 0") {
			t.Errorf("a breaker moved: %s", line)
		}
	}
	if !strings.Contains(string(body), "gatehouse_gateway_deployment_breaker_state") {
		t.Error("no breaker state in the metrics")
	}
}
