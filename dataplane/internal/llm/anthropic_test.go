package llm

import (
	"encoding/json"
	"errors"
	"testing"
)

// TestAnthropicThinking maps the chat reasoning settings to Anthropic's thinking.
func TestAnthropicThinking(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name      string
		body      string
		maxTokens int64  // the request's after translation
		thinking  string // "" for none
		refused   string // the refused parameter
	}{
		{"no reasoning", `{"messages":[{"role":"user","content":"x"}]}`, defaultAnthropicMaxTokens, "", ""},
		{"none", `{"reasoning_effort":"none","messages":[{"role":"user","content":"x"}]}`, defaultAnthropicMaxTokens, "", ""},
		{"minimal", `{"reasoning_effort":"minimal","messages":[{"role":"user","content":"x"}]}`, defaultAnthropicMaxTokens, "", ""},
		{"low without max_tokens", `{"reasoning_effort":"low","messages":[{"role":"user","content":"x"}]}`, 1024 + defaultAnthropicMaxTokens, `{"budget_tokens":1024,"type":"enabled"}`, ""},
		{"high within a large max_tokens", `{"reasoning_effort":"high","max_tokens":40000,"messages":[{"role":"user","content":"x"}]}`, 40000, `{"budget_tokens":16384,"type":"enabled"}`, ""},
		{"medium shrinks to half of max_tokens", `{"reasoning_effort":"medium","max_completion_tokens":3000,"messages":[{"role":"user","content":"x"}]}`, 3000, `{"budget_tokens":1500,"type":"enabled"}`, ""},
		{"the minimum budget when half is less", `{"reasoning_effort":"high","max_tokens":1500,"messages":[{"role":"user","content":"x"}]}`, 1500, `{"budget_tokens":1024,"type":"enabled"}`, ""},
		{"max_tokens too small to think", `{"reasoning_effort":"low","max_tokens":1024,"messages":[{"role":"user","content":"x"}]}`, 0, "", "max_tokens"},
		{"unknown effort", `{"reasoning_effort":"extreme","messages":[{"role":"user","content":"x"}]}`, 0, "", "reasoning_effort"},
		{"anthropic thinking object as it is", `{"thinking":{"type":"enabled","budget_tokens":2048},"max_tokens":5000,"messages":[{"role":"user","content":"x"}]}`, 5000, `{"type":"enabled","budget_tokens":2048}`, ""},
		{"thinking that is not an object", `{"thinking":true,"messages":[{"role":"user","content":"x"}]}`, 0, "", "thinking"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b chatBody
			if err := json.Unmarshal([]byte(c.body), &b); err != nil {
				t.Fatal(err)
			}
			out, err := chatToAnthropic(&b, "claude")
			if c.refused != "" {
				var ie *InvalidRequestError
				if !errors.As(err, &ie) || ie.Param != c.refused {
					t.Fatalf("err %v, want a refusal of %s", err, c.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.MaxTokens != c.maxTokens || string(out.Thinking) != c.thinking {
				t.Fatalf("max_tokens %d thinking %s, want %d %s", out.MaxTokens, out.Thinking, c.maxTokens, c.thinking)
			}
		})
	}
}
