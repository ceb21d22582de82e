package app_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/param"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

// TestThinkingThroughResponsesTurnTwo: an OpenAI SDK agent on the Responses API, with
// reasoning and a tool, served by Claude: it asks for encrypted reasoning (store off),
// and sends turn one's output items back with the tool's result. Anthropic then gets
// the assistant turn with its signed thinking block first, as it requires to continue
// a tool call with thinking on. Streamed, the items are those of the
// response.output_item.done events.
func TestThinkingThroughResponsesTurnTwo(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	tools := []responses.ToolUnionParam{{OfFunction: &responses.FunctionToolParam{Name: "get_weather",
		Parameters: map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}}}}
	params := func(input responses.ResponseInputParam) responses.ResponseNewParams {
		return responses.ResponseNewParams{
			Model:     "claude-tool",
			Input:     responses.ResponseNewParamsInputUnion{OfInputItemList: input},
			Reasoning: shared.ReasoningParam{Effort: shared.ReasoningEffortLow},
			Include:   []responses.ResponseIncludable{responses.ResponseIncludableReasoningEncryptedContent},
			Store:     openai.Bool(false),
			Tools:     tools,
		}
	}
	ask := responses.ResponseInputParam{responses.ResponseInputItemParamOfMessage("Weather in Paris?", responses.EasyInputMessageRoleUser)}
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%t", stream), func(t *testing.T) {
			var items []string // raw output items
			if stream {
				s := h.client(h.fx.key).Responses.NewStreaming(context.Background(), params(ask))
				for s.Next() {
					if ev := s.Current(); ev.Type == "response.output_item.done" {
						items = append(items, ev.Item.RawJSON())
					}
				}
				if err := s.Err(); err != nil {
					t.Fatal(err)
				}
			} else {
				got, err := h.client(h.fx.key).Responses.New(context.Background(), params(ask))
				if err != nil {
					t.Fatal(err)
				}
				for _, it := range got.Output {
					items = append(items, it.RawJSON())
				}
			}
			var reasoning responses.ResponseReasoningItem
			if len(items) == 0 || json.Unmarshal([]byte(items[0]), &reasoning) != nil || reasoning.Type != "reasoning" || reasoning.EncryptedContent == "" {
				t.Fatalf("output items %v: want a reasoning item with encrypted_content first", items)
			}

			input := append(responses.ResponseInputParam{}, ask...)
			for _, it := range items {
				input = append(input, param.Override[responses.ResponseInputItemUnionParam](json.RawMessage(it)))
			}
			result := responses.ResponseInputItemParamOfFunctionCallOutput("Rain.")
			result.OfFunctionCallOutput.CallID = openai.String("toolu_1")
			input = append(input, result)
			if _, err := h.client(h.fx.key).Responses.New(context.Background(), params(input)); err != nil {
				t.Fatal(err)
			}
			call, _ := h.upstream.lastCall()
			msgs, _ := call.Body["messages"].([]any)
			if len(msgs) != 3 {
				t.Fatalf("turn two messages %v", msgs)
			}
			text := "Let me check." // the fake upstream streams "Hello" before its tool calls
			if stream {
				text = "Hello"
			}
			want := []any{
				map[string]any{"type": "thinking", "thinking": thought, "signature": "sig-1"},
				map[string]any{"type": "text", "text": text},
				map[string]any{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": map[string]any{"city": "Paris"}},
			}
			if diff := cmp.Diff(want, msgs[1].(map[string]any)["content"]); diff != "" {
				t.Errorf("assistant turn sent to Anthropic (-want +got):\n%s", diff)
			}
		})
	}
}

// TestResponsesRedactedThinkingCarriesNoState: a thinking block a response guardrail
// redacted reaches a Responses caller as a summary with the redaction and without
// encrypted_content (which would carry the original text and Anthropic's signature);
// a block no rule touched keeps its state.
func TestResponsesRedactedThinkingCarriesNoState(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{upstream: reasoningUpstream(), extra: func(s *gatehousev1.Snapshot) {
		for _, tm := range s.Teams {
			if tm.Id == "team-a" {
				tm.Guardrails = []*gatehousev1.GuardrailRule{{Id: "g-email", Name: "g-email",
					Detector: gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_EMAIL, Mode: gatehousev1.GuardrailMode_GUARDRAIL_MODE_REDACT,
					Direction: gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_RESPONSE}}
			}
		}
	}})
	tests := []struct {
		stream bool
		// states are the signatures the reasoning items' states hold, "" for none.
		states []string
	}{
		{false, []string{"", "sig-clean"}},
		{true, []string{""}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("stream=%t", tt.stream), func(t *testing.T) {
			resp, b := h.do(t, "POST", "/v1/responses", bearer(h.fx.key), fmt.Sprintf(`{"model":"claude","stream":%t,"input":"hi"}`, tt.stream))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			var items []map[string]any
			if tt.stream {
				for line := range strings.Lines(string(b)) {
					var ev struct {
						Type string         `json:"type"`
						Item map[string]any `json:"item"`
					}
					data, ok := strings.CutPrefix(strings.TrimSpace(line), "data: ")
					if ok && json.Unmarshal([]byte(data), &ev) == nil && ev.Type == "response.output_item.done" {
						items = append(items, ev.Item)
					}
				}
			} else {
				var r struct{ Output []map[string]any }
				if err := json.Unmarshal(b, &r); err != nil {
					t.Fatal(err)
				}
				items = r.Output
			}
			var states []string
			for _, it := range items {
				if it["type"] != "reasoning" {
					continue
				}
				enc, _ := it["encrypted_content"].(string)
				state := decodeState(t, enc)
				if strings.Contains(state, "doe@") || strings.Contains(state, "sig-upstream") {
					t.Errorf("state of a redacted block: %s", state)
				}
				var tb struct{ Signature string }
				_ = json.Unmarshal([]byte(state), &tb)
				states = append(states, tb.Signature)
			}
			if fmt.Sprint(states) != fmt.Sprint(tt.states) || !strings.Contains(string(b), "[REDACTED:email]") {
				t.Errorf("signatures in states %q, want %q; answer:\n%s", states, tt.states, b)
			}
		})
	}
}

// decodeState reads a gateway reasoning state as the JSON it carries ("" for none).
func decodeState(t *testing.T, enc string) string {
	t.Helper()
	if enc == "" {
		return ""
	}
	_, rest, ok := strings.Cut(enc, "thinking.v1.")
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if !ok || err != nil {
		t.Fatalf("encrypted_content %q is not the gateway's", enc)
	}
	return string(raw)
}

// TestResponsesMalformedReasoningStateRefused: a reasoning item whose encrypted_content
// claims to be the gateway's and is not is a 400 in OpenAI's format, naming it.
func TestResponsesMalformedReasoningStateRefused(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	body := `{"model":"claude","input":[{"role":"user","content":"hi"},{"type":"reasoning","summary":[],"encrypted_content":"gatehouse.thinking.v1.bm90IGpzb24"}]}`
	resp, b := h.do(t, "POST", "/v1/responses", bearer(h.fx.key), body)
	var e struct {
		Error struct{ Type, Param, Message string }
	}
	if err := json.Unmarshal(b, &e); err != nil || resp.StatusCode != http.StatusBadRequest || e.Error.Type != "invalid_request_error" ||
		e.Error.Param != "input[1].encrypted_content" || !strings.Contains(e.Error.Message, "input[1].encrypted_content") {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if _, err := h.upstream.lastCall(); err == nil {
		t.Error("the upstream was called")
	}
}
