package llm

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// chatReasoning returns what a chat client makes of choice 0's reasoning in a
// streamed (or, when body is no stream, complete) answer: reasoning_content joined,
// and the thinking blocks.
func chatReasoning(t *testing.T, body string) (string, []thinkingBlock) {
	t.Helper()
	if !strings.HasPrefix(strings.TrimSpace(body), "data:") && !strings.HasPrefix(strings.TrimSpace(body), "event:") {
		var cr struct {
			Choices []struct {
				Message struct {
					ReasoningContent string          `json:"reasoning_content"`
					ThinkingBlocks   []thinkingBlock `json:"thinking_blocks"`
				} `json:"message"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(body), &cr); err != nil || len(cr.Choices) == 0 {
			t.Fatalf("answer %q: %v", body, err)
		}
		return cr.Choices[0].Message.ReasoningContent, cr.Choices[0].Message.ThinkingBlocks
	}
	var reasoning strings.Builder
	var tbs []thinkingBlock
	for _, c := range chatChunks(t, body) {
		for _, ch := range c.Choices {
			if ch.Index == 0 {
				reasoning.WriteString(deref(ch.Delta.ReasoningContent))
				tbs = append(tbs, ch.Delta.ThinkingBlocks...)
			}
		}
	}
	return reasoning.String(), tbs
}

// On the chat surface a caller joins all of a choice's reasoning into one string: an
// email split by content or a tool call is redacted as one text, in reasoning_content
// and in the thinking blocks alike, and a thinking block the filter may have changed
// loses its signature while one outside the change keeps it.
func TestChatReasoningIsOneTextAcrossContent(t *testing.T) {
	t.Parallel()
	const want = "plainmail [REDACTED:email] end"
	anthropicStream := anthropicSSE(
		`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"usage":{"input_tokens":5,"output_tokens":1}}}`,
		`{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"plain"}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"SA"}}`,
		`{"type":"content_block_stop","index":0}`,
		`{"type":"content_block_start","index":1,"content_block":{"type":"thinking","thinking":""}}`,
		`{"type":"content_block_delta","index":1,"delta":{"type":"thinking_delta","thinking":"mail bob@exa"}}`,
		`{"type":"content_block_delta","index":1,"delta":{"type":"signature_delta","signature":"SB"}}`,
		`{"type":"content_block_stop","index":1}`,
		`{"type":"content_block_start","index":2,"content_block":{"type":"text","text":""}}`,
		`{"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"c1"}}`,
		`{"type":"content_block_stop","index":2}`,
		`{"type":"content_block_start","index":3,"content_block":{"type":"thinking","thinking":""}}`,
		`{"type":"content_block_delta","index":3,"delta":{"type":"thinking_delta","thinking":"mple.com end"}}`,
		`{"type":"content_block_delta","index":3,"delta":{"type":"signature_delta","signature":"SC"}}`,
		`{"type":"content_block_stop","index":3}`,
		`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}}`,
		`{"type":"message_stop"}`,
	)
	anthropicAnswer := answerJSON(`{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[` +
		`{"type":"thinking","thinking":"plain","signature":"SA"},{"type":"thinking","thinking":"mail bob@exa","signature":"SB"},` +
		`{"type":"text","text":"c1"},{"type":"thinking","thinking":"mple.com end","signature":"SC"}],` +
		`"stop_reason":"end_turn","usage":{"input_tokens":5,"output_tokens":7}}`)
	wantBlocks := []thinkingBlock{
		{Type: "thinking", Thinking: "plain", Signature: "SA"},
		{Type: "thinking", Thinking: "mail [REDACTED:email]"},
		{Type: "thinking", Thinking: " end"},
	}
	for _, tc := range []struct {
		name       string
		stream     bool
		anthropic  bool
		wantBlocks []thinkingBlock
		events     []string
	}{
		{name: "openai content between", stream: true, events: []string{
			chatDelta(`{"role":"assistant","reasoning_content":"plainmail bob@exa"}`, ""),
			chatDelta(`{"content":"c1"}`, ""),
			chatDelta(`{"reasoning_content":"mple.com end"}`, ""),
			chatDelta(`{"content":"c2"}`, "stop"), `[DONE]`}},
		{name: "openai tool call between", stream: true, events: []string{
			chatDelta(`{"role":"assistant","reasoning_content":"plainmail bob@exa"}`, ""),
			chatDelta(`{"tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]}`, ""),
			chatDelta(`{"reasoning_content":"mple.com end"}`, "tool_calls"), `[DONE]`}},
		{name: "openai no finish", stream: true, events: []string{
			chatDelta(`{"role":"assistant","reasoning_content":"plainmail bob@exa"}`, ""),
			chatDelta(`{"content":"c1"}`, ""),
			chatDelta(`{"reasoning_content":"mple.com end"}`, ""), `[DONE]`}},
		{name: "anthropic stream", stream: true, anthropic: true, wantBlocks: wantBlocks},
		{name: "anthropic answer", anthropic: true, wantBlocks: wantBlocks},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			typ, h := openAIType, answerSSE(tc.events...)
			switch {
			case tc.anthropic && tc.stream:
				typ, h = anthropicType, anthropicStream
			case tc.anthropic:
				typ, h = anthropicType, anthropicAnswer
			}
			got, err := serveRedacted(t, SurfaceChat, typ, surfaceBody(SurfaceChat, tc.stream), h)
			if err != nil {
				t.Fatalf("serve: %v\n%s", err, got)
			}
			reasoning, tbs := chatReasoning(t, got)
			if reasoning != want {
				t.Errorf("reasoning_content %q, want %q:\n%s", reasoning, want, got)
			}
			if diff := cmp.Diff(tc.wantBlocks, tbs); diff != "" {
				t.Errorf("thinking blocks (-want +got):\n%s\n%s", diff, got)
			}
		})
	}
}

// Messages keeps a block per thinking block, each filtered and signed on its own.
func TestMessagesThinkingBlocksAreFilteredApart(t *testing.T) {
	t.Parallel()
	got, err := serveRedacted(t, SurfaceMessages, anthropicType, surfaceBody(SurfaceMessages, false), answerJSON(
		`{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[`+
			`{"type":"thinking","thinking":"plain","signature":"SA"},{"type":"thinking","thinking":"mail bob@example.com","signature":"SB"},`+
			`{"type":"text","text":"c1"}],"stop_reason":"end_turn","usage":{"input_tokens":5,"output_tokens":7}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"thinking":"plain","signature":"SA"`, `"thinking":"mail [REDACTED:email]"}`} {
		if !strings.Contains(got, want) {
			t.Errorf("answer lacks %s:\n%s", want, got)
		}
	}
}
