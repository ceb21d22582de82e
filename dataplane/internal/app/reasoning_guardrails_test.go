package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

// Texts a reasoning upstream writes, each split across deltas.
var (
	reasoningEmail = []string{"Mail jo", "hn.doe@exa", "mple.com then."}
	reasoningCard  = []string{"Charge 4111 1111 ", "1111 1111 now."}
	apiKey         = "sk-proj-" + strings.Repeat("a1B2c3D4", 6)
	reasoningKey   = []string{"Use " + apiKey[:20], apiKey[20:] + " here."}
	toolKeyArgs    = []string{`{"key":"` + apiKey[:20], apiKey[20:] + `","to":"ana@example.org"}`}
	toolCardArgs   = []string{`{"card":"4111 1111 `, `1111 1111"}`}
)

// reasoningUpstream thinks aloud: an OpenAI-style server streams reasoning_content (and
// for "key" and "toolcard" prompts a tool call), Anthropic thinking blocks with a
// signature. The prompt picks what the reasoning holds: "card", "key", "stitch" (an
// email begun in the reasoning and ended in the content), else an email.
func reasoningUpstream() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var req struct {
			Stream bool `json:"stream"`
		}
		_ = json.Unmarshal(raw, &req)
		body := string(raw)
		parts, content := reasoningEmail, "Done."
		var args []string
		switch {
		case strings.Contains(body, "stitch"):
			parts, content = []string{"Write to john.doe@exa"}, "mple.com now."
		case strings.Contains(body, "toolcard"):
			parts, args = []string{"Paying."}, toolCardArgs
		case strings.Contains(body, "card"):
			parts = reasoningCard
		case strings.Contains(body, "key"):
			parts, args = reasoningKey, toolKeyArgs
		}
		if strings.HasSuffix(r.URL.Path, "/messages") {
			writeAnthropicThinking(w, req.Stream, parts)
			return
		}
		writeOpenAIReasoning(w, req.Stream, parts, content, args)
	})
}

func writeOpenAIReasoning(w http.ResponseWriter, stream bool, parts []string, content string, args []string) {
	if !stream {
		msg := map[string]any{"role": "assistant", "content": content, "reasoning_content": strings.Join(parts, "")}
		if args != nil {
			msg["tool_calls"] = []any{map[string]any{"id": "call_1", "type": "function",
				"function": map[string]any{"name": "pay", "arguments": strings.Join(args, "")}}}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "c1", "object": "chat.completion", "created": 1, "model": "up-echo",
			"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": "stop"}},
			"usage":   map[string]any{"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	chunk := func(delta map[string]any, finish any) {
		b, _ := json.Marshal(map[string]any{"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "up-echo",
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}})
		fmt.Fprintf(w, "data: %s\n\n", b)
		w.(http.Flusher).Flush()
	}
	for _, p := range parts {
		chunk(map[string]any{"reasoning_content": p}, nil)
	}
	chunk(map[string]any{"content": content}, nil)
	for i, a := range args {
		tc := map[string]any{"index": 0, "function": map[string]any{"arguments": a}}
		if i == 0 {
			tc["id"], tc["type"], tc["function"].(map[string]any)["name"] = "call_1", "function", "pay"
		}
		chunk(map[string]any{"tool_calls": []any{tc}}, nil)
	}
	chunk(map[string]any{}, "stop")
	fmt.Fprint(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up-echo\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12}}\n\ndata: [DONE]\n\n")
}

func writeAnthropicThinking(w http.ResponseWriter, stream bool, parts []string) {
	const signature = "sig-upstream"
	if !stream {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet",
			"content": []any{
				map[string]any{"type": "thinking", "thinking": strings.Join(parts, ""), "signature": signature},
				map[string]any{"type": "thinking", "thinking": "Nothing to hide.", "signature": "sig-clean"},
				map[string]any{"type": "text", "text": "Done."},
			},
			"stop_reason": "end_turn", "usage": map[string]any{"input_tokens": 5, "output_tokens": 7}})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	event := func(v map[string]any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", v["type"], b)
		w.(http.Flusher).Flush()
	}
	event(map[string]any{"type": "message_start", "message": map[string]any{"id": "msg_1", "type": "message", "role": "assistant",
		"model": "claude-sonnet", "content": []any{}, "usage": map[string]any{"input_tokens": 5, "output_tokens": 1}}})
	event(map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "thinking", "thinking": ""}})
	for _, p := range parts {
		event(map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "thinking_delta", "thinking": p}})
	}
	event(map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "signature_delta", "signature": signature}})
	event(map[string]any{"type": "content_block_stop", "index": 0})
	event(map[string]any{"type": "content_block_start", "index": 1, "content_block": map[string]any{"type": "text", "text": ""}})
	event(map[string]any{"type": "content_block_delta", "index": 1, "delta": map[string]any{"type": "text_delta", "text": "Done."}})
	event(map[string]any{"type": "content_block_stop", "index": 1})
	event(map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": "end_turn"}, "usage": map[string]any{"output_tokens": 7}})
	event(map[string]any{"type": "message_stop"})
}

// TestReasoningGuardrailsThroughTheGateway: the team's response rules apply to the
// model's reasoning on every surface (chat reasoning_content, Responses reasoning
// summaries, Messages thinking blocks from OpenAI-style and Anthropic upstreams),
// streamed with matches split across deltas or not, and to tool call arguments
// (block and audit); every trigger is on the usage event.
func TestReasoningGuardrailsThroughTheGateway(t *testing.T) {
	rule := func(id string, d gatehousev1.GuardrailDetector, m gatehousev1.GuardrailMode) *gatehousev1.GuardrailRule {
		return &gatehousev1.GuardrailRule{Id: id, Name: id, Detector: d, Mode: m, Direction: gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_RESPONSE}
	}
	h := startHarness(t, harnessOptions{upstream: reasoningUpstream(), extra: func(s *gatehousev1.Snapshot) {
		for _, tm := range s.Teams {
			if tm.Id == "team-a" {
				tm.Guardrails = []*gatehousev1.GuardrailRule{
					rule("g-email", gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_EMAIL, gatehousev1.GuardrailMode_GUARDRAIL_MODE_REDACT),
					rule("g-card", gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_CARD, gatehousev1.GuardrailMode_GUARDRAIL_MODE_BLOCK),
					rule("g-key", gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_API_KEY, gatehousev1.GuardrailMode_GUARDRAIL_MODE_AUDIT),
				}
			}
		}
	}})
	chat := func(model, prompt string, stream bool) string {
		return fmt.Sprintf(`{"model":%q,"stream":%t,"messages":[{"role":"user","content":%q}]}`, model, stream, prompt)
	}
	messages := func(model, prompt string, stream bool) string {
		return fmt.Sprintf(`{"model":%q,"max_tokens":100,"stream":%t,"messages":[{"role":"user","content":%q}]}`, model, stream, prompt)
	}
	const cardDigits = "4111 1111 1111 1111"
	tests := []struct {
		name, path, body string
		// want must be in the answer, absent must not (also checked across stream events
		// by reassembling the texts the caller got).
		want, absent []string
		// events are the rule ids and matches on the usage event; errorClass its error.
		events     map[string]int32
		errorClass string
		// where, when set, is the texts each rule matched in, comma-joined.
		where map[string]string
	}{
		{name: "chat stream redacts reasoning", path: "/v1/chat/completions", body: chat("echo", "hi", true),
			want: []string{`"reasoning_content":"Mail `, "[REDACTED:email]", `"content":"Done."`}, absent: []string{"john.doe", "hn.doe", "doe@"},
			events: map[string]int32{"g-email": 1}, where: map[string]string{"g-email": "reasoning"}},
		{name: "chat answer redacts reasoning_content", path: "/v1/chat/completions", body: chat("echo", "hi", false),
			want: []string{`"reasoning_content":"Mail [REDACTED:email] then."`}, absent: []string{"john.doe"}, events: map[string]int32{"g-email": 1}},
		{name: "responses stream redacts the reasoning summary", path: "/v1/responses", body: `{"model":"echo","stream":true,"input":"hi"}`,
			want: []string{"response.reasoning_summary_text.delta", `"text":"Mail [REDACTED:email] then."`}, absent: []string{"john.doe", "hn.doe"},
			events: map[string]int32{"g-email": 1}},
		{name: "responses answer redacts the reasoning summary", path: "/v1/responses", body: `{"model":"echo","input":"hi"}`,
			want: []string{`"text":"Mail [REDACTED:email] then."`}, absent: []string{"john.doe"}, events: map[string]int32{"g-email": 1}},
		{name: "messages stream from an OpenAI-style upstream redacts thinking", path: "/v1/messages", body: messages("echo", "hi", true),
			want: []string{"thinking_delta", "[REDACTED:email]"}, absent: []string{"john.doe", "hn.doe"}, events: map[string]int32{"g-email": 1}},
		{name: "messages stream from Anthropic redacts thinking and drops its signature", path: "/v1/messages", body: messages("claude", "hi", true),
			want: []string{"thinking_delta", "[REDACTED:email]", `"text":"Done."`}, absent: []string{"john.doe", "hn.doe", "signature_delta", "sig-upstream"},
			events: map[string]int32{"g-email": 1}, where: map[string]string{"g-email": "reasoning"}},
		{name: "messages answer from Anthropic keeps clean signatures only", path: "/v1/messages", body: messages("claude", "hi", false),
			want: []string{`"thinking":"Mail [REDACTED:email] then."`, `"signature":"sig-clean"`}, absent: []string{"john.doe", "sig-upstream"},
			events: map[string]int32{"g-email": 1}},
		{name: "chat stream from Anthropic redacts the thinking block", path: "/v1/chat/completions", body: chat("claude", "hi", true),
			want: []string{`"thinking_blocks":[{"type":"thinking","thinking":"Mail [REDACTED:email] then."}]`}, absent: []string{"john.doe", "hn.doe", "sig-upstream"},
			events: map[string]int32{"g-email": 1}},
		{name: "reasoning and content are not stitched together", path: "/v1/chat/completions", body: chat("echo", "stitch", true),
			want: []string{"Write to john.doe@exa\nmple.com now.\n"}, absent: []string{"REDACTED"}, events: map[string]int32{}},
		{name: "chat stream blocks a card in reasoning", path: "/v1/chat/completions", body: chat("echo", "card", true),
			want: []string{`"code":"content_blocked"`}, absent: []string{"4111 1111 1111", `"content":"Done."`},
			events: map[string]int32{"g-card": 1}, errorClass: "content_blocked"},
		{name: "responses stream blocks a card in reasoning", path: "/v1/responses", body: `{"model":"echo","stream":true,"input":"card"}`,
			want: []string{"response.failed", "content_blocked"}, absent: []string{"4111 1111 1111"},
			events: map[string]int32{"g-card": 1}, errorClass: "content_blocked"},
		{name: "messages stream from Anthropic blocks a card in thinking", path: "/v1/messages", body: messages("claude", "card", true),
			want: []string{"event: error", "invalid_request_error"}, absent: []string{"4111 1111 1111", "sig-upstream"},
			events: map[string]int32{"g-card": 1}, errorClass: "content_blocked"},
		{name: "chat answer with a card in reasoning is refused", path: "/v1/chat/completions", body: chat("echo", "card", false),
			want: []string{"content_blocked"}, absent: []string{cardDigits}, events: map[string]int32{"g-card": 1}, errorClass: "content_blocked"},
		{name: "audit passes reasoning and tool arguments and counts both", path: "/v1/chat/completions", body: chat("echo", "key", true),
			want:   []string{"Use " + apiKey + " here.", `{"key":"` + apiKey + `","to":"ana@example.org"}`},
			events: map[string]int32{"g-key": 2}, where: map[string]string{"g-key": "arguments,reasoning"}},
		{name: "tool arguments stay valid JSON under redact rules", path: "/v1/chat/completions", body: chat("echo", "key", false),
			want: []string{`\"to\":\"ana@example.org\"}`}, events: map[string]int32{"g-key": 2}, where: map[string]string{"g-key": "arguments,reasoning"}},
		{name: "chat stream blocks a card in tool arguments", path: "/v1/chat/completions", body: chat("echo", "toolcard", true),
			want: []string{`"code":"content_blocked"`}, absent: []string{"4111 1111 1111"},
			events: map[string]int32{"g-card": 1}, where: map[string]string{"g-card": "arguments"}, errorClass: "content_blocked"},
		{name: "messages stream blocks a card in tool arguments", path: "/v1/messages", body: messages("echo", "toolcard", true),
			want: []string{"event: error"}, absent: []string{"4111 1111 1111"}, events: map[string]int32{"g-card": 1}, errorClass: "content_blocked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := h.do(t, "POST", tt.path, bearer(h.fx.key), tt.body)
			got := string(b) + "\n" + streamedTexts(string(b))
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("%d: %q not in\n%s", resp.StatusCode, w, got)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(got, a) {
					t.Errorf("%q leaked:\n%s", a, got)
				}
			}
			ev := h.waitUsage(t, resp.Header.Get("x-request-id"))
			events, where := map[string]int32{}, map[string]string{}
			for _, g := range ev.GuardrailEvents {
				if _, dup := events[g.RuleId]; dup {
					t.Errorf("rule %s recorded twice: %v", g.RuleId, ev.GuardrailEvents)
				}
				events[g.RuleId], where[g.RuleId] = g.Matches, strings.Join(g.Texts, ",")
			}
			if tt.where != nil && fmt.Sprint(where) != fmt.Sprint(tt.where) {
				t.Errorf("usage event: guardrails matched in %v, want %v", where, tt.where)
			}
			if fmt.Sprint(events) != fmt.Sprint(tt.events) || ev.ErrorClass != tt.errorClass {
				t.Errorf("usage event: guardrails %v, error %q; want %v, %q", events, ev.ErrorClass, tt.events, tt.errorClass)
			}
		})
	}
}

// streamedTexts joins the texts of a stream's deltas per kind (chat reasoning, content
// and tool arguments, Messages thinking and tool input, Responses deltas), one a line, so a match split across events shows
// up whole when it leaked.
func streamedTexts(body string) string {
	var kinds [5]strings.Builder
	for line := range strings.Lines(body) {
		data, ok := strings.CutPrefix(strings.TrimSpace(line), "data: ")
		if !ok {
			continue
		}
		var ev struct {
			Type    string `json:"type"`
			Delta   json.RawMessage
			Choices []struct {
				Delta struct {
					ReasoningContent string `json:"reasoning_content"`
					Content          string `json:"content"`
					ToolCalls        []struct {
						Function struct {
							Arguments string `json:"arguments"`
						} `json:"function"`
					} `json:"tool_calls"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if json.Unmarshal([]byte(data), &ev) != nil {
			continue
		}
		for _, c := range ev.Choices {
			kinds[0].WriteString(c.Delta.ReasoningContent)
			kinds[1].WriteString(c.Delta.Content)
			for _, tc := range c.Delta.ToolCalls {
				kinds[2].WriteString(tc.Function.Arguments)
			}
		}
		var d struct {
			Thinking    string `json:"thinking"`
			PartialJSON string `json:"partial_json"`
		}
		var s string
		switch {
		case json.Unmarshal(ev.Delta, &d) == nil:
			kinds[3].WriteString(d.Thinking + d.PartialJSON)
		case json.Unmarshal(ev.Delta, &s) == nil: // Responses text and argument deltas
			kinds[4].WriteString(s)
		}
	}
	out := make([]string, len(kinds))
	for i := range kinds {
		out[i] = kinds[i].String()
	}
	return strings.Join(out, "\n")
}
