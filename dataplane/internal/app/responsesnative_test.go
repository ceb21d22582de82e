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
	"google.golang.org/protobuf/proto"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/fakecp"
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
	apiKey string // the api-key header (Azure)
	body   map[string]any
	rawReq string
	// method and query of the last call.
	method, query string
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
	u.apiKey = r.Header.Get("api-key")
	u.method, u.query = r.Method, r.URL.RawQuery
	u.mu.Unlock()
	if r.Method != http.MethodPost || strings.HasSuffix(r.URL.Path, "/cancel") {
		u.stored(w, r)
		return
	}
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
	// The reply is "Patched" in two deltas; for "card", a card number split across
	// them.
	d1, d2 := "Pat", "ched"
	if body["input"] == "card" {
		d1, d2 = "Pay 4111 11", "11 1111 1111 now"
	}
	part := fmt.Sprintf(`{"type":"output_text","text":%q,"annotations":[]}`, d1+d2)
	// The answer's id is resp_up1, resp_up2 when it continues another (resp_gone for
	// "forget", which the provider then forgets), and it echoes the previous
	// response's id, as OpenAI's does.
	id := "resp_up1"
	switch {
	case body["input"] == "forget":
		id = "resp_gone"
	case body["previous_response_id"] != nil:
		id = "resp_up2"
	}
	prev, _ := json.Marshal(body["previous_response_id"])
	full := func(status, usage string) string {
		return fmt.Sprintf(`{"id":%q,"object":"response","created_at":1700000000,"status":%q,"model":"up-echo","previous_response_id":%s,"output":[%s,%s],"usage":%s}`,
			id, status, prev, call, msg("completed", part), usage)
	}
	if body["stream"] != true {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(full("completed", nativeUsage)))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	events := []string{
		`{"type":"response.created","sequence_number":0,"response":{"id":"` + id + `","object":"response","created_at":1700000000,"status":"in_progress","model":"up-echo","previous_response_id":` + string(prev) + `,"output":[],"usage":null}}`,
		`{"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":` + call + `}`,
		`{"type":"response.output_item.done","sequence_number":2,"output_index":0,"item":` + call + `}`,
		`{"type":"response.output_item.added","sequence_number":3,"output_index":1,"item":` + msg("in_progress", "") + `}`,
		`{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":1,"content_index":0,"delta":"` + d1 + `"}`,
		`{"type":"response.output_text.delta","sequence_number":5,"item_id":"msg_1","output_index":1,"content_index":0,"delta":"` + d2 + `"}`,
		`{"type":"response.output_text.done","sequence_number":6,"item_id":"msg_1","output_index":1,"content_index":0,"text":"` + d1 + d2 + `"}`,
		`{"type":"response.output_item.done","sequence_number":7,"output_index":1,"item":` + msg("completed", part) + `}`,
		`{"type":"response.completed","sequence_number":8,"response":` + full("completed", nativeUsage) + `}`,
	}
	rc := http.NewResponseController(w)
	switch body["input"] {
	case "block", "break":
		events = events[:5]
	case "audio": // an event type the gateway does not know, with a delta
		events = append(events[:4:4], `{"type":"response.audio.delta","sequence_number":4,"delta":"AAAA"}`)
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

// stored serves the stored-response operations on resp_up1 (which continued
// resp_up0) and resp_up2 (which continued resp_up1); every other id is not found.
func (u *nativeResponsesUpstream) stored(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, rest, _ := strings.Cut(r.URL.Path, "/v1/responses/") // /v1/…, or Azure's /openai/v1/…
	id, items := strings.CutSuffix(rest, "/input_items")
	id, cancel := strings.CutSuffix(id, "/cancel")
	previous := map[string]string{"resp_up1": "resp_up0", "resp_up2": "resp_up1"}
	switch {
	case previous[id] == "":
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":{"message":"Response with id '%s' not found.","type":"invalid_request_error","param":null,"code":null}}`, id)
	case items:
		w.Write([]byte(`{"object":"list","data":[{"id":"msg_0","type":"message","role":"user","status":"completed","content":[{"type":"input_text","text":"hello"}]}],"first_id":"msg_0","last_id":"msg_0","has_more":false}`))
	case cancel && r.Method == http.MethodPost:
		fmt.Fprintf(w, `{"id":%q,"object":"response","created_at":1700000000,"status":"cancelled","background":true,"model":"up-echo","previous_response_id":%q,"output":[]}`,
			id, previous[id])
	case r.Method == http.MethodDelete:
		fmt.Fprintf(w, `{"id":%q,"object":"response.deleted","deleted":true}`, id)
	default:
		fmt.Fprintf(w, `{"id":%q,"object":"response","created_at":1700000000,"status":"completed","model":"up-echo","previous_response_id":%q,"output":[],"usage":%s}`,
			id, previous[id], nativeUsage)
	}
}

// startNative starts a provider with a Responses API on loopback and returns it with
// its registration as provider id.
func startNative(t *testing.T, id string) (*nativeResponsesUpstream, *gatehousev1.Provider) {
	t.Helper()
	up := &nativeResponsesUpstream{cancelled: make(chan struct{}, 1)}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	return up, &gatehousev1.Provider{Id: id, Name: id, Type: gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE,
		BaseUrl: srv.URL + "/v1", ApiKey: upstreamKey}
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

// responseCardRule is a response rule on card numbers in mode.
func responseCardRule(mode gatehousev1.GuardrailMode) *gatehousev1.GuardrailRule {
	return &gatehousev1.GuardrailRule{Id: "g-card", Name: "g-card", Detector: gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_CARD,
		Mode: mode, Direction: gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_RESPONSE}
}

// nativeParams is a Responses request the chat form cannot carry: it offers a custom
// (free-form) tool, as Codex does.
func nativeParams(model, text string) responses.ResponseNewParams {
	return responses.ResponseNewParams{
		Model: model,
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(text)},
		Tools: []responses.ToolUnionParam{{OfCustom: &responses.CustomToolParam{Name: "apply_patch", Description: openai.String("Edit files.")}}},
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
			tool["type"] != "custom" || tool["name"] != "apply_patch" {
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
		if !strings.HasPrefix(got.ID, "resp_gh1") || got.OutputText() != "Patched" || len(got.Output) != 2 || got.Output[0].Type != "custom_tool_call" ||
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
		var created string
		for s.Next() {
			ev := s.Current()
			types = append(types, ev.Type)
			if strings.Contains(ev.RawJSON(), "resp_up1") {
				t.Errorf("the provider's response id reached the caller: %s", ev.RawJSON())
			}
			switch ev.Type {
			case "response.created":
				created = ev.Response.ID
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
			!strings.HasPrefix(done.ID, "resp_gh1") || done.ID != created || done.Usage.InputTokens != promptTokens {
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
		// The provider answers with resp_gone, then says it does not have it.
		forgotten, err := h.client(h.fx.key).Responses.New(ctx, nativeParams("echo", "forget"))
		if err != nil {
			t.Fatal(err)
		}
		params := nativeParams("echo", "x")
		params.PreviousResponseID = openai.String(forgotten.ID)
		_, err = h.client(h.fx.key).Responses.New(ctx, params)
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Code != "previous_response_not_found" {
			t.Fatalf("error = %v", err)
		}
		// It names the response by the caller's id, not the provider's.
		if _, _, _, body, _ := up.last(); body["previous_response_id"] != "resp_gone" ||
			!strings.Contains(apiErr.Message, forgotten.ID) || strings.Contains(apiErr.RawJSON(), "resp_gone") {
			t.Errorf("sent %v, relayed %s", body["previous_response_id"], apiErr.RawJSON())
		}
	})

	t.Run("only Anthropic deployments", func(t *testing.T) {
		calls, _, _, _, _ := up.last()
		_, err := h.client(h.fx.key).Responses.New(ctx, nativeParams("claude", "x"))
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != "tools" {
			t.Errorf("error = %v", err)
		}
		if now, _, _, _, _ := up.last(); now != calls {
			t.Errorf("upstream called %d times", now-calls)
		}
	})
}

// TestResponsesNativeResponseGuardrails: a native answer for a team with response
// guardrails is filtered as it is relayed — a card number split across two deltas is
// redacted in the deltas and in every whole copy of the text (the done event, the
// item, the final response), blocked (a refusal, or an error event ending the stream)
// or only recorded (audit) — and a stream event whose text the gateway cannot check
// ends the stream.
func TestResponsesNativeResponseGuardrails(t *testing.T) {
	t.Parallel()
	const card = "4111 1111 1111 1111"
	streamed := func(t *testing.T, h *harness) (deltas string, raw []string, types []string, err error) {
		s := h.client(h.fx.key).Responses.NewStreaming(context.Background(), nativeParams("echo", "card"))
		var b strings.Builder
		for s.Next() {
			ev := s.Current()
			types, raw = append(types, ev.Type), append(raw, ev.RawJSON())
			if ev.Type == "response.output_text.delta" {
				b.WriteString(ev.Delta)
			}
		}
		return b.String(), raw, types, s.Err()
	}
	for _, mode := range []gatehousev1.GuardrailMode{gatehousev1.GuardrailMode_GUARDRAIL_MODE_REDACT,
		gatehousev1.GuardrailMode_GUARDRAIL_MODE_BLOCK, gatehousev1.GuardrailMode_GUARDRAIL_MODE_AUDIT} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			up := &nativeResponsesUpstream{}
			h := startHarness(t, harnessOptions{upstream: up, extra: teamAGuardrail(responseCardRule(mode))})
			var httpResp *http.Response
			got, err := h.client(h.fx.key).Responses.New(context.Background(), nativeParams("echo", "card"), option.WithResponseInto(&httpResp))
			deltas, raw, types, serr := streamed(t, h)
			all := strings.Join(raw, "\n")
			switch mode {
			case gatehousev1.GuardrailMode_GUARDRAIL_MODE_REDACT:
				if err != nil || strings.Contains(got.RawJSON(), card) || !strings.HasPrefix(got.OutputText(), "Pay ") ||
					!strings.HasSuffix(got.OutputText(), " now") || got.Output[0].Input != "*** Begin Patch" {
					t.Errorf("complete: %v %s", err, got.RawJSON())
				}
				if serr != nil || strings.Contains(all, card) || strings.Contains(all, "4111") || deltas == "" ||
					!strings.HasPrefix(deltas, "Pay ") || !strings.HasSuffix(deltas, " now") {
					t.Errorf("stream: %v, deltas %q, events %v", serr, deltas, types)
				}
				// Every whole copy of the text is what the deltas said.
				for _, r := range raw {
					if strings.Contains(r, `"type":"response.output_text.done"`) || strings.Contains(r, `"type":"response.completed"`) {
						if !strings.Contains(r, deltas) {
							t.Errorf("a whole copy differs from the deltas %q: %s", deltas, r)
						}
					}
				}
				if types[len(types)-1] != "response.completed" {
					t.Errorf("events %v", types)
				}
			case gatehousev1.GuardrailMode_GUARDRAIL_MODE_BLOCK:
				var apiErr *openai.Error
				if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || strings.Contains(apiErr.RawJSON(), "4111") {
					t.Errorf("complete: %v", err)
				}
				if strings.Contains(all, "4111") || len(types) == 0 || types[len(types)-1] != "error" {
					t.Errorf("stream: %v, events %v: %s", serr, types, all)
				}
			case gatehousev1.GuardrailMode_GUARDRAIL_MODE_AUDIT:
				if err != nil || got.OutputText() != "Pay "+card+" now" || serr != nil || deltas != "Pay "+card+" now" {
					t.Errorf("complete %v %q; stream %v %q", err, got.OutputText(), serr, deltas)
				}
			}
			if httpResp != nil {
				ev := h.waitUsage(t, httpResp.Header.Get("x-request-id"))
				if len(ev.GuardrailEvents) == 0 || ev.GuardrailEvents[0].RuleId != "g-card" || ev.GuardrailEvents[0].Direction == "request" {
					t.Errorf("guardrail events = %v", ev.GuardrailEvents)
				}
			}
		})
	}

	t.Run("an event the gateway cannot check", func(t *testing.T) {
		t.Parallel()
		h := startHarness(t, harnessOptions{upstream: &nativeResponsesUpstream{}, extra: teamAGuardrail(responseCardRule(gatehousev1.GuardrailMode_GUARDRAIL_MODE_REDACT))})
		s := h.client(h.fx.key).Responses.NewStreaming(context.Background(), nativeParams("echo", "audio"))
		var types []string
		var last string
		for s.Next() {
			types, last = append(types, s.Current().Type), s.Current().RawJSON()
		}
		if len(types) == 0 || types[len(types)-1] != "error" || !strings.Contains(last, "content_unverifiable") || strings.Contains(last, "AAAA") {
			t.Errorf("events %v, last %s", types, last)
		}
	})
}

// TestResponsesNativeSkipsProvidersWithout: a deployment whose provider has no
// Responses API (404) is skipped for another of the model's deployments, and its
// breaker, which guards its chat traffic too, learns nothing from it.
func TestResponsesNativeSkipsProvidersWithout(t *testing.T) {
	t.Parallel()
	up, prov := startNative(t, "native")
	h := startHarness(t, harnessOptions{extra: func(s *gatehousev1.Snapshot) {
		s.Providers = append(s.Providers, prov)
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
		if err != nil || !strings.HasPrefix(got.ID, "resp_gh1") {
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

// TestResponsesNativeIDsAreSealed: the caller never sees a provider's response id. It
// gets a sealed one, bound to its team, which a follow-up (previous_response_id)
// turns back into the provider's id on a deployment of the same provider — the
// account that holds the conversation. Another team's id, a provider's raw id and a
// tampered id are not found, and nothing is sent.
func TestResponsesNativeIDsAreSealed(t *testing.T) {
	t.Parallel()
	n1, p1 := startNative(t, "n1")
	n2, p2 := startNative(t, "n2")
	otherKey, otherSum := fakecp.NewKey("acmekey00099")
	h := startHarness(t, harnessOptions{extra: func(s *gatehousev1.Snapshot) {
		s.Providers = append(s.Providers, p1, p2)
		s.Models = append(s.Models,
			&gatehousev1.Model{Id: "m-pair", Name: "pair", ProviderId: "n1", UpstreamModel: "up-echo", Deployments: []*gatehousev1.Deployment{
				{Id: "d-n1", ProviderId: "n1", UpstreamModel: "up-echo", Weight: 1},
				{Id: "d-n2", ProviderId: "n2", UpstreamModel: "up-echo", Weight: 1},
			}},
			&gatehousev1.Model{Id: "m-only-n2", Name: "only-n2", ProviderId: "n2", UpstreamModel: "up-echo"},
		)
		s.Teams = append(s.Teams, &gatehousev1.Team{Id: "team-d", Slug: "d"})
		s.Keys = append(s.Keys, &gatehousev1.ApiKey{Id: "acmekey00099", TeamId: "team-d", SecretSha256: otherSum})
	}})
	ctx := context.Background()
	calls := func() (int, int) {
		c1, _, _, _, _ := n1.last()
		c2, _, _, _, _ := n2.last()
		return c1, c2
	}
	lastPrevious := func(up *nativeResponsesUpstream) any {
		_, _, _, body, _ := up.last()
		return body["previous_response_id"]
	}
	continueWith := func(key, model, prev string) (*responses.Response, string, error) {
		params := nativeParams(model, "go on")
		params.PreviousResponseID = openai.String(prev)
		var httpResp *http.Response
		got, err := h.client(key).Responses.New(ctx, params, option.WithResponseInto(&httpResp))
		if err != nil {
			return nil, "", err
		}
		return got, got.RawJSON(), nil
	}

	// Created on either provider, continued on the same one, every time.
	var fromN1, continuedOnN1 string
	for i := range 12 {
		b1, b2 := calls()
		first, err := h.client(h.fx.key).Responses.New(ctx, nativeParams("pair", "hello"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(first.ID, "resp_gh1") || strings.Contains(first.RawJSON(), "resp_up1") {
			t.Fatalf("created %q: %s", first.ID, first.RawJSON())
		}
		a1, _ := calls()
		holder := n2
		if a1 > b1 {
			holder, fromN1 = n1, first.ID
		}
		got, raw, err := continueWith(h.fx.key, "pair", first.ID)
		if err != nil {
			t.Fatalf("continue %d: %v", i, err)
		}
		if holder == n1 {
			continuedOnN1 = got.ID
		}
		c1, c2 := calls()
		if (holder == n1 && (c1 != b1+2 || c2 != b2)) || (holder == n2 && (c2 != b2+2 || c1 != b1)) {
			t.Fatalf("round %d: created and continued on different providers (n1 %d→%d, n2 %d→%d)", i, b1, c1, b2, c2)
		}
		if lastPrevious(holder) != "resp_up1" {
			t.Errorf("the provider got previous_response_id %v", lastPrevious(holder))
		}
		if got.PreviousResponseID != first.ID || got.ID == first.ID || !strings.HasPrefix(got.ID, "resp_gh1") || strings.Contains(raw, "resp_up") {
			t.Errorf("continued answer names %q as previous (want %q): %s", got.PreviousResponseID, first.ID, raw)
		}
	}
	if fromN1 == "" {
		t.Fatal("12 responses and none from n1: the weights are not being used")
	}

	// Streamed continuation: every event carries sealed ids only.
	params := nativeParams("pair", "go on")
	params.PreviousResponseID = openai.String(fromN1)
	st := h.client(h.fx.key).Responses.NewStreaming(ctx, params)
	n := 0
	for st.Next() {
		ev := st.Current()
		n++
		if strings.Contains(ev.RawJSON(), "resp_up") {
			t.Errorf("event %s carries the provider's id: %s", ev.Type, ev.RawJSON())
		}
		if ev.Type == "response.completed" && ev.Response.PreviousResponseID != fromN1 {
			t.Errorf("completed names %q as previous, want %q", ev.Response.PreviousResponseID, fromN1)
		}
	}
	if err := st.Err(); err != nil || n != 9 {
		t.Fatalf("stream: %d events, %v", n, err)
	}

	// What may not continue it: nothing reaches a provider.
	b1, b2 := calls()
	tampered := []byte(fromN1)
	tampered[len(tampered)-3] ^= 1
	for name, c := range map[string]struct{ key, model, prev, code string }{
		"another team":       {otherKey, "pair", fromN1, "previous_response_not_found"},
		"the provider's id":  {h.fx.key, "pair", "resp_up1", "previous_response_not_found"},
		"a tampered id":      {h.fx.key, "pair", string(tampered), "previous_response_not_found"},
		"another provider's": {h.fx.key, "only-n2", fromN1, ""},
		"not an id at all":   {h.fx.key, "pair", "resp_gh1!!!", "previous_response_not_found"},
	} {
		_, _, err := continueWith(c.key, c.model, c.prev)
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != "previous_response_id" || apiErr.Code != c.code {
			t.Errorf("%s: error = %v", name, err)
		}
	}
	if c1, c2 := calls(); c1 != b1 || c2 != b2 {
		t.Errorf("refused follow-ups reached the providers (n1 +%d, n2 +%d)", c1-b1, c2-b2)
	}

	// The stored response: retrieved, its input items listed, deleted — at the
	// provider that holds it, by its own id, with the provider's credential; the
	// answers carry sealed ids only.
	n1Call := func() (method, path, query, auth string) {
		n1.mu.Lock()
		defer n1.mu.Unlock()
		return n1.method, n1.path, n1.query, n1.auth
	}
	var raw *http.Response
	got, err := h.client(h.fx.key).Responses.Get(ctx, fromN1, responses.ResponseGetParams{}, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if m, p, _, auth := n1Call(); m != "GET" || p != "/v1/responses/resp_up1" || auth != "Bearer "+upstreamKey {
		t.Errorf("retrieve reached n1 as %s %s (auth %q)", m, p, auth)
	}
	if got.ID != fromN1 || !strings.HasPrefix(got.PreviousResponseID, "resp_gh1") || strings.Contains(got.RawJSON(), "resp_up") ||
		got.Usage.InputTokens != promptTokens {
		t.Errorf("retrieved %s", got.RawJSON())
	}
	if ev := h.waitUsage(t, raw.Header.Get("x-request-id")); ev.Endpoint != "responses.retrieve" || ev.StatusCode != 200 {
		t.Errorf("retrieve usage event = %v", ev)
	}
	items, err := h.client(h.fx.key).Responses.InputItems.List(ctx, fromN1, responses.InputItemListParams{Limit: openai.Int(5)})
	if err != nil {
		t.Fatal(err)
	}
	if m, p, q, _ := n1Call(); m != "GET" || p != "/v1/responses/resp_up1/input_items" || q != "limit=5" || len(items.Data) != 1 || items.Data[0].ID != "msg_0" {
		t.Errorf("input items: %s %s?%s → %s", m, p, q, items.RawJSON())
	}
	// Cancelled (a background response), by the provider's id, answered with ours.
	cancelled, err := h.client(h.fx.key).Responses.Cancel(ctx, fromN1, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if m, p, _, auth := n1Call(); m != "POST" || p != "/v1/responses/resp_up1/cancel" || auth != "Bearer "+upstreamKey {
		t.Errorf("cancel reached n1 as %s %s (auth %q)", m, p, auth)
	}
	if cancelled.ID != fromN1 || cancelled.Status != "cancelled" || strings.Contains(cancelled.RawJSON(), "resp_up") {
		t.Errorf("cancelled %s", cancelled.RawJSON())
	}
	if ev := h.waitUsage(t, raw.Header.Get("x-request-id")); ev.Endpoint != "responses.cancel" || ev.StatusCode != 200 || ev.CostMicros != 0 {
		t.Errorf("cancel usage event = %v", ev)
	}
	if _, err := h.client(otherKey).Responses.Cancel(ctx, fromN1); !isAPIError(err, 404, "response_not_found") {
		t.Errorf("another team cancelling: %v", err)
	}
	// The continuation names its previous response by the very id the caller got.
	cont, err := h.client(h.fx.key).Responses.Get(ctx, continuedOnN1, responses.ResponseGetParams{})
	if err != nil || cont.ID != continuedOnN1 || cont.PreviousResponseID != fromN1 {
		t.Errorf("retrieved continuation %v: %v", cont, err)
	}
	if err := h.client(h.fx.key).Responses.Delete(ctx, fromN1); err != nil {
		t.Fatal(err)
	}
	if m, p, _, _ := n1Call(); m != "DELETE" || p != "/v1/responses/resp_up1" {
		t.Errorf("delete reached n1 as %s %s", m, p)
	}
	// Another team's key, a provider's id: not found, nothing sent. An id the
	// provider has forgotten: its 404, naming the caller's id.
	b1, b2 = calls()
	for name, c := range map[string]struct{ key, id string }{"another team": {otherKey, fromN1}, "the provider's id": {h.fx.key, "resp_up1"}} {
		_, err := h.client(c.key).Responses.Get(ctx, c.id, responses.ResponseGetParams{})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "response_not_found" {
			t.Errorf("%s: retrieve error = %v", name, err)
		}
	}
	if c1, c2 := calls(); c1 != b1 || c2 != b2 {
		t.Errorf("refused retrieves reached the providers (n1 +%d, n2 +%d)", c1-b1, c2-b2)
	}
	forgotten, err := h.client(h.fx.key).Responses.New(ctx, nativeParams("only-n2", "forget"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.client(h.fx.key).Responses.Get(ctx, forgotten.ID, responses.ResponseGetParams{})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || !strings.Contains(apiErr.Message, forgotten.ID) || strings.Contains(apiErr.RawJSON(), "resp_gone") {
		t.Errorf("forgotten response: %v", err)
	}
}

// TestResponsesNativeProvider: a provider registered as serving the Responses API
// itself gets every Responses request natively — one the chat form could carry too —
// so what the translation would drop (OpenAI's reasoning items) reaches it as sent;
// a provider without the flag still gets such a request translated.
func TestResponsesNativeProvider(t *testing.T) {
	t.Parallel()
	up, prov := startNative(t, "oai")
	prov.NativeResponses = true
	h := startHarness(t, harnessOptions{extra: func(s *gatehousev1.Snapshot) {
		s.Providers = append(s.Providers, prov)
		s.Models = append(s.Models, &gatehousev1.Model{Id: "m-oai", Name: "oai-model", ProviderId: "oai", UpstreamModel: "up-echo"},
			&gatehousev1.Model{Id: "m-plain-flagged", Name: "plain-flagged", ProviderId: "plain-flagged", UpstreamModel: "up-echo"})
		for _, p := range s.Providers {
			if p.Id == "up" {
				flagged := proto.Clone(p).(*gatehousev1.Provider)
				flagged.Id, flagged.Name, flagged.NativeResponses = "plain-flagged", "plain-flagged", true
				s.Providers = append(s.Providers, flagged)
				break
			}
		}
	}})
	up.other = http.HandlerFunc(h.upstream.serve)
	body := `{"model":"%s","input":[{"type":"reasoning","id":"rs_1","encrypted_content":"opaque-thoughts","summary":[]},{"role":"user","content":"go on"}]}`
	resp, b := h.do(t, "POST", "/v1/responses", bearer(h.fx.key), fmt.Sprintf(body, "oai-model"))
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"resp_gh1`) {
		t.Fatalf("native provider: %d %s", resp.StatusCode, b)
	}
	calls, path, _, _, raw := up.last()
	if calls != 1 || path != "/v1/responses" || !strings.Contains(raw, `"encrypted_content":"opaque-thoughts"`) {
		t.Fatalf("the provider got %d calls, last %s: %s", calls, path, raw)
	}
	// The same request to a provider without the flag is translated (chat completions).
	if resp, b := h.do(t, "POST", "/v1/responses", bearer(h.fx.key), fmt.Sprintf(body, "echo")); resp.StatusCode != 200 || strings.Contains(string(b), `"resp_gh1`) {
		t.Fatalf("translated: %d %s", resp.StatusCode, b)
	}
	// What the flagged provider still gets translated: a background request (native,
	// it would be refused), one carrying this gateway's own reasoning state (Claude's
	// thinking, which OpenAI cannot read) — and every request once the provider turns
	// out to have no Responses API after all (the flagged "plain" is the harness
	// upstream, which has none): none of them fails.
	for name, req := range map[string]string{
		"background":    `{"model":"oai-model","input":"hi","background":true}`,
		"gateway state": `{"model":"oai-model","input":[{"type":"reasoning","id":"rs_9","encrypted_content":"gatehouse.thinking.v1.eyJ0eXBlIjoidGhpbmtpbmciLCJ0aGlua2luZyI6ImhtbSIsInNpZ25hdHVyZSI6InNpZyJ9","summary":[]},{"role":"user","content":"go"}]}`,
		"no API":        `{"model":"plain-flagged","input":"hi"}`,
	} {
		before, _, _, _, _ := up.last()
		resp, b := h.do(t, "POST", "/v1/responses", bearer(h.fx.key), req)
		if resp.StatusCode != 200 || strings.Contains(string(b), `"resp_gh1`) {
			t.Errorf("%s: %d %s", name, resp.StatusCode, b)
		}
		if after, _, _, _, _ := up.last(); after != before {
			t.Errorf("%s: sent to the native provider's /responses", name)
		}
	}
}

// TestResponsesNativeAzure: Azure OpenAI serves the Responses API on its v1 surface: a
// request only a Responses API can serve goes to /openai/v1/responses (no deployment
// in the path, no api-version) with the deployment as the model and the provider's
// api-key (never the caller's key), and its stored response is retrieved there too.
func TestResponsesNativeAzure(t *testing.T) {
	t.Parallel()
	up := &nativeResponsesUpstream{cancelled: make(chan struct{}, 1)}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	h := startHarness(t, harnessOptions{extra: func(s *gatehousev1.Snapshot) {
		s.Providers = append(s.Providers, &gatehousev1.Provider{Id: "az", Name: "az", Type: gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI,
			BaseUrl: srv.URL + "/openai", ApiKey: upstreamKey, ApiVersion: azureAPIVersion})
		s.Models = append(s.Models, &gatehousev1.Model{Id: "m-az", Name: "az-model", ProviderId: "az", UpstreamModel: "my-deployment"})
	}})
	ctx := context.Background()
	got, err := h.client(h.fx.key).Responses.New(ctx, nativeParams("az-model", "patch it"))
	if err != nil || !strings.HasPrefix(got.ID, "resp_gh1") || got.OutputText() != "Patched" {
		t.Fatalf("native on Azure: %+v, %v", got, err)
	}
	calls, path, auth, body, _ := up.last()
	up.mu.Lock()
	apiKey, query := up.apiKey, up.query
	up.mu.Unlock()
	if calls != 1 || path != "/openai/v1/responses" || query != "" || body["model"] != "my-deployment" || apiKey != upstreamKey ||
		auth != "" || strings.Contains(fmt.Sprint(body), h.fx.key) {
		t.Fatalf("Azure got %d calls: %s?%s model %v api-key %q authorization %q", calls, path, query, body["model"], apiKey, auth)
	}
	stored, err := h.client(h.fx.key).Responses.Get(ctx, got.ID, responses.ResponseGetParams{})
	if err != nil || stored.ID != got.ID {
		t.Fatalf("retrieve on Azure: %+v, %v", stored, err)
	}
	calls, path, auth, _, _ = up.last()
	up.mu.Lock()
	apiKey, method := up.apiKey, up.method
	up.mu.Unlock()
	if calls != 2 || method != http.MethodGet || path != "/openai/v1/responses/resp_up1" || apiKey != upstreamKey || auth != "" {
		t.Fatalf("retrieve went to %s %s (api-key %q, authorization %q), call %d", method, path, apiKey, auth, calls)
	}
	// Streamed, the same way.
	stream := h.client(h.fx.key).Responses.NewStreaming(ctx, nativeParams("az-model", "patch it"))
	var text strings.Builder
	for stream.Next() {
		if ev := stream.Current(); ev.Type == "response.output_text.delta" {
			text.WriteString(ev.Delta)
		}
	}
	if err := stream.Err(); err != nil || text.String() != "Patched" {
		t.Fatalf("streamed on Azure: %q, %v", text.String(), err)
	}
	if calls, path, _, body, _ := up.last(); calls != 3 || path != "/openai/v1/responses" || body["stream"] != true {
		t.Fatalf("streamed call %d to %s, stream %v", calls, path, body["stream"])
	}
}

// TestResponsesNativeAzureUnsupported: an Azure deployment whose model or region has
// no Responses API answers 400 OperationNotSupported; the request moves to another
// deployment (Azure's breaker untouched) — while any other 400 of Azure's is the
// caller's and is relayed.
func TestResponsesNativeAzureUnsupported(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	code, azureCalls := "OperationNotSupported", 0
	azure := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		azureCalls++
		c := code
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":{"code":%q,"message":"The responses operation does not work with the specified model, gpt-35-turbo."}}`, c)
	}))
	t.Cleanup(azure.Close)
	up, prov := startNative(t, "oai")
	h := startHarness(t, harnessOptions{extra: func(s *gatehousev1.Snapshot) {
		s.Providers = append(s.Providers, prov, &gatehousev1.Provider{Id: "az", Name: "az", Type: gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI,
			BaseUrl: azure.URL + "/openai", ApiKey: upstreamKey, ApiVersion: azureAPIVersion})
		s.Models = append(s.Models, &gatehousev1.Model{Id: "m-mixed", Name: "mixed", ProviderId: "az", UpstreamModel: "gpt-35",
			Deployments: []*gatehousev1.Deployment{{Id: "d-oai", ProviderId: "oai", UpstreamModel: "up-echo", Weight: 1}}})
	}})
	ctx := context.Background()
	for i := range 6 {
		got, err := h.client(h.fx.key).Responses.New(ctx, nativeParams("mixed", "patch it"))
		if err != nil || got.OutputText() != "Patched" {
			t.Fatalf("request %d: %+v, %v", i, got, err)
		}
	}
	mu.Lock()
	tried := azureCalls
	mu.Unlock()
	if calls, _, _, _, _ := up.last(); calls != 6 || tried == 0 {
		t.Fatalf("OpenAI-compatible answered %d of 6, Azure was tried %d times", calls, tried)
	}
	if _, body := h.do(t, "GET", "/metrics", nil, ""); !strings.Contains(string(body), `gatehouse_gateway_deployment_breaker_state{deployment="acme/m-mixed"} 0`) {
		t.Error("Azure's breaker moved")
	}
	// Another 400 is the caller's: relayed, not moved elsewhere.
	mu.Lock()
	code = "invalid_value"
	mu.Unlock()
	var apiErr *openai.Error
	for range 4 { // the weighted pool reaches Azure within a few requests
		_, err := h.client(h.fx.key).Responses.New(ctx, nativeParams("mixed", "patch it"))
		if errors.As(err, &apiErr) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if apiErr == nil || apiErr.StatusCode != 400 || !strings.Contains(apiErr.RawJSON(), "invalid_value") {
		t.Fatalf("Azure's own 400: %v", apiErr)
	}
}

// TestResponsesNativeHeldBack: with a time-to-first-token bound the events before the
// first delta are held back, then relayed: sealed and filtered like the others.
func TestResponsesNativeHeldBack(t *testing.T) {
	t.Parallel()
	up, prov := startNative(t, "held")
	h := startHarness(t, harnessOptions{extra: func(s *gatehousev1.Snapshot) {
		s.Providers = append(s.Providers, prov)
		s.Models = append(s.Models, &gatehousev1.Model{Id: "m-held", Name: "held", ProviderId: "held", UpstreamModel: "up-echo",
			Routing: &gatehousev1.Routing{TtftTimeoutMs: 5000}})
		teamAGuardrail(responseCardRule(gatehousev1.GuardrailMode_GUARDRAIL_MODE_REDACT))(s)
	}})
	s := h.client(h.fx.key).Responses.NewStreaming(context.Background(), nativeParams("held", "card"))
	var types, raw []string
	for s.Next() {
		types, raw = append(types, s.Current().Type), append(raw, s.Current().RawJSON())
	}
	all := strings.Join(raw, "\n")
	if err := s.Err(); err != nil || len(types) < 9 || types[0] != "response.created" || strings.Contains(all, "resp_up") ||
		strings.Contains(all, "4111") || !strings.Contains(all, "resp_gh1") {
		t.Fatalf("events %v (%v):\n%s", types, err, all)
	}
	if calls, _, _, _, _ := up.last(); calls != 1 {
		t.Fatalf("provider called %d times", calls)
	}
}

// isAPIError reports whether err is an OpenAI API error with that status and code.
func isAPIError(err error, status int, code string) bool {
	var apiErr *openai.Error
	return errors.As(err, &apiErr) && apiErr.StatusCode == status && apiErr.Code == code
}
