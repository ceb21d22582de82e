package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

// choicesUpstream is an OpenAI-style server that honours n: choice i says
// "Choice <i>", and every choice but the first writes an email, split across deltas
// when streamed.
func choicesUpstream() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Stream bool `json:"stream"`
			N      int  `json:"n"`
		}
		raw, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(raw, &req)
		n := max(req.N, 1)
		parts := func(i int) []string {
			if i == 0 {
				return []string{"Choice 0."}
			}
			return []string{fmt.Sprintf("Choice %d: jo", i), "hn.doe@exa", "mple.com"}
		}
		if !req.Stream {
			var choices []any
			for i := range n {
				choices = append(choices, map[string]any{"index": i, "finish_reason": "stop",
					"message": map[string]any{"role": "assistant", "content": strings.Join(parts(i), "")}})
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"id": "c1", "object": "chat.completion", "created": 1, "model": "up-echo",
				"choices": choices, "usage": map[string]any{"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}})
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		chunk := func(i int, delta map[string]any, finish any) {
			b, _ := json.Marshal(map[string]any{"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "up-echo",
				"choices": []any{map[string]any{"index": i, "delta": delta, "finish_reason": finish}}})
			fmt.Fprintf(w, "data: %s\n\n", b)
		}
		for p := range 3 {
			for i := range n {
				if ps := parts(i); p < len(ps) {
					chunk(i, map[string]any{"content": ps[p]}, nil)
				}
			}
		}
		for i := range n {
			chunk(i, map[string]any{}, "stop")
		}
		fmt.Fprint(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up-echo\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12}}\n\ndata: [DONE]\n\n")
	})
}

// TestEveryChoiceThroughResponseGuardrails: a chat request with n > 1 gets every
// choice through the team's response rules, streamed or not; each choice counts on
// the usage event. A model whose provider makes one choice (Anthropic) refuses n > 1
// in the caller's format.
func TestEveryChoiceThroughResponseGuardrails(t *testing.T) {
	h := startHarness(t, harnessOptions{upstream: choicesUpstream(), extra: func(s *gatehousev1.Snapshot) {
		for _, tm := range s.Teams {
			if tm.Id == "team-a" {
				tm.Guardrails = []*gatehousev1.GuardrailRule{{Id: "g-email", Name: "g-email",
					Detector:  gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_EMAIL,
					Mode:      gatehousev1.GuardrailMode_GUARDRAIL_MODE_REDACT,
					Direction: gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_RESPONSE}}
			}
		}
	}})
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprint("stream=", stream), func(t *testing.T) {
			body := fmt.Sprintf(`{"model":"echo","n":3,"stream":%t,"messages":[{"role":"user","content":"hi"}]}`, stream)
			resp, b := h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), body)
			got := string(b) + "\n" + streamedChoices(t, string(b))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			for _, leak := range []string{"john.doe", "hn.doe", "doe@"} {
				if strings.Contains(got, leak) {
					t.Errorf("%q leaked:\n%s", leak, got)
				}
			}
			for _, want := range []string{"Choice 0.", "Choice 1: [REDACTED:email]", "Choice 2: [REDACTED:email]"} {
				if !strings.Contains(got, want) {
					t.Errorf("%q not in\n%s", want, got)
				}
			}
			ev := h.waitUsage(t, resp.Header.Get("x-request-id"))
			if len(ev.GuardrailEvents) != 1 || ev.GuardrailEvents[0].RuleId != "g-email" || ev.GuardrailEvents[0].Matches != 2 ||
				!slices.Equal(ev.GuardrailEvents[0].Texts, []string{"content"}) {
				t.Errorf("guardrail events %v, want g-email matching twice, in content", ev.GuardrailEvents)
			}
		})
	}
	t.Run("anthropic refuses n above 1", func(t *testing.T) {
		resp, b := h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"claude","n":2,"messages":[{"role":"user","content":"hi"}]}`)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `"param":"n"`) {
			t.Errorf("status %d: %s", resp.StatusCode, b)
		}
	})
}

// streamedChoices joins the content deltas of a chat stream by choice, one choice a
// line, so a match split across events shows up whole when it leaked.
func streamedChoices(t *testing.T, body string) string {
	t.Helper()
	var texts []string
	for line := range strings.Lines(body) {
		data, ok := strings.CutPrefix(strings.TrimSpace(line), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Index int `json:"index"`
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("chunk %s: %v", data, err)
		}
		for _, ch := range c.Choices {
			for len(texts) <= ch.Index {
				texts = append(texts, "")
			}
			texts[ch.Index] += ch.Delta.Content
		}
	}
	return strings.Join(texts, "\n")
}
