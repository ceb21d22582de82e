package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"google.golang.org/protobuf/proto"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/fakecp"
)

func (h *harness) client(key string) *openai.Client {
	c := openai.NewClient(
		option.WithBaseURL(h.url+"/v1/"),
		option.WithAPIKey(key),
		option.WithMaxRetries(0),
	)
	return &c
}

func chatParams(model string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	}
}

func TestChatCompletions(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	var httpResp *http.Response
	got, err := h.client(h.fx.key).Chat.Completions.New(context.Background(), chatParams("echo"), option.WithResponseInto(&httpResp))
	if err != nil {
		t.Fatal(err)
	}
	if got.Choices[0].Message.Content != "Hello" {
		t.Errorf("content = %q", got.Choices[0].Message.Content)
	}
	if got.Usage.PromptTokens != promptTokens || got.Usage.CompletionTokens != outputTokens {
		t.Errorf("usage = %+v", got.Usage)
	}
	call, err := h.upstream.lastCall()
	if err != nil {
		t.Fatal(err)
	}
	if call.Path != "/v1/chat/completions" {
		t.Errorf("upstream path = %q", call.Path)
	}
	if call.Authorization != "Bearer "+upstreamKey {
		t.Errorf("upstream authorization = %q, want the provider key", call.Authorization)
	}
	if call.Body["model"] != "up-echo" {
		t.Errorf("upstream model = %v, want up-echo", call.Body["model"])
	}

	reqID := httpResp.Header.Get("x-request-id")
	ev := h.waitUsage(t, reqID)
	want := &gatehousev1.UsageEvent{
		RequestId: reqID, OrgId: "acme", TeamId: "team-a", KeyId: "acmekey00001",
		Model: "echo", UpstreamModel: "up-echo", ProviderId: "up", Endpoint: "chat.completions",
		StatusCode: 200, PromptTokens: promptTokens, CompletionTokens: outputTokens, CachedTokens: cachedTokens,
		// (11-3)*2 + 3*0.5 + 7*8 = 73.5 micro-USD, rounded half up.
		CostMicros: 74, Region: region, GatewayId: "gw-test", DeploymentId: "m-echo",
	}
	if diff := cmp.Diff(want, ev, cmpopts.IgnoreUnexported(gatehousev1.UsageEvent{}),
		cmpopts.IgnoreFields(gatehousev1.UsageEvent{}, "EventId", "StartedAtUnixMs", "LatencyMs", "TimeToFirstTokenMs", "OverheadUs")); diff != "" {
		t.Errorf("usage event (-want +got):\n%s", diff)
	}
	if ev.OverheadUs <= 0 || httpResp.Header.Get("x-gatehouse-overhead-ms") == "" {
		t.Errorf("overhead: event %dus, header %q", ev.OverheadUs, httpResp.Header.Get("x-gatehouse-overhead-ms"))
	}
	if ev.EventId == "" || ev.StartedAtUnixMs == 0 {
		t.Errorf("event id or start missing: %v", ev)
	}
}

func TestChatCompletionsStreaming(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		includeUsage bool
	}{
		{"usage not requested is stripped", false},
		{"usage requested is kept", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := startHarness(t, harnessOptions{})
			params := chatParams("echo")
			if tt.includeUsage {
				params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			}
			var httpResp *http.Response
			stream := h.client(h.fx.key).Chat.Completions.NewStreaming(context.Background(), params, option.WithResponseInto(&httpResp))
			var content strings.Builder
			var usageChunks int
			var usage openai.CompletionUsage
			for stream.Next() {
				c := stream.Current()
				if len(c.Choices) > 0 {
					content.WriteString(c.Choices[0].Delta.Content)
				}
				if c.JSON.Usage.Valid() && c.Usage.PromptTokens > 0 {
					usageChunks++
					usage = c.Usage
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if content.String() != "Hello" {
				t.Errorf("content = %q", content.String())
			}
			for k, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
				if got := httpResp.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			wantChunks := 0
			if tt.includeUsage {
				wantChunks = 1
			}
			if usageChunks != wantChunks {
				t.Errorf("usage chunks = %d, want %d", usageChunks, wantChunks)
			}
			if tt.includeUsage && (usage.PromptTokens != promptTokens || usage.CompletionTokens != outputTokens) {
				t.Errorf("usage = %+v", usage)
			}
			call, err := h.upstream.lastCall()
			if err != nil {
				t.Fatal(err)
			}
			opts, _ := call.Body["stream_options"].(map[string]any)
			if opts["include_usage"] != true {
				t.Errorf("upstream stream_options = %v, want include_usage true", call.Body["stream_options"])
			}
			ev := h.waitUsage(t, httpResp.Header.Get("x-request-id"))
			if !ev.Streamed || ev.PromptTokens != promptTokens || ev.CompletionTokens != outputTokens || ev.CachedTokens != cachedTokens || ev.CostMicros != 74 {
				t.Errorf("usage event = %v", ev)
			}
		})
	}
}

func TestStreamFlushesEachEvent(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	stream := h.client(h.fx.key).Chat.Completions.NewStreaming(context.Background(), chatParams("block"))
	defer stream.Close()
	// The upstream holds the rest of the stream until the first content made it
	// through (after the role chunk).
	for stream.Next() && stream.Current().Choices[0].Delta.Content == "" {
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("no first content: %v", err)
	}
	if got := stream.Current().Choices[0].Delta.Content; got != "Hel" {
		t.Fatalf("first content = %q", got)
	}
	close(h.upstream.release)
	var rest strings.Builder
	for stream.Next() {
		if c := stream.Current(); len(c.Choices) > 0 {
			rest.WriteString(c.Choices[0].Delta.Content)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if rest.String() != "lo" {
		t.Errorf("rest = %q", rest.String())
	}
}

func TestClientDisconnectCancelsUpstream(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	var httpResp *http.Response
	stream := h.client(h.fx.key).Chat.Completions.NewStreaming(ctx, chatParams("block"), option.WithResponseInto(&httpResp))
	if !stream.Next() {
		t.Fatalf("no first chunk: %v", stream.Err())
	}
	cancel()
	stream.Close()
	select {
	case <-h.upstream.cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("upstream request not cancelled after the client left")
	}
	ev := h.waitUsage(t, httpResp.Header.Get("x-request-id"))
	if ev.ErrorClass != "client_closed" || !ev.Streamed {
		t.Errorf("usage event = %v, want streamed with error class client_closed", ev)
	}
}

func TestModelsList(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	// Entries are "<id> <owned_by>". Team aliases come after the org's models; "far"
	// names a model offered only in another region and is left out.
	tests := []struct {
		name string
		key  string
		opts []option.RequestOption
		want []string
	}{
		{"all team models", h.fx.key, nil, []string{
			"auth-fail acme", "azure-gpt acme", "azure-tool acme", "block acme", "claude acme", "claude-block acme", "claude-tool acme",
			"dead acme", "echo acme", "gemini acme", "gemini-tool acme", "limited acme", "slow acme", "tool acme", "fast alias",
		}},
		{"allow-listed key", h.fx.limited, nil, []string{"echo acme", "fast alias"}},
		{"key allowed only an alias", h.fx.agent, nil, []string{"fast alias"}},
		{"x-api-key header", "", []option.RequestOption{option.WithHeader("x-api-key", h.fx.limited)}, []string{"echo acme", "fast alias"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := h.client(tt.key)
			if tt.key == "" {
				bare := openai.NewClient(option.WithBaseURL(h.url+"/v1/"), option.WithMaxRetries(0), option.WithAPIKey(""))
				c = &bare
			}
			page, err := c.Models.List(context.Background(), tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range page.Data {
				if m.Object != "model" || m.Created == 0 {
					t.Errorf("model object = %+v", m)
				}
				got = append(got, m.ID+" "+m.OwnedBy)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("models (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRetrieveModel: GET /v1/models/{model} through the OpenAI SDK answers a model or
// alias as the list shows it to this key; one it may not use, or that is not there,
// is a 404 model_not_found in OpenAI's format.
func TestRetrieveModel(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{extra: func(s *gatehousev1.Snapshot) {
		s.Models = append(s.Models, &gatehousev1.Model{Id: "m-slash", Name: "meta/llama-3", ProviderId: "up", UpstreamModel: "up-echo"})
	}})
	ctx := context.Background()
	for _, tt := range []struct {
		name, key, model, want string
	}{
		{"org model", h.fx.key, "claude", "claude acme"},
		{"a name with a slash", h.fx.key, "meta/llama-3", "meta/llama-3 acme"},
		{"team alias", h.fx.limited, "fast", "fast alias"},
		{"allow-listed model", h.fx.limited, "echo", "echo acme"},
		{"model the key may not use", h.fx.limited, "claude", ""},
		{"another team's model", h.fx.key, "team-b-only", ""},
		{"offered only in another region", h.fx.key, "far", ""},
		{"unknown, with slashes", h.fx.key, "meta-llama/Llama-3-8B", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := h.client(tt.key).Models.Get(ctx, tt.model)
			if tt.want != "" {
				if err != nil || m.ID+" "+m.OwnedBy != tt.want || m.Object != "model" || m.Created == 0 {
					t.Fatalf("Get(%q) = %+v, %v; want %s", tt.model, m, err, tt.want)
				}
				return
			}
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "model_not_found" || apiErr.Param != "model" {
				t.Fatalf("Get(%q) = %+v, %v; want a 404 model_not_found", tt.model, m, err)
			}
		})
	}
	if resp, _ := h.do(t, "GET", "/v1/models/echo", nil, ""); resp.StatusCode != 401 {
		t.Errorf("without a key: %d", resp.StatusCode)
	}
}

// TestUsageSurvivesInvalidModelName: a model name that is not UTF-8 (a raw path
// byte) is recorded replaced, and one of 2 MiB (more than a NATS message may
// carry) cut to 256 bytes; neither costs the batch it shares with other requests
// their usage events.
func TestUsageSurvivesInvalidModelName(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	resp, _ := h.do(t, "GET", "/v1/models/%FF%FE", bearer(h.fx.key), "")
	if resp.StatusCode != 404 {
		t.Fatalf("GET /v1/models/%%FF%%FE: %d", resp.StatusCode)
	}
	bad := resp.Header.Get("X-Request-Id")
	long := strings.Repeat("é", 1<<20)
	resp, _ = h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"`+long+`","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 404 {
		t.Fatalf("a 2 MiB model name: %d", resp.StatusCode)
	}
	if ev := h.waitUsage(t, resp.Header.Get("X-Request-Id")); ev.Model != strings.Repeat("é", 128) || ev.StatusCode != 404 {
		t.Errorf("usage event of the long name: model of %d bytes, status %d", len(ev.Model), ev.StatusCode)
	}
	var httpResp *http.Response
	if _, err := h.client(h.fx.key).Chat.Completions.New(context.Background(), chatParams("echo"), option.WithResponseInto(&httpResp)); err != nil {
		t.Fatal(err)
	}
	if ev := h.waitUsage(t, httpResp.Header.Get("X-Request-Id")); ev.PromptTokens == 0 {
		t.Errorf("chat usage event %+v", ev)
	}
	if ev := h.waitUsage(t, bad); ev.Model != "\uFFFD" || ev.StatusCode != 404 {
		t.Errorf("usage event of the bad name: model %q, status %d", ev.Model, ev.StatusCode)
	}
}

// errorShape is the exact OpenAI error body.
type errorShape struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func checkError(t *testing.T, resp *http.Response, body []byte, wantStatus int, wantType, wantCode string, secrets ...string) {
	t.Helper()
	if resp.StatusCode != wantStatus {
		t.Errorf("status = %d, want %d (body %s)", resp.StatusCode, wantStatus, body)
	}
	if resp.Header.Get("x-request-id") == "" {
		t.Error("no x-request-id")
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type = %q", ct)
	}
	var raw map[string]map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("body is not an OpenAI error: %v: %s", err, body)
	}
	var keys []string
	for k := range raw["error"] {
		keys = append(keys, k)
	}
	if diff := cmp.Diff([]string{"code", "message", "param", "type"}, keys, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("error keys (-want +got):\n%s", diff)
	}
	var e errorShape
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatal(err)
	}
	if e.Error.Message == "" || e.Error.Type != wantType {
		t.Errorf("error = %+v, want type %q", e.Error, wantType)
	}
	gotCode := ""
	if e.Error.Code != nil {
		gotCode = *e.Error.Code
	}
	if gotCode != wantCode {
		t.Errorf("code = %q, want %q", gotCode, wantCode)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(string(body), s) {
			t.Errorf("response leaks a secret: %s", body)
		}
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{maxBody: 64 << 10})
	chat := func(model string) string {
		return fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}]}`, model)
	}
	tests := []struct {
		name       string
		method     string
		path       string
		header     map[string]string
		body       string
		wantStatus int
		wantType   string
		wantCode   string
		// wantEvent is the error class of the usage event, if one is expected.
		wantEvent string
	}{
		{"no key", "POST", "/v1/chat/completions", nil, chat("echo"), 401, "invalid_request_error", "invalid_api_key", ""},
		{"basic auth", "POST", "/v1/chat/completions", map[string]string{"Authorization": "Basic " + h.fx.key}, chat("echo"), 401, "invalid_request_error", "invalid_api_key", ""},
		{"malformed key", "POST", "/v1/chat/completions", bearer("sk-not-ours"), chat("echo"), 401, "invalid_request_error", "invalid_api_key", ""},
		{"wrong secret", "POST", "/v1/chat/completions", bearer(h.fx.key + "x"), chat("echo"), 401, "invalid_request_error", "invalid_api_key", ""},
		{"expired key", "POST", "/v1/chat/completions", bearer(h.fx.expired), chat("echo"), 401, "invalid_request_error", "invalid_api_key", ""},
		{"models without key", "GET", "/v1/models", nil, "", 401, "invalid_request_error", "invalid_api_key", ""},
		{"suspended team", "POST", "/v1/chat/completions", bearer(h.fx.teamB), chat("echo"), 403, "permission_error", "team_suspended", "team_suspended"},
		{"suspended org", "GET", "/v1/models", bearer(h.fx.frozenK), "", 403, "permission_error", "organization_suspended", "organization_suspended"},
		{"unknown model", "POST", "/v1/chat/completions", bearer(h.fx.key), chat("gpt-9"), 404, "invalid_request_error", "model_not_found", "model_not_found"},
		{"model outside key allow-list", "POST", "/v1/chat/completions", bearer(h.fx.limited), chat("block"), 403, "permission_error", "model_not_allowed", "model_not_allowed"},
		{"model of another team", "POST", "/v1/chat/completions", bearer(h.fx.key), chat("team-b-only"), 403, "permission_error", "model_not_allowed", "model_not_allowed"},
		{"malformed json", "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"echo",`, 400, "invalid_request_error", "", ""},
		{"missing model", "POST", "/v1/chat/completions", bearer(h.fx.key), `{"messages":[]}`, 400, "invalid_request_error", "", ""},
		{"stream not boolean", "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"echo","stream":1}`, 400, "invalid_request_error", "", ""},
		{"body too large", "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"echo","pad":"` + strings.Repeat("x", 65<<10) + `"}`, 413, "invalid_request_error", "request_too_large", "request_too_large"},
		{"upstream unreachable", "POST", "/v1/chat/completions", bearer(h.fx.key), chat("dead"), 502, "upstream_error", "upstream_unreachable", "upstream_unreachable"},
		{"upstream refuses provider key", "POST", "/v1/chat/completions", bearer(h.fx.key), chat("auth-fail"), 502, "upstream_error", "upstream_auth_failed", "upstream_auth_failed"},
		{"upstream error passes through", "POST", "/v1/chat/completions", bearer(h.fx.key), chat("limited"), 429, "rate_limit_error", "rate_limit_exceeded", "upstream_status"},
		{"unknown path", "GET", "/v2/everything", nil, "", 404, "invalid_request_error", "unknown_url", ""},
		{"wrong method", "DELETE", "/v1/chat/completions", nil, "", 404, "invalid_request_error", "unknown_url", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := h.do(t, tt.method, tt.path, tt.header, tt.body)
			checkError(t, resp, body, tt.wantStatus, tt.wantType, tt.wantCode, upstreamKey, h.fx.key)
			if tt.wantEvent == "" {
				return
			}
			ev := h.waitUsage(t, resp.Header.Get("x-request-id"))
			if ev.ErrorClass != tt.wantEvent || ev.StatusCode != int32(tt.wantStatus) {
				t.Errorf("usage event class %q status %d, want %q %d", ev.ErrorClass, ev.StatusCode, tt.wantEvent, tt.wantStatus)
			}
		})
	}
	// The SDK understands the errors too.
	_, err := h.client(h.fx.key).Chat.Completions.New(context.Background(), chatParams("gpt-9"))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "model_not_found" {
		t.Errorf("SDK error = %v", err)
	}
}

func TestUpstreamTimeout(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{upstreamTimeout: 200 * time.Millisecond})
	resp, body := h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"slow","messages":[]}`)
	checkError(t, resp, body, 504, "upstream_error", "upstream_timeout", upstreamKey)
}

func TestReadiness(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{noBucket: true})
	resp, body := h.do(t, "GET", "/readyz", nil, "")
	checkError(t, resp, body, 503, "server_error", "not_ready")
	resp, body = h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"echo"}`)
	checkError(t, resp, body, 503, "server_error", "not_ready")
	if resp, _ := h.do(t, "GET", "/healthz", nil, ""); resp.StatusCode != 200 {
		t.Errorf("healthz = %d before ready", resp.StatusCode)
	}

	h.cp.CreateBucket()
	h.cp.Publish(region, h.fx.snap)
	fakecp.Eventually(t, 5*time.Second, func() error {
		if resp, _ := h.do(t, "GET", "/readyz", nil, ""); resp.StatusCode != 200 {
			return fmt.Errorf("readyz = %d", resp.StatusCode)
		}
		return nil
	})
	if resp, body := h.do(t, "GET", "/v1/models", bearer(h.fx.key), ""); resp.StatusCode != 200 {
		t.Errorf("models = %d %s", resp.StatusCode, body)
	}

	// Losing NATS does not make the gateway unready: it serves its last config.
	h.cp.Stop()
	if resp, _ := h.do(t, "GET", "/readyz", nil, ""); resp.StatusCode != 200 {
		t.Errorf("readyz = %d with NATS down", resp.StatusCode)
	}
	if resp, body := h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"echo","messages":[]}`); resp.StatusCode != 200 {
		t.Errorf("chat with NATS down = %d %s", resp.StatusCode, body)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"echo","messages":[]}`)
	h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"echo","stream":true,"messages":[]}`)
	resp, body := h.do(t, "GET", "/metrics", nil, "")
	if resp.StatusCode != 200 {
		t.Fatalf("metrics = %d", resp.StatusCode)
	}
	for _, want := range []string{
		`gatehouse_gateway_requests_total{code="2xx",endpoint="chat.completions"} 2`,
		`gatehouse_gateway_request_duration_seconds_count{endpoint="chat.completions"} 2`,
		`gatehouse_gateway_upstream_duration_seconds_count{streamed="true"} 1`,
		`gatehouse_gateway_time_to_first_token_seconds_count 1`,
		fmt.Sprintf(`gatehouse_gateway_tokens_total{kind="prompt"} %d`, 2*promptTokens),
		`gatehouse_gateway_config_applied_total 2`,
		`gatehouse_gateway_usage_events_emitted_total 2`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestMetricsOnOperatorPort: with an operator's port, /metrics is served there and
// no longer on the public port, where the API goes on as before.
func TestMetricsOnOperatorPort(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{metricsListen: "127.0.0.1:0"})
	if resp, body := h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"echo","messages":[]}`); resp.StatusCode != 200 {
		t.Fatalf("chat = %d %s", resp.StatusCode, body)
	}
	if resp, _ := h.do(t, "GET", "/metrics", nil, ""); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("public /metrics = %d, want 404", resp.StatusCode)
	}
	if resp, _ := h.do(t, "GET", "/healthz", nil, ""); resp.StatusCode != 200 {
		t.Fatalf("public /healthz = %d", resp.StatusCode)
	}
	op := "http://" + h.app.MetricsAddr()
	if op == h.url || h.app.MetricsAddr() == "" {
		t.Fatalf("operator's port %q", op)
	}
	for path, want := range map[string]string{
		"/metrics": `gatehouse_gateway_requests_total{code="2xx",endpoint="chat.completions"} 1`,
		"/healthz": "", "/readyz": "",
	} {
		resp, err := http.Get(op + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) || resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("operator's %s = %d (request id %q), lacks %q", path, resp.StatusCode, resp.Header.Get("X-Request-Id"), want)
		}
	}
	if resp, err := http.Post(op+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"echo","messages":[]}`)); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode == 200 {
		t.Fatal("the operator's port serves the API")
	}
}

// TestOperatorPortNotReadyWhileDraining: the operator's port stays open through the
// shutdown drain (the public listener is closed at once), and its /readyz says not
// ready from the drain's start, so a load balancer stops sending traffic.
func TestOperatorPortNotReadyWhileDraining(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{metricsListen: "127.0.0.1:0", upstreamTimeout: 3 * time.Second})
	ready := "http://" + h.app.MetricsAddr() + "/readyz"
	status := func() int {
		resp, err := http.Get(ready)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := status(); s != 200 {
		t.Fatalf("readyz before the drain = %d", s)
	}
	// A request the upstream never answers holds the drain open (its answer, if any,
	// does not matter here).
	go func() {
		req, _ := http.NewRequest("POST", h.url+"/v1/chat/completions", strings.NewReader(`{"model":"slow","messages":[]}`))
		req.Header.Set("Authorization", "Bearer "+h.fx.key)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	fakecp.Eventually(t, 5*time.Second, func() error {
		if n := h.app.InFlight(); n != 1 {
			return fmt.Errorf("%d requests in flight", n)
		}
		return nil
	})
	go h.stop()
	fakecp.Eventually(t, 2*time.Second, func() error {
		if s := status(); s != http.StatusServiceUnavailable {
			return fmt.Errorf("readyz during the drain = %d", s)
		}
		return nil
	})
}

func TestConfigChangesApplyToRequests(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	if resp, body := h.do(t, "GET", "/v1/models", bearer(h.fx.key), ""); resp.StatusCode != 200 {
		t.Fatalf("models = %d %s", resp.StatusCode, body)
	}
	// Revoke the key.
	h.fx.snap.Keys = h.fx.snap.Keys[1:]
	h.cp.Publish(region, h.fx.snap)
	fakecp.Eventually(t, 5*time.Second, func() error {
		if resp, _ := h.do(t, "GET", "/v1/models", bearer(h.fx.key), ""); resp.StatusCode != 401 {
			return fmt.Errorf("revoked key answered %d", resp.StatusCode)
		}
		return nil
	})
	// Delete the org.
	h.cp.Delete(region, "acme")
	fakecp.Eventually(t, 5*time.Second, func() error {
		if resp, _ := h.do(t, "GET", "/v1/models", bearer(h.fx.limited), ""); resp.StatusCode != 401 {
			return fmt.Errorf("key of deleted org answered %d", resp.StatusCode)
		}
		return nil
	})
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	sub, err := h.cp.NC.SubscribeSync(wire.StatusSubject(region, "gw-test"))
	if err != nil {
		t.Fatal(err)
	}
	fakecp.Eventually(t, 5*time.Second, func() error {
		msg, err := sub.NextMsg(time.Second)
		if err != nil {
			return err
		}
		var st gatehousev1.GatewayStatus
		if err := proto.Unmarshal(msg.Data, &st); err != nil {
			return err
		}
		if !st.Ready || st.Capability != wire.Capability || st.BuildVersion != "test-1" || st.GatewayId != "gw-test" || st.Region != region {
			return fmt.Errorf("status = %v", &st)
		}
		var acme *gatehousev1.OrgConfigState
		for _, o := range st.Orgs {
			if o.OrgId == "acme" {
				acme = o
			}
		}
		if acme == nil || acme.AppliedVersion != 1 || acme.AppliedEpoch != 1 {
			return fmt.Errorf("acme state = %v", acme)
		}
		return nil
	})
}

func TestUsageSurvivesOutageAndRestart(t *testing.T) {
	t.Parallel()
	spool := t.TempDir()
	h := startHarness(t, harnessOptions{spoolDir: spool})
	var ids []string
	send := func() {
		t.Helper()
		resp, body := h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"echo","messages":[]}`)
		if resp.StatusCode != 200 {
			t.Fatalf("chat = %d %s", resp.StatusCode, body)
		}
		ids = append(ids, resp.Header.Get("x-request-id"))
	}
	send()
	h.cp.Stop()
	for range 20 {
		send()
	}
	// Shut the gateway down while NATS is away: what is left goes to the spool.
	h.stop()
	files, _ := filepath.Glob(filepath.Join(spool, "*.batch"))
	if len(files) == 0 {
		t.Fatal("nothing spooled")
	}

	h.cp.Restart()
	h.startGateway(t, harnessOptions{spoolDir: spool})
	fakecp.Eventually(t, 10*time.Second, func() error {
		batches, err := h.cp.UsageBatches()
		if err != nil {
			return err
		}
		count := map[string]int{}
		for _, b := range batches {
			for _, ev := range b.Events {
				count[ev.RequestId]++
			}
		}
		for _, id := range ids {
			if count[id] != 1 {
				return fmt.Errorf("request %s has %d usage events", id, count[id])
			}
		}
		if len(count) != len(ids) {
			return fmt.Errorf("%d requests with events, want %d", len(count), len(ids))
		}
		return nil
	})
	if left, _ := os.ReadDir(spool); len(left) != 0 {
		t.Errorf("spool not emptied: %d entries", len(left))
	}
}
