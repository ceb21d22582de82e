package guardrail

import (
	"strings"
	"testing"
)

// encoding/json, which the translators decode requests with, matches keys
// case-insensitively, unescapes them, and decodes every repeated one: each such member
// is checked.
func TestCheckRequestJSONKeysAsDecoded(t *testing.T) {
	t.Parallel()
	block := mustCompile(t, newRule("email", detEmail, modeBlock, dirRequest))
	redact := mustCompile(t, newRule("email", detEmail, modeRedact, dirRequest))
	for _, tc := range []struct{ name, body string }{
		{"responses content", `{"input":[{"role":"user","Content":"mail bob@example.com"}]}`},
		{"responses part text", `{"input":[{"role":"user","content":[{"type":"input_text","TEXT":"mail bob@example.com"}]}]}`},
		{"chat content", `{"messages":[{"role":"user","Content":"mail bob@example.com"}]}`},
		{"chat part text", `{"messages":[{"role":"user","content":[{"type":"text","Text":"mail bob@example.com"}]}]}`},
		{"escaped key", `{"messages":[{"role":"user","\u0063ontent":"mail bob@example.com"}]}`},
		{"unicode fold", `{"ınstructions":"x","In\u017ftructions":"mail bob@example.com"}`},
		{"document source", `{"messages":[{"role":"user","content":[{"type":"document","Source":{"type":"text","media_type":"text/plain","data":"mail bob@example.com"}}]}]}`},
		{"document type in a repeated source", `{"messages":[{"role":"user","content":[{"Type":"document","source":{"data":"mail bob@example.com"},"source":{"type":"text"}}]}]}`},
		{"instructions", `{"model":"m","Instructions":"mail bob@example.com","input":"hi"}`},
		{"repeated top-level key", `{"messages":[{"role":"user","content":"mail bob@example.com"}],"messages":[{"role":"user","content":"hi"}]}`},
		{"repeated member", `{"messages":[{"role":"user","content":"mail bob@example.com","content":"hi"}]}`},
		{"embeddings input", `{"model":"e","INPUT":["mail bob@example.com"]}`},
		{"file", `{"messages":[{"role":"user","content":[{"type":"file","File":{"filename":"a.txt","File_Data":"data:text/plain;base64,bWFpbCBib2JAZXhhbXBsZS5jb20="}}]}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, err := block.CheckRequestJSON([]byte(tc.body))
			if err != nil || o.Blocked == nil {
				t.Errorf("block: blocked=%v err=%v, want blocked", o.Blocked != nil, err)
			}
			o, err = redact.CheckRequestJSON([]byte(tc.body))
			if err != nil || !o.Changed || strings.Contains(string(o.Body), "bob@example.com") || strings.Contains(string(o.Body), "bWFpbCBib2JAZXhhbXBsZS5jb20") {
				t.Errorf("redact: changed=%v err=%v body %s", o.Changed, err, o.Body)
			}
		})
	}
}

// A Responses function_call_output that is not a string goes upstream as the texts of
// its parts or as JSON text: every string in it is checked.
func TestCheckRequestJSONToolOutputNotAString(t *testing.T) {
	t.Parallel()
	block := mustCompile(t, newRule("email", detEmail, modeBlock, dirRequest))
	redact := mustCompile(t, newRule("email", detEmail, modeRedact, dirRequest))
	for _, out := range []string{`[{"type":"input_text","text":"bob@example.com"}]`, `{"mail":"bob@example.com"}`, `{"a":[{"b":"bob@example.com"}]}`} {
		body := `{"input":[{"type":"function_call_output","call_id":"c1","output":` + out + `}]}`
		if o, err := block.CheckRequestJSON([]byte(body)); err != nil || o.Blocked == nil {
			t.Errorf("%s: blocked=%v err=%v, want blocked", out, o.Blocked != nil, err)
		}
		if o, err := redact.CheckRequestJSON([]byte(body)); err != nil || strings.Contains(string(o.Body), "bob@example.com") {
			t.Errorf("%s: err=%v, not redacted: %s", out, err, o.Body)
		}
	}
}
