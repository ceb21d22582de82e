package llm

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// chatChunks decodes the chunks of a chat stream, [DONE] left out.
func chatChunks(t *testing.T, body string) []chatChunk {
	t.Helper()
	var out []chatChunk
	for _, line := range strings.Split(body, "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var c chatChunk
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("chunk %s: %v", data, err)
		}
		out = append(out, c)
	}
	return out
}

// chatStreamChoices reads a chat stream as the caller would: per choice, its content
// and the arguments of each tool call by index; and whether a chunk came after the
// choice's finish reason.
func chatStreamChoices(t *testing.T, body string) (content map[int]string, args map[int]map[int]string, afterFinish bool) {
	t.Helper()
	content, args = map[int]string{}, map[int]map[int]string{}
	finished := map[int]bool{}
	for _, c := range chatChunks(t, body) {
		for _, ch := range c.Choices {
			if finished[ch.Index] {
				afterFinish = true
			}
			content[ch.Index] += deref(ch.Delta.Content)
			for _, tc := range ch.Delta.ToolCalls {
				if tc.Index == nil {
					t.Fatalf("a relayed tool call without an index: %+v", c)
				}
				if args[ch.Index] == nil {
					args[ch.Index] = map[int]string{}
				}
				args[ch.Index][*tc.Index] += tc.Function.Arguments
			}
			if ch.FinishReason != nil && *ch.FinishReason != "" {
				finished[ch.Index] = true
			}
		}
	}
	return content, args, afterFinish
}

func TestToolCallsWithoutIndexAreFilteredApart(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		events []string
	}{
		{"one delta", []string{
			chunkHead + `{"index":0,"delta":{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{\"x\":\"secret\"}"}},{"id":"b","type":"function","function":{"name":"g","arguments":"{\"y\":2}"}}]},"finish_reason":null}]}`,
			chunkHead + `{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`, `[DONE]`,
		}},
		{"deltas", []string{
			chunkHead + `{"index":0,"delta":{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{\"x\":\"sec"}}]},"finish_reason":null}]}`,
			chunkHead + `{"index":0,"delta":{"tool_calls":[{"function":{"arguments":"ret\"}"}}]},"finish_reason":null}]}`,
			chunkHead + `{"index":0,"delta":{"tool_calls":[{"id":"b","type":"function","function":{"name":"g","arguments":"{\"y\":"}}]},"finish_reason":null}]}`,
			chunkHead + `{"index":0,"delta":{"tool_calls":[{"function":{"arguments":"2}"}}]},"finish_reason":"tool_calls"}]}`, `[DONE]`,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := serveFiltered(t, SurfaceChat, openAIType, surfaceBody(SurfaceChat, true), answerSSE(tc.events...))
			_, args, _ := chatStreamChoices(t, got)
			want := map[int]map[int]string{0: {0: `{"x":"[REDACTED]"}`, 1: `{"y":2}`}}
			if diff := cmp.Diff(want, args); diff != "" {
				t.Errorf("tool call arguments (-want +got):\n%s\n%s", diff, got)
			}
			for _, surface := range []Surface{SurfaceMessages, SurfaceResponses} {
				got := serveFiltered(t, surface, openAIType, surfaceBody(surface, true), answerSSE(tc.events...))
				if !strings.Contains(got, `{\"x\":\"[REDACTED]\"}`) || !strings.Contains(got, `{\"y\":2}`) {
					t.Errorf("surface %d: each call's arguments whole in its own block:\n%s", surface, got)
				}
			}
		})
	}
}

// anthropicTextThenTool streams a text block, then a tool_use block.
var anthropicTextThenTool = []string{
	`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"usage":{"input_tokens":5,"output_tokens":1}}}`,
	`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
	`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"I will look up the secret."}}`,
	`{"type":"content_block_stop","index":0}`,
	`{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"look","input":{}}}`,
	`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"q\":1}"}}`,
	`{"type":"content_block_stop","index":1}`,
	`{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":7}}`,
	`{"type":"message_stop"}`,
}

func TestContentEndsBeforeAToolCall(t *testing.T) {
	t.Parallel()
	t.Run("messages", func(t *testing.T) {
		t.Parallel()
		got := serveFiltered(t, SurfaceMessages, anthropicType, surfaceBody(SurfaceMessages, true), answerSSE(anthropicTextThenTool...))
		text := strings.LastIndex(got, `"text_delta"`)
		tool := strings.Index(got, `"type":"tool_use"`)
		if text < 0 || tool < 0 || text > tool || strings.Count(got, `"type":"text"`) != 1 {
			t.Errorf("the text must come whole before the tool_use block:\n%s", got)
		}
		if !strings.Contains(got, "I will look up the [REDACTED].") {
			t.Errorf("text lost:\n%s", got)
		}
	})
	t.Run("responses", func(t *testing.T) {
		t.Parallel()
		got := serveFiltered(t, SurfaceResponses, anthropicType, surfaceBody(SurfaceResponses, true), answerSSE(anthropicTextThenTool...))
		added := strings.Count(got, "event: response.output_item.added")
		message := strings.Index(got, `"item":{"type":"message"`)
		call := strings.Index(got, `"type":"function_call"`)
		if added != 2 || message < 0 || call < 0 || message > call {
			t.Errorf("want one message item, then the function_call:\n%s", got)
		}
	})
	t.Run("chat", func(t *testing.T) {
		t.Parallel()
		got := serveFiltered(t, SurfaceChat, openAIType, surfaceBody(SurfaceChat, true), answerSSE(
			chunkHead+`{"index":0,"delta":{"role":"assistant","content":"a secret"},"finish_reason":null}]}`,
			chunkHead+`{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":null}]}`,
			chunkHead+`{"index":0,"delta":{"content":" more secret"},"finish_reason":"tool_calls"}]}`, `[DONE]`))
		// A chat caller joins a choice's content whatever comes between: one text.
		content, _, _ := chatStreamChoices(t, got)
		if content[0] != "a [REDACTED] more [REDACTED]" || !strings.Contains(got, `"tool_calls"`) {
			t.Errorf("want the content filtered as one text, and the tool call:\n%s", got)
		}
	})
}

func TestDeltasAfterFinishAreDropped(t *testing.T) {
	t.Parallel()
	got := serveFiltered(t, SurfaceChat, openAIType, surfaceBody(SurfaceChat, true), answerSSE(
		chunkHead+`{"index":0,"delta":{"role":"assistant","content":"hello "},"finish_reason":"stop"}]}`,
		chunkHead+`{"index":0,"delta":{"content":"world"},"finish_reason":null}]}`, `[DONE]`))
	content, _, after := chatStreamChoices(t, got)
	if after || content[0] != "hello " || strings.Contains(got, "world") {
		t.Errorf("want only the answer up to its finish reason:\n%s", got)
	}
}

func TestGeminiChoicesEachNameTheirRole(t *testing.T) {
	t.Parallel()
	srv := manyChoicesUpstream(t, wireGemini)
	req := parseGoldenRequest(t, SurfaceChat, []byte(`{"model":"m","n":3,"stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Candidates = []*runtime.Model{testModel(t, geminiType, srv.URL)}
	rec := httptest.NewRecorder()
	if _, err := testClient(t).Serve(context.Background(), rec, req); err != nil {
		t.Fatal(err)
	}
	first := map[int]string{}
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var c chatChunk
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatal(err)
		}
		for _, ch := range c.Choices {
			if _, seen := first[ch.Index]; !seen {
				first[ch.Index] = ch.Delta.Role
			}
		}
	}
	if diff := cmp.Diff(map[int]string{0: "assistant", 1: "assistant", 2: "assistant"}, first); diff != "" {
		t.Errorf("the role of each choice's first chunk (-want +got):\n%s\n%s", diff, rec.Body.String())
	}
}

// TestGeminiBlockedPrompt: a prompt Gemini blocks (no candidates, a block reason) is
// one choice finished by the content filter, streamed or not — never an answer
// without choices.
func TestGeminiBlockedPrompt(t *testing.T) {
	t.Parallel()
	blocked := []byte(`{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":7},"modelVersion":"gemini-x","responseId":"r1"}`)
	var r geminiResponse
	if err := json.Unmarshal(blocked, &r); err != nil {
		t.Fatal(err)
	}
	out := geminiToChat(&r, "m", 1)
	if len(out.Choices) != 1 || out.Choices[0].FinishReason != "content_filter" || out.Choices[0].Message.Content == nil {
		t.Fatalf("choices = %+v", out.Choices)
	}
	var d geminiStreamDecoder
	chunks, err := d.decode(blocked)
	if err != nil {
		t.Fatal(err)
	}
	last := chunks[len(chunks)-1]
	if len(last.Choices) != 1 || last.Choices[0].FinishReason == nil || *last.Choices[0].FinishReason != "content_filter" {
		t.Fatalf("stream chunks = %+v", chunks)
	}
}

// TestGeminiToolCallIDs: Gemini's tool calls get ids unique to their response, streamed
// or not alike, that OpenAI (at most 40 characters) and Anthropic ([A-Za-z0-9_-])
// take too, for a conversation that moves on to a fallback.
func TestGeminiToolCallIDs(t *testing.T) {
	t.Parallel()
	answer := []byte(`{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"U0lH+/="}]},"finishReason":"STOP","index":0}],"responseId":"Zq2r.Z8jt+F4/pnvgPz_fE6QgAAAAAAAAAAAAAAA"}`)
	var r geminiResponse
	if err := json.Unmarshal(answer, &r); err != nil {
		t.Fatal(err)
	}
	calls := geminiToChat(&r, "m", 1).Choices[0].Message.ToolCalls
	var d geminiStreamDecoder
	chunks, err := d.decode(answer)
	if err != nil {
		t.Fatal(err)
	}
	var streamed string
	for _, c := range chunks {
		for _, ch := range c.Choices {
			for _, tc := range ch.Delta.ToolCalls {
				streamed = tc.ID
			}
		}
	}
	if len(calls) != 1 || calls[0].ID != "call_Zq2rZ8jtF4pnvgPz_fE6QgAA_0" || streamed != calls[0].ID || len(calls[0].ID) > 40 {
		t.Fatalf("tool call ids %+v, streamed %q", calls, streamed)
	}
}

// TestAnthropicToolWithoutInputStreamsEmptyObject: a streamed tool_use without input
// ends with arguments "{}", as the same answer not streamed; one with input gets
// nothing added.
func TestAnthropicToolWithoutInputStreamsEmptyObject(t *testing.T) {
	t.Parallel()
	events := []string{
		`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"c","content":[],"usage":{"input_tokens":5,"output_tokens":1}}}`,
		`{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"now","input":{}}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":""}}`,
		`{"type":"content_block_stop","index":0}`,
		`{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_2","name":"weather","input":{}}}`,
		`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}`,
		`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}`,
		`{"type":"content_block_stop","index":1}`,
		`{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}`,
		`{"type":"message_stop"}`,
	}
	var d anthropicStreamDecoder
	args := map[int]string{}
	for _, ev := range events {
		chunks, _, err := d.decode([]byte(ev))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range chunks {
			for _, ch := range c.Choices {
				for _, tc := range ch.Delta.ToolCalls {
					args[*tc.Index] += tc.Function.Arguments
				}
			}
		}
	}
	if diff := cmp.Diff(map[int]string{0: "{}", 1: `{"city":"Paris"}`}, args); diff != "" {
		t.Errorf("arguments (-want +got):\n%s", diff)
	}
}
