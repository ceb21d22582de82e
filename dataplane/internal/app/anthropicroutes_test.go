package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

// TestCountTokens: /v1/messages/count_tokens through the real Anthropic SDK. A model
// on an Anthropic provider is counted by the provider (model replaced, credential and
// anthropic-version/beta passed on, the caller's key not); a provider's refusal of the
// request is relayed; a provider that cannot count (404, 5xx) or a model elsewhere
// gets the gateway's estimate; keys and models are checked as for /v1/messages.
func TestCountTokens(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []*http.Request
	var bodies []map[string]any
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &body)
		mu.Lock()
		seen, bodies = append(seen, r.Clone(context.Background())), append(bodies, body)
		mu.Unlock()
		if r.URL.Path != "/v1/messages/count_tokens" || r.Header.Get("X-Api-Key") != upstreamKey {
			http.Error(w, "unexpected", http.StatusTeapot)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch body["model"] {
		case "claude-sonnet": // relayed as it came, as JSON whatever the upstream calls it
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte(`{"input_tokens":4242,"context_management":{"original_input_tokens":5000}}`))
		case "up-null": // "claude-null": a 200 without a count
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte(`null`))
		case "up-block": // the "claude-block" model: the provider refuses this request
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"type":"error","error":{"type":"invalid_request_error","message":"messages: text content blocks must be non-empty"}}`))
		case "up-tool": // "claude-tool": a provider without count_tokens
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"type":"error","error":{"type":"not_found_error","message":"Not found"}}`))
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	h := startHarness(t, harnessOptions{upstream: up, extra: func(s *gatehousev1.Snapshot) {
		s.Models = append(s.Models, &gatehousev1.Model{Id: "m-claude-null", Name: "claude-null", ProviderId: "anthropic", UpstreamModel: "up-null"})
	}})
	ctx := context.Background()
	var httpResp *http.Response
	ac := h.anthropicClient(aoption.WithHeader("anthropic-beta", "token-counting-2024-11-01"), aoption.WithResponseInto(&httpResp))
	header := func() http.Header {
		if httpResp == nil {
			return http.Header{}
		}
		return httpResp.Header
	}
	prompt := strings.Repeat("word ", 400) // 2,000 characters
	params := func(model string) anthropic.MessageCountTokensParams {
		return anthropic.MessageCountTokensParams{
			Model:    anthropic.Model(model),
			System:   anthropic.MessageCountTokensParamsSystemUnion{OfTextBlockArray: []anthropic.TextBlockParam{{Text: "Be brief."}}},
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(prompt))},
			Tools: []anthropic.MessageCountTokensToolUnionParam{{OfTool: &anthropic.ToolParam{Name: "get_weather",
				InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}}}}},
		}
	}

	// Counted by the provider.
	n, err := ac.Messages.CountTokens(ctx, params("claude"))
	if err != nil || n.InputTokens != 4242 {
		t.Fatalf("claude: %+v, %v", n, err)
	}
	if header().Get("X-Gatehouse-Token-Count") != "provider" || header().Get("X-Request-Id") == "" ||
		header().Get("Content-Type") != "application/json" || !strings.Contains(n.RawJSON(), `"original_input_tokens":5000`) {
		t.Errorf("claude: headers %v, body %s", header(), n.RawJSON())
	}
	mu.Lock()
	last, lastBody := seen[len(seen)-1], bodies[len(bodies)-1]
	mu.Unlock()
	if last.Header.Get("Anthropic-Beta") != "token-counting-2024-11-01" || last.Header.Get("Anthropic-Version") == "" ||
		strings.Contains(last.Header.Get("Authorization")+last.Header.Get("X-Api-Key"), h.fx.key) {
		t.Errorf("upstream headers %v", last.Header)
	}
	if lastBody["model"] != "claude-sonnet" || lastBody["messages"] == nil || lastBody["tools"] == nil || lastBody["system"] == nil {
		t.Errorf("upstream body %v", lastBody)
	}
	ev := h.waitUsage(t, header().Get("X-Request-Id"))
	if ev.Endpoint != "messages.count_tokens" || ev.Model != "claude" || ev.StatusCode != 200 || ev.CostMicros != 0 || ev.PromptTokens != 0 {
		t.Errorf("usage event %+v", ev)
	}

	// The provider refuses the request: relayed as it came.
	_, err = ac.Messages.CountTokens(ctx, params("claude-block"))
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.RawJSON(), "must be non-empty") {
		t.Errorf("claude-block: %v", err)
	}

	// Estimated: a provider without count_tokens, a failing one, a model elsewhere.
	// About 2,000 characters of prompt and the tool's JSON, by 4.
	for _, model := range []string{"claude-tool", "claude-null", "echo", "azure-gpt", "gemini"} {
		httpResp = nil
		n, err := ac.Messages.CountTokens(ctx, params(model))
		if err != nil || n.InputTokens < 500 || n.InputTokens > 560 {
			t.Errorf("%s: %+v, %v; want an estimate near 520", model, n, err)
		}
		if header().Get("X-Gatehouse-Token-Count") != "estimated" || header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: token count header %q, content type %q", model, header().Get("X-Gatehouse-Token-Count"), header().Get("Content-Type"))
		}
		// Answered by the gateway: the usage event names no provider.
		if ev := h.waitUsage(t, header().Get("X-Request-Id")); ev.ProviderId != "" || ev.UpstreamModel != "" || ev.Model != model {
			t.Errorf("%s: usage event %+v", model, ev)
		}
	}

	// Keys and models as for /v1/messages; errors in Anthropic's format.
	for _, c := range []struct {
		name   string
		client anthropic.Client
		model  string
		status int
	}{
		{"unknown model", ac, "gpt-9", 404},
		{"model the key may not use", h.anthropicClient(aoption.WithAPIKey(h.fx.limited)), "claude", 403},
		{"bad key", h.anthropicClient(aoption.WithAPIKey("gate_nope")), "claude", 401},
	} {
		_, err := c.client.Messages.CountTokens(ctx, params(c.model))
		if !errors.As(err, &apiErr) || apiErr.StatusCode != c.status || !strings.Contains(apiErr.RawJSON(), `"type":"error"`) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	resp, body := h.do(t, "POST", "/v1/messages/count_tokens", map[string]string{"X-Api-Key": h.fx.key}, `{"messages":[]}`)
	if resp.StatusCode != 400 || !strings.Contains(string(body), "invalid_request_error") {
		t.Errorf("no model: %d %s", resp.StatusCode, body)
	}
}

// TestCountTokensRequestGuardrails: the prompt sent to be counted goes through the
// team's request rules first: redacted before it leaves, or not sent at all.
func TestCountTokensRequestGuardrails(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var sent []string
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		sent = append(sent, string(b))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"input_tokens":7}`))
	})
	h := startHarness(t, harnessOptions{upstream: up, extra: func(s *gatehousev1.Snapshot) {
		for _, tm := range s.Teams {
			if tm.Id == "team-a" {
				tm.Guardrails = []*gatehousev1.GuardrailRule{
					{Id: "g-email", Name: "g-email", Detector: gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_EMAIL,
						Mode: gatehousev1.GuardrailMode_GUARDRAIL_MODE_REDACT, Direction: gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_REQUEST},
					{Id: "g-card", Name: "g-card", Detector: gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_CARD,
						Mode: gatehousev1.GuardrailMode_GUARDRAIL_MODE_BLOCK, Direction: gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_REQUEST},
				}
			}
		}
	}})
	ac := h.anthropicClient()
	count := func(text string) (*anthropic.MessageTokensCount, error) {
		return ac.Messages.CountTokens(context.Background(), anthropic.MessageCountTokensParams{Model: "claude",
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(text))}})
	}
	if n, err := count("mail me at jane.doe@example.com please"); err != nil || n.InputTokens != 7 {
		t.Fatalf("redacted count: %+v, %v", n, err)
	}
	mu.Lock()
	got := sent[len(sent)-1]
	mu.Unlock()
	if strings.Contains(got, "jane.doe@example.com") || !strings.Contains(got, "mail me at") {
		t.Errorf("sent to be counted: %s", got)
	}
	_, err := count("my card is 4111 1111 1111 1111")
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 {
		t.Errorf("blocked count: %v", err)
	}
	mu.Lock()
	calls := len(sent)
	mu.Unlock()
	if calls != 1 {
		t.Errorf("upstream called %d times; the blocked prompt must not leave", calls)
	}
}

// TestAnthropicModels: the Anthropic SDK lists (paged as Anthropic pages) and gets
// models on the routes the OpenAI API shares (anthropic-version picks Anthropic's
// shapes), errors included.
func TestAnthropicModels(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	ctx := context.Background()
	limited := h.anthropicClient(aoption.WithAPIKey(h.fx.limited))
	page, err := limited.Models.List(ctx, anthropic.ModelListParams{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range page.Data {
		if m.DisplayName != m.ID || m.CreatedAt.IsZero() {
			t.Errorf("model %+v", m)
		}
		ids = append(ids, m.ID)
	}
	if strings.Join(ids, ",") != "echo,fast" || page.HasMore || page.FirstID != "echo" || page.LastID != "fast" {
		t.Errorf("list: %v, has_more %v, first %q, last %q", ids, page.HasMore, page.FirstID, page.LastID)
	}
	full := h.anthropicClient()
	// The SDK's auto-paging walks the list a page at a time (limit, after_id) and
	// finds every model once, in the list's order; before_id pages back.
	everything, err := full.Models.List(ctx, anthropic.ModelListParams{})
	if err != nil || len(everything.Data) < 3 {
		t.Fatalf("full list: %+v, %v", everything, err)
	}
	var want, paged []string
	for _, m := range everything.Data {
		want = append(want, m.ID)
	}
	iter := full.Models.ListAutoPaging(ctx, anthropic.ModelListParams{Limit: anthropic.Int(2)})
	for iter.Next() {
		paged = append(paged, iter.Current().ID)
	}
	if err := iter.Err(); err != nil || strings.Join(paged, ",") != strings.Join(want, ",") {
		t.Errorf("auto-paged by 2: %v (%v), want %v", paged, err, want)
	}
	first, err := full.Models.List(ctx, anthropic.ModelListParams{Limit: anthropic.Int(2)})
	if err != nil || len(first.Data) != 2 || !first.HasMore || first.LastID != want[1] {
		t.Errorf("first page of 2: %+v, %v", first, err)
	}
	back, err := full.Models.List(ctx, anthropic.ModelListParams{Limit: anthropic.Int(1), BeforeID: anthropic.String(want[2])})
	if err != nil || len(back.Data) != 1 || back.Data[0].ID != want[1] || !back.HasMore {
		t.Errorf("one before %s: %+v, %v", want[2], back, err)
	}
	gone, err := full.Models.List(ctx, anthropic.ModelListParams{AfterID: anthropic.String("no-such-model")})
	if err != nil || len(gone.Data) != 0 || gone.HasMore {
		t.Errorf("after an id no longer listed: %+v, %v", gone, err)
	}
	var limitErr *anthropic.Error
	_, err = full.Models.List(ctx, anthropic.ModelListParams{Limit: anthropic.Int(1001)})
	if !errors.As(err, &limitErr) || limitErr.StatusCode != 400 || !strings.Contains(limitErr.RawJSON(), `"invalid_request_error"`) {
		t.Errorf("limit 1001: %v", err)
	}
	m, err := full.Models.Get(ctx, "claude", anthropic.ModelGetParams{})
	if err != nil || m.ID != "claude" {
		t.Errorf("get claude: %+v, %v", m, err)
	}
	var apiErr *anthropic.Error
	for _, c := range []struct {
		name   string
		client anthropic.Client
		status int
	}{
		{"unknown model", h.anthropicClient(), 404},
		{"bad key", h.anthropicClient(aoption.WithAPIKey("gate_nope")), 401},
	} {
		_, err := c.client.Models.Get(ctx, "gpt-9", anthropic.ModelGetParams{})
		if !errors.As(err, &apiErr) || apiErr.StatusCode != c.status || !strings.Contains(apiErr.RawJSON(), `"type":"error"`) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
