package llm

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// sseEvents returns the data of each event of a stream, decoded.
func sseEvents(t *testing.T, body string) []map[string]any {
	t.Helper()
	var evs []map[string]any
	for _, line := range strings.Split(body, "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// A model's refusal reaches Messages and Responses callers, filtered on its own: a
// text block and the refusal stop reason (Messages), a refusal part of an output
// message (Responses).
func TestRefusalReachesMessagesAndResponses(t *testing.T) {
	t.Parallel()
	const want = "I won't mail [REDACTED:email]"
	answer := answerJSON(`{"id":"c1","object":"chat.completion","model":"up","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I won't mail bob@example.com"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	stream := answerSSE(
		chatDelta(`{"role":"assistant","refusal":"I won't mail bob@exa"}`, ""),
		chatDelta(`{"refusal":"mple.com"}`, ""),
		chatDelta(`{}`, "stop"), `[DONE]`)

	t.Run("messages answer", func(t *testing.T) {
		t.Parallel()
		got, err := serveRedacted(t, SurfaceMessages, openAIType, surfaceBody(SurfaceMessages, false), answer)
		var m struct {
			Content    []map[string]any `json:"content"`
			StopReason string           `json:"stop_reason"`
		}
		if err == nil {
			err = json.Unmarshal([]byte(got), &m)
		}
		if err != nil {
			t.Fatalf("%v: %s", err, got)
		}
		if diff := cmp.Diff([]map[string]any{{"type": "text", "text": want}}, m.Content); diff != "" || m.StopReason != "refusal" {
			t.Errorf("content (-want +got):\n%s stop_reason %q", diff, m.StopReason)
		}
	})
	t.Run("messages stream", func(t *testing.T) {
		t.Parallel()
		got, err := serveRedacted(t, SurfaceMessages, openAIType, surfaceBody(SurfaceMessages, true), stream)
		if err != nil {
			t.Fatal(err)
		}
		var text strings.Builder
		stop := ""
		for _, ev := range sseEvents(t, got) {
			switch ev["type"] {
			case "content_block_start":
				if b := ev["content_block"].(map[string]any); b["type"] != "text" {
					t.Errorf("block %v", b)
				}
			case "content_block_delta":
				text.WriteString(ev["delta"].(map[string]any)["text"].(string))
			case "message_delta":
				stop, _ = ev["delta"].(map[string]any)["stop_reason"].(string)
			}
		}
		if text.String() != want || stop != "refusal" {
			t.Errorf("text %q stop_reason %q, want %q refusal:\n%s", text.String(), stop, want, got)
		}
	})
	wantOutput := []any{map[string]any{"type": "refusal", "refusal": want}}
	t.Run("responses answer", func(t *testing.T) {
		t.Parallel()
		got, err := serveRedacted(t, SurfaceResponses, openAIType, surfaceBody(SurfaceResponses, false), answer)
		var r struct {
			Output []map[string]any `json:"output"`
		}
		if err == nil {
			err = json.Unmarshal([]byte(got), &r)
		}
		if err != nil {
			t.Fatalf("%v: %s", err, got)
		}
		if len(r.Output) != 1 || r.Output[0]["type"] != "message" {
			t.Fatalf("output %v", r.Output)
		}
		if diff := cmp.Diff(wantOutput, r.Output[0]["content"]); diff != "" {
			t.Errorf("content (-want +got):\n%s", diff)
		}
	})
	t.Run("responses stream", func(t *testing.T) {
		t.Parallel()
		got, err := serveRedacted(t, SurfaceResponses, openAIType, surfaceBody(SurfaceResponses, true), stream)
		if err != nil {
			t.Fatal(err)
		}
		var deltas strings.Builder
		var done string
		var output []any
		for _, ev := range sseEvents(t, got) {
			switch ev["type"] {
			case "response.refusal.delta":
				deltas.WriteString(ev["delta"].(string))
			case "response.refusal.done":
				done = ev["refusal"].(string)
			case "response.completed":
				output = ev["response"].(map[string]any)["output"].([]any)
			}
		}
		if deltas.String() != want || done != want {
			t.Errorf("deltas %q done %q, want %q:\n%s", deltas.String(), done, want, got)
		}
		if len(output) != 1 {
			t.Fatalf("output %v", output)
		}
		if diff := cmp.Diff(wantOutput, output[0].(map[string]any)["content"]); diff != "" {
			t.Errorf("completed content (-want +got):\n%s", diff)
		}
	})
}
