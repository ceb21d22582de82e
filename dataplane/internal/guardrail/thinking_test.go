package guardrail

import (
	"encoding/base64"
	"testing"
)

// Thinking a caller sends back goes upstream: request rules check its text.
func TestCheckRequestJSONThinking(t *testing.T) {
	t.Parallel()
	state := "gatehouse.thinking.v1." + base64.RawURLEncoding.EncodeToString([]byte(`{"type":"thinking","thinking":"the CEO is bob@example.com","signature":"S"}`))
	block := mustCompile(t, newRule("email", detEmail, modeBlock, dirRequest))
	redact := mustCompile(t, newRule("email", detEmail, modeRedact, dirRequest))
	for _, tc := range []struct{ name, body, want string }{
		{"responses reasoning state",
			`{"input":[{"role":"user","content":"hi"},{"type":"reasoning","summary":[],"encrypted_content":"` + state + `"}]}`,
			`{"input":[{"content":"hi","role":"user"},{"encrypted_content":"","summary":[],"type":"reasoning"}]}`},
		{"chat thinking_blocks",
			`{"messages":[{"role":"assistant","content":"ok","thinking_blocks":[{"type":"thinking","thinking":"the CEO is bob@example.com","signature":"S"},{"type":"redacted_thinking","data":"opaque"}]}]}`,
			`{"messages":[{"content":"ok","role":"assistant","thinking_blocks":[{"signature":"","thinking":"the CEO is [REDACTED:email]","type":"thinking"},{"data":"opaque","type":"redacted_thinking"}]}]}`},
		{"messages thinking block",
			`{"messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"the CEO is bob@example.com","signature":"S"},{"type":"text","text":"ok"}]}]}`,
			`{"messages":[{"content":[{"signature":"","thinking":"the CEO is [REDACTED:email]","type":"thinking"},{"text":"ok","type":"text"}],"role":"assistant"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if o, err := block.CheckRequestJSON([]byte(tc.body)); err != nil || o.Blocked == nil {
				t.Errorf("block: blocked=%v err=%v, want blocked", o.Blocked != nil, err)
			}
			o, err := redact.CheckRequestJSON([]byte(tc.body))
			if err != nil || string(o.Body) != tc.want {
				t.Errorf("redact: err=%v\n got %s\nwant %s", err, o.Body, tc.want)
			}
		})
	}
	// Unchanged thinking keeps its signature and state.
	clean := `{"messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"fine","signature":"S"}]}]}`
	if o, err := redact.CheckRequestJSON([]byte(clean)); err != nil || o.Changed {
		t.Errorf("clean thinking changed: %s", o.Body)
	}
}
