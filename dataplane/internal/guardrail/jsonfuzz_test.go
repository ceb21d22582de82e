package guardrail

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"testing"
)

// FuzzCheckJSON: any body, checked as a request or a response, never panics; a body
// that is not a JSON object is refused; a redacted body is valid JSON that no longer
// holds what the rule matched in any text the check reads again; a body nothing
// matched in is forwarded as it came.
func FuzzCheckJSON(f *testing.F) {
	txt := base64.StdEncoding.EncodeToString([]byte("mail bob@example.com"))
	for _, seed := range []string{
		`{"model":"m","messages":[{"role":"user","content":"mail bob@example.com"}]}`,
		`{"model":"m","messages":[{"role":"user","Content":[{"type":"text","TEXT":"bob@example.com"}]}]}`,
		`{"model":"m","messages":[{"role":"user","\u0063ontent":"bob@example.com","content":"x"}]}`,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"data:text/plain;base64,` + txt + `","filename":"a.txt"}}]}]}`,
		`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"bob@example.com"}}]}]}`,
		`{"model":"m","input":[{"type":"function_call_output","call_id":"c","output":[{"type":"input_text","text":"bob@example.com"}]}]}`,
		`{"model":"m","input":[{"type":"reasoning","encrypted_content":"gatehouse.thinking.v1.e30","summary":[]}]}`,
		`{"model":"m","messages":[{"role":"assistant","content":"x","thinking_blocks":[{"type":"thinking","thinking":"bob@example.com","signature":"s"}]}]}`,
		`{"choices":[{"index":0,"message":{"role":"assistant","content":"bob@example.com"}}]}`,
		`{"content":[{"type":"text","text":"bob@example.com"}],"output":[{"content":[{"type":"output_text","text":"a"}]}]}`,
		`{"input":"bob@example.com","prompt":["a","bob@example.com"],"system":[{"type":"text","text":"bob@example.com"}]}`,
		`{"messages":[{"role":"assistant","tool_calls":[{"id":"1","function":{"name":"f","arguments":"{\"to\":\"bob\\u0040example.com\"}"}}]}],"tools":[{"type":"function","function":{"name":"f","description":"bob@example.com","parameters":{"properties":{"a":{"description":"4111 1111 1111 1111"}}}}}]}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"4111 1111"},{"type":"text","text":" 1111 1111"}]}]}`,
		`[]`, `null`, `{"messages":`, `{"messages":[{"content":1e999}]}`,
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	p := mustCompile(f,
		newRule("email", detEmail, modeRedact, dirBoth),
		newRule("card", detCard, modeRedact, dirBoth),
	)
	f.Fuzz(func(t *testing.T, body []byte, response bool) {
		check := p.CheckRequestJSON
		if response {
			check = p.CheckResponseJSON
		}
		out, err := check(body)
		var probe map[string]json.RawMessage
		isObject := json.Unmarshal(body, &probe) == nil && probe != nil
		if err != nil {
			if isObject {
				t.Fatalf("a JSON object was refused: %v\n%s", err, body)
			}
			return
		}
		if !out.Changed {
			if !bytes.Equal(out.Body, body) {
				t.Fatalf("unchanged, but the body differs:\n%s\n%s", body, out.Body)
			}
			return
		}
		if !json.Valid(out.Body) {
			t.Fatalf("redacted body is not valid JSON:\n%s\n→ %s", body, out.Body)
		}
		again, err := check(out.Body)
		if err != nil {
			t.Fatalf("the redacted body is refused: %v\n%s", err, out.Body)
		}
		if again.Changed {
			t.Fatalf("redacting twice changes the body again:\n%s\n→ %s\n→ %s", body, out.Body, again.Body)
		}
	})
}
