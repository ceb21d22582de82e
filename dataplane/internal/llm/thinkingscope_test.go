package llm

import (
	"fmt"
	"strings"
	"testing"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

// A caller's redacted_thinking data is Anthropic's encryption: it goes to Anthropic
// upstreams only, whatever the spelling of the key that carries it; thinking text
// goes on.
func TestRedactedThinkingGoesToAnthropicOnly(t *testing.T) {
	t.Parallel()
	const chat = `{"model":"m","messages":[{"role":"user","content":"hi"},` +
		`{"role":"assistant","content":"a","tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{}"}}],%s:[` +
		`{"type":"thinking","thinking":"plan","signature":"SIG"},{"type":"redacted_thinking","data":"ENCRYPTED"}]},` +
		`{"role":"tool","tool_call_id":"t1","content":"r"}]}`
	for _, key := range []string{`"thinking_blocks"`, `"Thinking_Blocks"`, `"thinking\u005fblocks"`, "\"thin\u212aing_blocks\""} {
		body := fmt.Sprintf(chat, key)
		for _, tc := range []struct {
			name string
			typ  gatehousev1.ProviderType
			want bool
		}{
			{"openai", openAIType, false},
			{"azure", azureType, false},
			{"gemini", geminiType, false},
			{"anthropic", anthropicType, true},
		} {
			t.Run(tc.name+" "+key, func(t *testing.T) {
				t.Parallel()
				up := upstreamBody(t, SurfaceChat, tc.typ, body)
				if up == "" {
					t.Fatal("the upstream got nothing")
				}
				if got := strings.Contains(up, "ENCRYPTED"); got != tc.want {
					t.Errorf("upstream got the redacted thinking: %v, want %v:\n%s", got, tc.want, up)
				}
				if tc.typ == openAIType && !strings.Contains(up, `"thinking_blocks":[{"type":"thinking","thinking":"plan","signature":"SIG"}]`) {
					t.Errorf("upstream lost the thinking text:\n%s", up)
				}
			})
		}
	}
}

// TestMayHoldThinking: only a thinking_blocks member (any case, or a key the scan cannot
// read plainly) sends the messages through the full decode; escaped text values, as
// clients that escape every non-ASCII character send them, do not.
func TestMayHoldThinking(t *testing.T) {
	for raw, want := range map[string]bool{
		`[{"role":"user","content":"hello"}]`:                                 false,
		`[{"role":"user","content":"caf\u00e9 \u65e5\u672c"}]`:                false,
		`[{"role":"user","content":"about thinking_blocks"}]`:                 false,
		`[{"role":"assistant","content":"x","thinking_blocks":[]}]`:           true,
		`[{"role":"assistant","content":"x","Thinking_Blocks":[]}]`:           true,
		`[{"role":"assistant","content":"\u00e9","thinking_bl\u006fcks":[]}]`: true,
		`[{"role":"user","content":"\u00e9"},"odd"]`:                          true,
	} {
		if got := mayHoldThinking([]byte(raw)); got != want {
			t.Errorf("%s: %v, want %v", raw, got, want)
		}
	}
}
