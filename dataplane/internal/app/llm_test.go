package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"
)

// providerModels maps each wire format the fake upstream speaks to the model served
// by it, and to its tool-calling twin.
var providerModels = []struct {
	wire, model, tool, upstream string
}{
	{"openai", "echo", "tool", "up-echo"},
	{"anthropic", "claude", "claude-tool", "claude-sonnet"},
	{"azure", "azure-gpt", "azure-tool", "gpt-deploy"},
	{"gemini", "gemini", "gemini-tool", "gemini-flash"},
}

func (h *harness) anthropicClient(opts ...aoption.RequestOption) anthropic.Client {
	return anthropic.NewClient(append([]aoption.RequestOption{
		aoption.WithBaseURL(h.url + "/"), aoption.WithAPIKey(h.fx.key), aoption.WithMaxRetries(0),
	}, opts...)...)
}

var weatherTool = openai.ChatCompletionToolUnionParam{OfFunction: &openai.ChatCompletionFunctionToolParam{
	Function: openai.FunctionDefinitionParam{
		Name:        "get_weather",
		Description: openai.String("Weather of a city"),
		Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{
			"city": map[string]any{"type": "string"}}, "required": []string{"city"}, "additionalProperties": false},
	},
}}

// checkUpstreamCall checks that the last upstream call used the provider's own wire
// format, path and credential.
func checkUpstreamCall(t *testing.T, h *harness, wire, upstream string) {
	t.Helper()
	call, err := h.upstream.lastCall()
	if err != nil {
		t.Fatal(err)
	}
	if call.Wire.format != wire || call.Wire.model != upstream {
		t.Errorf("upstream call %s/%s, want %s/%s (path %s)", call.Wire.format, call.Wire.model, wire, upstream, call.Path)
	}
	if !strings.Contains(call.Wire.credential, upstreamKey) {
		t.Errorf("upstream credential %q", call.Wire.credential)
	}
	if call.Header.Get("x-api-key") == h.fx.key || strings.Contains(call.Header.Get("Authorization"), h.fx.key) {
		t.Error("the caller's key reached the provider")
	}
}

func TestChatAcrossProviders(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	for _, p := range providerModels {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", p.wire, stream), func(t *testing.T) {
				var httpResp *http.Response
				var content string
				var usage openai.CompletionUsage
				params := chatParams(p.model)
				params.Messages = append([]openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be terse.")}, params.Messages...)
				if stream {
					params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
					s := h.client(h.fx.key).Chat.Completions.NewStreaming(context.Background(), params, option.WithResponseInto(&httpResp))
					var acc openai.ChatCompletionAccumulator
					for s.Next() {
						acc.AddChunk(s.Current())
					}
					if err := s.Err(); err != nil {
						t.Fatal(err)
					}
					content, usage = acc.Choices[0].Message.Content, acc.Usage
				} else {
					got, err := h.client(h.fx.key).Chat.Completions.New(context.Background(), params, option.WithResponseInto(&httpResp))
					if err != nil {
						t.Fatal(err)
					}
					content, usage = got.Choices[0].Message.Content, got.Usage
				}
				if content != "Hello" {
					t.Errorf("content = %q", content)
				}
				if usage.PromptTokens != promptTokens || usage.CompletionTokens != outputTokens || usage.PromptTokensDetails.CachedTokens != cachedTokens {
					t.Errorf("usage = %+v", usage)
				}
				checkUpstreamCall(t, h, p.wire, p.upstream)
				ev := h.waitUsage(t, httpResp.Header.Get("x-request-id"))
				if ev.PromptTokens != promptTokens || ev.CompletionTokens != outputTokens || ev.CachedTokens != cachedTokens || ev.CostMicros != 74 ||
					ev.Streamed != stream || ev.UpstreamModel != p.upstream || ev.DeploymentId != "m-"+p.model || ev.StatusCode != 200 {
					t.Errorf("usage event = %v", ev)
				}
			})
		}
	}
	// Azure and Gemini specifics.
	if _, err := h.client(h.fx.key).Chat.Completions.New(context.Background(), chatParams("azure-gpt")); err != nil {
		t.Fatal(err)
	}
	call, _ := h.upstream.lastCall()
	if call.Path != "/openai/deployments/gpt-deploy/chat/completions" || call.Query != "api-version="+azureAPIVersion || call.Header.Get("api-key") != upstreamKey {
		t.Errorf("azure call %s?%s api-key %q", call.Path, call.Query, call.Header.Get("api-key"))
	}
	if _, err := h.client(h.fx.key).Chat.Completions.New(context.Background(), chatParams("gemini")); err != nil {
		t.Fatal(err)
	}
	call, _ = h.upstream.lastCall()
	if call.Path != "/v1beta/models/gemini-flash:generateContent" || call.Header.Get("x-goog-api-key") != upstreamKey {
		t.Errorf("gemini call %s key %q", call.Path, call.Header.Get("x-goog-api-key"))
	}
}

func TestToolCallsAcrossProviders(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	for _, p := range providerModels {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", p.wire, stream), func(t *testing.T) {
				params := chatParams(p.tool)
				params.Tools = []openai.ChatCompletionToolUnionParam{weatherTool}
				var msg openai.ChatCompletionMessage
				var finish string
				var extra string // the tool call's extra_content, as the SDK read it
				if stream {
					s := h.client(h.fx.key).Chat.Completions.NewStreaming(context.Background(), params)
					var acc openai.ChatCompletionAccumulator
					for s.Next() {
						acc.AddChunk(s.Current())
						for _, c := range s.Current().Choices {
							for _, tc := range c.Delta.ToolCalls {
								if f, ok := tc.JSON.ExtraFields["extra_content"]; ok {
									extra = f.Raw()
								}
							}
						}
					}
					if err := s.Err(); err != nil {
						t.Fatal(err)
					}
					msg, finish = acc.Choices[0].Message, acc.Choices[0].FinishReason
				} else {
					got, err := h.client(h.fx.key).Chat.Completions.New(context.Background(), params)
					if err != nil {
						t.Fatal(err)
					}
					msg, finish = got.Choices[0].Message, got.Choices[0].FinishReason
					if len(msg.ToolCalls) > 0 {
						if f, ok := msg.ToolCalls[0].AsFunction().JSON.ExtraFields["extra_content"]; ok {
							extra = f.Raw()
						}
					}
				}
				if wantExtra := p.wire == "gemini"; wantExtra != strings.Contains(extra, `"thought_signature":"`+geminiSignature+`"`) {
					t.Errorf("tool call extra_content = %q", extra)
				}
				if finish != "tool_calls" || len(msg.ToolCalls) != 1 {
					t.Fatalf("finish %q, tool calls %+v", finish, msg.ToolCalls)
				}
				tc := msg.ToolCalls[0]
				if tc.Function.Name != "get_weather" || tc.ID == "" {
					t.Errorf("tool call = %+v", tc)
				}
				var args map[string]string
				if err := json.Unmarshal([]byte(tc.Function.Arguments), &args); err != nil || args["city"] != "Paris" {
					t.Errorf("arguments = %q", tc.Function.Arguments)
				}

				// The second turn carries the call and its result back.
				// openai-go's ToParam drops fields it does not know: a caller
				// carries Gemini's extra_content back itself.
				turn := msg.ToParam()
				if extra != "" {
					turn.OfAssistant.ToolCalls[0].OfFunction.SetExtraFields(map[string]any{"extra_content": json.RawMessage(extra)})
				}
				params.Messages = append(params.Messages, turn, openai.ToolMessage(`{"temp_c":21}`, tc.ID))
				if _, err := h.client(h.fx.key).Chat.Completions.New(context.Background(), params); err != nil {
					t.Fatal(err)
				}
				call, _ := h.upstream.lastCall()
				raw, _ := json.Marshal(call.Body)
				for _, want := range map[string][]string{
					"openai":    {`"role":"tool"`, `"tool_call_id":"` + tc.ID + `"`, `"name":"get_weather"`},
					"azure":     {`"role":"tool"`, `"tool_call_id":"` + tc.ID + `"`},
					"anthropic": {`"type":"tool_use"`, `"type":"tool_result"`, `"tool_use_id":"` + tc.ID + `"`, `"input_schema"`, `"city":"Paris"`},
					// The call's thought signature came back through the SDK
					// (extra_content), or Gemini 3 would refuse the turn.
					"gemini": {`"functionCall"`, `"functionResponse"`, `"temp_c":21`, `"functionDeclarations"`, `"thoughtSignature":"` + geminiSignature + `"`},
				}[p.wire] {
					if !strings.Contains(string(raw), want) {
						t.Errorf("upstream body lacks %s: %s", want, raw)
					}
				}
			})
		}
	}
}

func TestMessagesAPI(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	for _, p := range providerModels {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", p.wire, stream), func(t *testing.T) {
				client := h.anthropicClient()
				params := anthropic.MessageNewParams{
					Model: anthropic.Model(p.model), MaxTokens: 256,
					System:   []anthropic.TextBlockParam{{Text: "Be terse."}},
					Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
				}
				var httpResp *http.Response
				var msg anthropic.Message
				if stream {
					s := client.Messages.NewStreaming(context.Background(), params, aoption.WithResponseInto(&httpResp))
					for s.Next() {
						if err := msg.Accumulate(s.Current()); err != nil {
							t.Fatal(err)
						}
					}
					if err := s.Err(); err != nil {
						t.Fatal(err)
					}
				} else {
					got, err := client.Messages.New(context.Background(), params, aoption.WithResponseInto(&httpResp))
					if err != nil {
						t.Fatal(err)
					}
					msg = *got
				}
				if len(msg.Content) != 1 || msg.Content[0].Text != "Hello" || msg.StopReason != anthropic.StopReasonEndTurn {
					t.Errorf("message = %+v", msg)
				}
				if msg.Usage.InputTokens != promptTokens-cachedTokens || msg.Usage.OutputTokens != outputTokens || msg.Usage.CacheReadInputTokens != cachedTokens {
					t.Errorf("usage = %+v", msg.Usage)
				}
				checkUpstreamCall(t, h, p.wire, p.upstream)
				ev := h.waitUsage(t, httpResp.Header.Get("x-request-id"))
				if ev.Endpoint != "messages" || ev.PromptTokens != promptTokens || ev.CompletionTokens != outputTokens || ev.CostMicros != 74 || ev.Streamed != stream {
					t.Errorf("usage event = %v", ev)
				}
			})
		}
	}
}

func TestMessagesAPIToolUse(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	for _, p := range providerModels {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", p.wire, stream), func(t *testing.T) {
				client := h.anthropicClient()
				params := anthropic.MessageNewParams{
					Model: anthropic.Model(p.tool), MaxTokens: 256,
					Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("weather in Paris?"))},
					Tools: []anthropic.ToolUnionParam{anthropic.ToolUnionParamOfTool(anthropic.ToolInputSchemaParam{
						Properties: map[string]any{"city": map[string]any{"type": "string"}}, Required: []string{"city"}}, "get_weather")},
				}
				var msg anthropic.Message
				if stream {
					s := client.Messages.NewStreaming(context.Background(), params)
					for s.Next() {
						if err := msg.Accumulate(s.Current()); err != nil {
							t.Fatal(err)
						}
					}
					if err := s.Err(); err != nil {
						t.Fatal(err)
					}
				} else {
					got, err := client.Messages.New(context.Background(), params)
					if err != nil {
						t.Fatal(err)
					}
					msg = *got
				}
				if msg.StopReason != anthropic.StopReasonToolUse {
					t.Errorf("stop reason %q", msg.StopReason)
				}
				var use *anthropic.ToolUseBlock
				for _, b := range msg.Content {
					if v, ok := b.AsAny().(anthropic.ToolUseBlock); ok {
						use = &v
					}
				}
				if use == nil || use.Name != "get_weather" || use.ID == "" {
					t.Fatalf("content = %+v", msg.Content)
				}
				var args map[string]string
				if err := json.Unmarshal(use.Input, &args); err != nil || args["city"] != "Paris" {
					t.Errorf("input = %s", use.Input)
				}
				// Second turn with the result.
				params.Messages = append(params.Messages, msg.ToParam(),
					anthropic.NewUserMessage(anthropic.NewToolResultBlock(use.ID, `{"temp_c":21}`, false)))
				if _, err := client.Messages.New(context.Background(), params); err != nil {
					t.Fatal(err)
				}
				call, _ := h.upstream.lastCall()
				raw, _ := json.Marshal(call.Body)
				want := map[string]string{"openai": `"tool_call_id":"` + use.ID + `"`, "azure": `"tool_call_id":"` + use.ID + `"`,
					"anthropic": `"tool_use_id":"` + use.ID + `"`, "gemini": `"functionResponse"`}[p.wire]
				if !strings.Contains(string(raw), want) {
					t.Errorf("upstream body lacks %s: %s", want, raw)
				}
			})
		}
	}
}

func TestResponsesAPI(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	for _, p := range providerModels {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", p.wire, stream), func(t *testing.T) {
				params := responses.ResponseNewParams{
					Model:        p.model,
					Instructions: openai.String("Be terse."),
					Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
				}
				var httpResp *http.Response
				var text string
				var usage responses.ResponseUsage
				if stream {
					s := h.client(h.fx.key).Responses.NewStreaming(context.Background(), params, option.WithResponseInto(&httpResp))
					var deltas strings.Builder
					seen := map[string]int{}
					for s.Next() {
						ev := s.Current()
						seen[ev.Type]++
						switch ev.Type {
						case "response.output_text.delta":
							deltas.WriteString(ev.Delta)
						case "response.completed":
							text, usage = ev.Response.OutputText(), ev.Response.Usage
						}
					}
					if err := s.Err(); err != nil {
						t.Fatal(err)
					}
					if deltas.String() != "Hello" || seen["response.created"] != 1 || seen["response.completed"] != 1 {
						t.Errorf("deltas %q, events %v", deltas.String(), seen)
					}
				} else {
					got, err := h.client(h.fx.key).Responses.New(context.Background(), params, option.WithResponseInto(&httpResp))
					if err != nil {
						t.Fatal(err)
					}
					text, usage = got.OutputText(), got.Usage
					if got.Status != "completed" {
						t.Errorf("status %q", got.Status)
					}
				}
				if text != "Hello" {
					t.Errorf("output text = %q", text)
				}
				if usage.InputTokens != promptTokens || usage.OutputTokens != outputTokens || usage.InputTokensDetails.CachedTokens != cachedTokens {
					t.Errorf("usage = %+v", usage)
				}
				checkUpstreamCall(t, h, p.wire, p.upstream)
				ev := h.waitUsage(t, httpResp.Header.Get("x-request-id"))
				if ev.Endpoint != "responses" || ev.CostMicros != 74 || ev.Streamed != stream {
					t.Errorf("usage event = %v", ev)
				}
			})
		}
	}
	// A function call comes back as a function_call output item.
	got, err := h.client(h.fx.key).Responses.New(context.Background(), responses.ResponseNewParams{
		Model: "claude-tool",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("weather in Paris?")},
		Tools: []responses.ToolUnionParam{{OfFunction: &responses.FunctionToolParam{Name: "get_weather",
			Parameters: map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var calls []string
	for _, item := range got.Output {
		if item.Type == "function_call" {
			fc := item.AsFunctionCall()
			calls = append(calls, fc.Name+" "+fc.Arguments)
		}
	}
	if len(calls) != 1 || calls[0] != "get_weather "+toolArgs {
		t.Errorf("function calls = %v (output %+v)", calls, got.Output)
	}
}

func TestEmbeddings(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	for _, p := range providerModels {
		t.Run(p.wire, func(t *testing.T) {
			var httpResp *http.Response
			got, err := h.client(h.fx.key).Embeddings.New(context.Background(), openai.EmbeddingNewParams{
				Model: p.model, Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"hello world"}},
				EncodingFormat: openai.EmbeddingNewParamsEncodingFormatFloat,
			}, option.WithResponseInto(&httpResp))
			if p.wire == "anthropic" {
				var apiErr *openai.Error
				if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Code != "operation_not_supported" {
					t.Fatalf("err = %v, want 400 operation_not_supported", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Data) != 1 || len(got.Data[0].Embedding) != 3 || got.Data[0].Embedding[1] != -0.25 {
				t.Errorf("embeddings = %+v", got.Data)
			}
			ev := h.waitUsage(t, httpResp.Header.Get("x-request-id"))
			if ev.Endpoint != "embeddings" || ev.PromptTokens == 0 || ev.CostMicros == 0 {
				t.Errorf("usage event = %v", ev)
			}
		})
	}
	// Gemini's base64 encoding is produced by the gateway.
	got, err := h.client(h.fx.key).Embeddings.New(context.Background(), openai.EmbeddingNewParams{
		Model: "gemini", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("hello")},
		EncodingFormat: openai.EmbeddingNewParamsEncodingFormatBase64,
	})
	if err != nil || len(got.Data) != 1 || len(got.Data[0].Embedding) != 3 || got.Data[0].Embedding[0] != 0.5 {
		t.Errorf("base64 embeddings = %+v, %v", got, err)
	}
}

// TestStreamingPricedLikeNonStreaming sends the same request streamed and not, on
// every surface and provider, and compares what was charged.
func TestStreamingPricedLikeNonStreaming(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	type charge struct{ prompt, completion, cached, cost int64 }
	send := func(t *testing.T, path, body string) charge {
		resp, data := h.do(t, "POST", path, bearer(h.fx.key), body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, data)
		}
		ev := h.waitUsage(t, resp.Header.Get("x-request-id"))
		return charge{ev.PromptTokens, ev.CompletionTokens, ev.CachedTokens, ev.CostMicros}
	}
	for _, p := range providerModels {
		for _, s := range []struct{ path, body string }{
			{"/v1/chat/completions", `{"model":%q,"messages":[{"role":"user","content":"hi"}]%s}`},
			{"/v1/messages", `{"model":%q,"max_tokens":64,"messages":[{"role":"user","content":"hi"}]%s}`},
			{"/v1/responses", `{"model":%q,"input":"hi"%s}`},
		} {
			t.Run(p.wire+s.path, func(t *testing.T) {
				plain := send(t, s.path, fmt.Sprintf(s.body, p.model, ""))
				streamed := send(t, s.path, fmt.Sprintf(s.body, p.model, `,"stream":true`))
				if plain != streamed || plain.cost == 0 {
					t.Errorf("non-streaming %+v, streaming %+v", plain, streamed)
				}
			})
		}
	}
}

// anthropicErrorShape is the exact Anthropic error body.
type anthropicErrorShape struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

func TestMessagesErrors(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{maxBody: 64 << 10})
	msg := func(model string) string {
		return fmt.Sprintf(`{"model":%q,"max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`, model)
	}
	key := map[string]string{"x-api-key": h.fx.key, "anthropic-version": "2023-06-01"}
	tests := []struct {
		name     string
		header   map[string]string
		body     string
		status   int
		wantType string
	}{
		{"no key", map[string]string{"anthropic-version": "2023-06-01"}, msg("echo"), 401, "authentication_error"},
		{"wrong key", map[string]string{"x-api-key": h.fx.key + "x"}, msg("echo"), 401, "authentication_error"},
		{"suspended team", map[string]string{"x-api-key": h.fx.teamB}, msg("echo"), 403, "permission_error"},
		{"unknown model", key, msg("gpt-9"), 404, "not_found_error"},
		{"model not allowed", map[string]string{"x-api-key": h.fx.limited}, msg("block"), 403, "permission_error"},
		{"malformed json", key, `{"model":`, 400, "invalid_request_error"},
		{"no max_tokens", key, `{"model":"echo","messages":[]}`, 400, "invalid_request_error"},
		{"bad role", key, `{"model":"echo","max_tokens":5,"messages":[{"role":"robot","content":"x"}]}`, 400, "invalid_request_error"},
		{"content of wrong type", key, `{"model":"echo","max_tokens":5,"messages":[{"role":"user","content":5}]}`, 400, "invalid_request_error"},
		{"body too large", key, `{"model":"echo","pad":"` + strings.Repeat("x", 65<<10) + `"}`, 413, "request_too_large"},
		{"upstream 429 translated", key, msg("limited"), 429, "rate_limit_error"},
		{"upstream refuses provider key", key, msg("auth-fail"), 502, "api_error"},
		{"upstream unreachable", key, msg("dead"), 502, "api_error"},
		{"stream not boolean", key, `{"model":"claude-block","max_tokens":5,"messages":[{"role":"user","content":"x"}],"stream":"no"}`, 400, "invalid_request_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := h.do(t, "POST", "/v1/messages", tt.header, tt.body)
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d (%s)", resp.StatusCode, tt.status, body)
			}
			var e anthropicErrorShape
			if err := json.Unmarshal(body, &e); err != nil || e.Type != "error" || e.Error.Type != tt.wantType || e.Error.Message == "" {
				t.Errorf("body = %s, want an Anthropic %s error", body, tt.wantType)
			}
			if resp.Header.Get("x-request-id") == "" || resp.Header.Get("x-gatehouse-overhead-ms") == "" {
				t.Error("request id or overhead header missing")
			}
			for _, secret := range []string{upstreamKey, h.fx.key, "goroutine", ".go:"} {
				if strings.Contains(string(body), secret) {
					t.Errorf("body leaks %q: %s", secret, body)
				}
			}
		})
	}
	// The SDK sees these as API errors with the right status.
	ac := h.anthropicClient()
	_, err := ac.Messages.New(context.Background(), anthropic.MessageNewParams{Model: "gpt-9", MaxTokens: 5,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}})
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
		t.Errorf("SDK error = %v", err)
	}
	// Unknown paths and methods under /v1/messages answer in Anthropic's format too.
	for _, c := range []struct{ method, path string }{{"POST", "/v1/messages/batches"}, {"GET", "/v1/messages"}} {
		resp, body := h.do(t, c.method, c.path, key, msg("echo"))
		var e anthropicErrorShape
		if resp.StatusCode != 404 || json.Unmarshal(body, &e) != nil || e.Error.Type != "not_found_error" {
			t.Errorf("%s %s: %d %s", c.method, c.path, resp.StatusCode, body)
		}
	}
	// Authorization: Bearer works too.
	resp, body := h.do(t, "POST", "/v1/messages", bearer(h.fx.key), msg("echo"))
	if resp.StatusCode != 200 {
		t.Errorf("bearer auth: %d %s", resp.StatusCode, body)
	}
}

func TestOpenAISurfacesErrors(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	tests := []struct {
		name, path, body string
		status           int
		typ, code        string
	}{
		{"responses without input", "/v1/responses", `{"model":"echo"}`, 400, "invalid_request_error", ""},
		{"responses custom tool, Anthropic", "/v1/responses", `{"model":"claude","input":"x","tools":[{"type":"custom","name":"t"}]}`, 400, "invalid_request_error", ""},
		{"responses previous_response_id not from this gateway", "/v1/responses", `{"model":"echo","input":"x","previous_response_id":"resp_1"}`, 400, "invalid_request_error", "previous_response_not_found"},
		{"responses previous_response_id in another spelling", "/v1/responses", `{"model":"echo","input":"x","previous_response_id":"resp_1","Previous_Response_Id":""}`, 400, "invalid_request_error", ""},
		{"responses previous_response_id not a string", "/v1/responses", `{"model":"echo","input":"x","previous_response_id":7}`, 400, "invalid_request_error", ""},
		{"responses conversation", "/v1/responses", `{"model":"echo","input":"x","conversation":"conv_1"}`, 400, "invalid_request_error", ""},
		{"responses bad item", "/v1/responses", `{"model":"claude","input":[{"type":"computer_call"}]}`, 400, "invalid_request_error", ""},
		// An OpenAI-compatible provider gets them through its own Responses API; this
		// one has none.
		{"responses custom tool, no Responses API", "/v1/responses", `{"model":"echo","input":"x","tools":[{"type":"custom","name":"t"}]}`, 404, "invalid_request_error", "responses_api_not_found"},
		{"responses unknown model", "/v1/responses", `{"model":"gpt-9","input":"x"}`, 404, "invalid_request_error", "model_not_found"},
		{"responses upstream 429", "/v1/responses", `{"model":"limited","input":"x"}`, 429, "rate_limit_error", "rate_limit_exceeded"},
		{"embeddings without input", "/v1/embeddings", `{"model":"echo"}`, 400, "invalid_request_error", ""},
		{"embeddings empty string", "/v1/embeddings", `{"model":"echo","input":[""]}`, 400, "invalid_request_error", ""},
		{"embeddings bad format", "/v1/embeddings", `{"model":"echo","input":"x","encoding_format":"hex"}`, 400, "invalid_request_error", ""},
		{"embeddings not supported", "/v1/embeddings", `{"model":"claude","input":"x"}`, 400, "invalid_request_error", "operation_not_supported"},
		{"chat to anthropic with bad content", "/v1/chat/completions", `{"model":"claude","messages":[{"role":"user","content":7}]}`, 400, "invalid_request_error", ""},
		{"chat to gemini with bad role", "/v1/chat/completions", `{"model":"gemini","messages":[{"role":"robot","content":"x"}]}`, 400, "invalid_request_error", ""},
		{"chat upstream 429 from gemini", "/v1/chat/completions", `{"model":"limited","messages":[]}`, 429, "rate_limit_error", "rate_limit_exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := h.do(t, "POST", tt.path, bearer(h.fx.key), tt.body)
			checkError(t, resp, body, tt.status, tt.typ, tt.code, upstreamKey, h.fx.key)
		})
	}
}

var _ = gatehousev1.ProviderType_PROVIDER_TYPE_GEMINI

// TestThinkingThroughChatCompletions: an OpenAI SDK caller asks a Claude model to
// reason; the upstream is asked to think with a budget, and the caller reads the
// reasoning (reasoning_content) and the signed block to send back (thinking_blocks),
// streamed and not.
func TestThinkingThroughChatCompletions(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	params := chatParams("claude")
	params.ReasoningEffort = shared.ReasoningEffortLow
	params.MaxCompletionTokens = openai.Int(4000)

	got, err := h.client(h.fx.key).Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	call, _ := h.upstream.lastCall()
	if th, _ := call.Body["thinking"].(map[string]any); th["type"] != "enabled" || th["budget_tokens"] != float64(1024) {
		t.Fatalf("upstream thinking = %v", call.Body["thinking"])
	}
	msg := got.Choices[0].Message
	if msg.Content != "Hello" || msg.JSON.ExtraFields["reasoning_content"].Raw() != `"`+thought+`"` ||
		!strings.Contains(msg.JSON.ExtraFields["thinking_blocks"].Raw(), `"signature":"sig-1"`) {
		t.Fatalf("message %s", msg.RawJSON())
	}

	s := h.client(h.fx.key).Chat.Completions.NewStreaming(context.Background(), params)
	var reasoning, content strings.Builder
	signed := false
	for s.Next() {
		c := s.Current()
		if len(c.Choices) == 0 {
			continue
		}
		d := c.Choices[0].Delta
		content.WriteString(d.Content)
		if r := d.JSON.ExtraFields["reasoning_content"]; r.Raw() != "" {
			var text string
			_ = json.Unmarshal([]byte(r.Raw()), &text)
			reasoning.WriteString(text)
		}
		signed = signed || strings.Contains(d.JSON.ExtraFields["thinking_blocks"].Raw(), `"signature":"sig-1"`)
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if reasoning.String() != thought || content.String() != "Hello" || !signed {
		t.Fatalf("streamed reasoning %q, content %q, signed block %v", reasoning.String(), content.String(), signed)
	}
}

// TestThinkingThroughResponses: reasoning asked on the Responses API comes back as a
// reasoning output item with its summary, streamed and not.
func TestThinkingThroughResponses(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	params := responses.ResponseNewParams{
		Model:     "claude",
		Input:     responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
		Reasoning: shared.ReasoningParam{Effort: shared.ReasoningEffortMedium},
	}
	got, err := h.client(h.fx.key).Responses.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	call, _ := h.upstream.lastCall()
	if th, _ := call.Body["thinking"].(map[string]any); th["budget_tokens"] != float64(4096) {
		t.Fatalf("upstream thinking = %v", call.Body["thinking"])
	}
	if len(got.Output) != 2 || got.Output[0].Type != "reasoning" || len(got.Output[0].Summary) != 1 ||
		got.Output[0].Summary[0].Text != thought || got.OutputText() != "Hello" {
		t.Fatalf("output %s", got.RawJSON())
	}

	s := h.client(h.fx.key).Responses.NewStreaming(context.Background(), params)
	var summary strings.Builder
	var final responses.Response
	for s.Next() {
		ev := s.Current()
		switch ev.Type {
		case "response.reasoning_summary_text.delta":
			summary.WriteString(ev.Delta)
		case "response.completed":
			final = ev.Response
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if summary.String() != thought || len(final.Output) != 2 || final.Output[0].Summary[0].Text != thought || final.OutputText() != "Hello" {
		t.Fatalf("streamed summary %q, final output %s", summary.String(), final.RawJSON())
	}
}

// A JSON schema for the answer reaches every provider in its own form, from either
// SDK: response_format (OpenAI), output_config.format (Anthropic), responseSchema
// (Gemini).
func TestStructuredOutputsAcrossProviders(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	schema := map[string]any{"type": "object", "properties": map[string]any{"temp_c": map[string]any{"type": "number"}},
		"required": []string{"temp_c"}, "additionalProperties": false}
	want := map[string]string{ // what the upstream body must hold
		"openai":    `"response_format":{"json_schema":{"name":"weather","schema":`,
		"azure":     `"response_format":{"json_schema":{"name":"weather","schema":`,
		"anthropic": `"output_config":{"format":{"schema":{"additionalProperties":false,"properties":{"temp_c":{"type":"number"}},"required":["temp_c"],"type":"object"},"type":"json_schema"}}`,
		"gemini":    `"responseMimeType":"application/json","responseSchema":{"properties":{"temp_c":{"type":"number"}}`,
	}
	wantFromMessages := map[string]string{
		"openai":    `"response_format":{"json_schema":{"name":"output","schema":{"additionalProperties":false,"properties":{"temp_c":{"type":"number"}},"required":["temp_c"],"type":"object"},"strict":true},"type":"json_schema"}`,
		"azure":     `"response_format":{"json_schema":{"name":"output","schema":`,
		"anthropic": `"output_config":{"format":{"schema":{"additionalProperties":false,"properties":{"temp_c":{"type":"number"}}`,
		"gemini":    `"responseMimeType":"application/json","responseSchema":{"properties":{"temp_c":{"type":"number"}}`,
	}
	upstreamBody := func(t *testing.T) string {
		t.Helper()
		call, _ := h.upstream.lastCall()
		raw, _ := json.Marshal(call.Body)
		return string(raw)
	}
	for _, p := range providerModels {
		t.Run(p.wire+"/chat", func(t *testing.T) {
			params := chatParams(p.model)
			params.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
				JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "weather", Schema: schema, Strict: openai.Bool(true)}}}
			if _, err := h.client(h.fx.key).Chat.Completions.New(context.Background(), params); err != nil {
				t.Fatal(err)
			}
			if body := upstreamBody(t); !strings.Contains(body, want[p.wire]) {
				t.Errorf("upstream body lacks %s: %s", want[p.wire], body)
			}
		})
		t.Run(p.wire+"/chat, not strict", func(t *testing.T) {
			// A schema that only guides OpenAI would have Claude refuse what it
			// cannot enforce: it stays with the prompt.
			params := chatParams(p.model)
			params.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
				JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "weather", Schema: map[string]any{"type": "object"}}}}
			if _, err := h.client(h.fx.key).Chat.Completions.New(context.Background(), params); err != nil {
				t.Fatal(err)
			}
			if body := upstreamBody(t); p.wire == "anthropic" && strings.Contains(body, "output_config") {
				t.Errorf("a schema that is not strict reached Claude: %s", body)
			}
		})
		t.Run(p.wire+"/messages", func(t *testing.T) {
			client := h.anthropicClient()
			_, err := client.Messages.New(context.Background(), anthropic.MessageNewParams{
				Model: anthropic.Model(p.model), MaxTokens: 64,
				Messages:     []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("weather?"))},
				OutputConfig: anthropic.OutputConfigParam{Format: anthropic.JSONOutputFormatParam{Schema: schema}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if body := upstreamBody(t); !strings.Contains(body, wantFromMessages[p.wire]) {
				t.Errorf("upstream body lacks %s: %s", wantFromMessages[p.wire], body)
			}
		})
	}
}
