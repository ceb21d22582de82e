package guardrail

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestNumbersInToolCalls: a card number given as a JSON number in a tool call's
// arguments or input is found too, and replaced by the placeholder string.
func TestNumbersInToolCalls(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, newRule("card", detCard, modeRedact, dirRequest))
	in := `{"messages":[{"role":"assistant","tool_calls":[{"id":"1","function":{"name":"f","arguments":"{\"card\":4111111111111111,\"n\":2}"}}]},` +
		`{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{"card":4111111111111111,"n":2}}]}]}`
	want := `{"messages":[{"role":"assistant","tool_calls":[{"function":{"arguments":"{\"card\":\"[REDACTED:card]\",\"n\":2}","name":"f"},"id":"1"}]},` +
		`{"content":[{"id":"t","input":{"card":"[REDACTED:card]","n":2},"name":"f","type":"tool_use"}],"role":"assistant"}]}`
	o, err := p.CheckRequestJSON([]byte(in))
	if err != nil || string(o.Body) != want {
		t.Fatalf("got %s (%v)\nwant %s", o.Body, err, want)
	}
	// Shorter numbers are not read: a timestamp is no phone number to call.
	p = mustCompile(t, newRule("phone", detPhone, modeBlock, dirRequest))
	in = `{"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{"since":1732233600,"id":41551234567}}]}]}`
	if o, err := p.CheckRequestJSON([]byte(in)); err != nil || o.Blocked != nil || len(o.Events) != 0 {
		t.Fatalf("a timestamp taken for a phone number: %+v (%v)", o, err)
	}
}

// TestJoinedPartsStandAlone: the text parts of one content are read as a text of their
// own, so what comes before or after them (the system prompt, a tool's description)
// neither hides a match across them nor makes one.
func TestJoinedPartsStandAlone(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, newRule("card", detCard, modeBlock, dirRequest), newRule("inj", detInjection, modeBlock, dirRequest))
	parts := `[{"type":"text","text":"4111 1111"},{"type":"text","text":" 1111 1111"}]`
	for name, body := range map[string]string{
		"after a system prompt ending in a full stop": `{"system":"You are X.","messages":[{"role":"user","content":` + parts + `}]}`,
		"before a tool's description":                 `{"messages":[{"role":"user","content":` + parts + `}],"tools":[{"name":"w","description":"Get weather"}]}`,
		"after a message ending in digits":            `{"messages":[{"role":"user","content":"order 12"},{"role":"user","content":` + parts + `}]}`,
	} {
		o, err := p.CheckRequestJSON([]byte(body))
		if err != nil || o.Blocked == nil || o.Blocked.RuleID != "card" {
			t.Errorf("%s: card split over two parts not found: %+v (%v)", name, o, err)
		}
	}
}

func TestCheckRequestJSON(t *testing.T) {
	t.Parallel()
	p := mustCompile(t,
		newRule("email", detEmail, modeRedact, dirRequest),
		newRule("phone", detPhone, modeRedact, dirRequest),
	)
	for _, tc := range []struct {
		name, in, want string // want "" means the body is forwarded as is
	}{
		{"chat string content",
			`{"model":"gpt-4o","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"my email is a@b.io"}],"temperature":0.70,"max_tokens":100}`,
			`{"max_tokens":100,"messages":[{"content":"Be brief.","role":"system"},{"content":"my email is [REDACTED:email]","role":"user"}],"model":"gpt-4o","temperature":0.70}`},
		{"chat parts: only text is checked",
			`{"messages":[{"role":"user","content":[{"type":"text","text":"call 415-555-2671"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA a@b.io","detail":"low"}}]}]}`,
			`{"messages":[{"content":[{"text":"call [REDACTED:phone]","type":"text"},{"image_url":{"detail":"low","url":"data:image/png;base64,AAAA a@b.io"},"type":"image_url"}],"role":"user"}]}`},
		{"anthropic system and tool result",
			`{"system":[{"type":"text","text":"admin is root@corp.example"}],"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"owner: jo@corp.example"}]}]}]}`,
			`{"messages":[{"content":[{"content":[{"text":"owner: [REDACTED:email]","type":"text"}],"tool_use_id":"t1","type":"tool_result"}],"role":"user"}],"system":[{"text":"admin is [REDACTED:email]","type":"text"}]}`},
		{"responses api",
			`{"instructions":"cc z@w.io","input":[{"role":"user","content":[{"type":"input_text","text":"a@b.io"}]},{"type":"function_call_output","call_id":"c1","output":"x@y.io"}]}`,
			`{"input":[{"content":[{"text":"[REDACTED:email]","type":"input_text"}],"role":"user"},{"call_id":"c1","output":"[REDACTED:email]","type":"function_call_output"}],"instructions":"cc [REDACTED:email]"}`},
		{"legacy prompt list", `{"prompt":["a@b.io","plain"],"n":2}`, `{"n":2,"prompt":["[REDACTED:email]","plain"]}`},
		{"html is not escaped", `{"input":"<b>a@b.io</b> & co"}`, `{"input":"<b>[REDACTED:email]</b> & co"}`},
		{"unicode survives", `{"input":"日本 a@b.io \u00e9"}`, `{"input":"日本 [REDACTED:email] é"}`},
		{"tool call arguments, unescaped",
			`{"messages":[{"role":"assistant","tool_calls":[{"id":"1","function":{"name":"f","arguments":"{\"to\":\"a\\u0040b.io\",\"n\":1}"}}]}]}`,
			`{"messages":[{"role":"assistant","tool_calls":[{"function":{"arguments":"{\"n\":1,\"to\":\"[REDACTED:email]\"}","name":"f"},"id":"1"}]}]}`},
		{"tool call arguments that are not JSON",
			`{"messages":[{"role":"assistant","tool_calls":[{"id":"1","function":{"name":"f","arguments":"to a@b.io"}}]}]}`,
			`{"messages":[{"role":"assistant","tool_calls":[{"function":{"arguments":"to [REDACTED:email]","name":"f"},"id":"1"}]}]}`},
		{"messages tool_use input and responses function_call arguments",
			`{"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{"to":["a@b.io"]}}]}],"input":[{"type":"function_call","call_id":"c","name":"f","arguments":"{\"to\":\"c@d.io\"}"}]}`,
			`{"input":[{"arguments":"{\"to\":\"[REDACTED:email]\"}","call_id":"c","name":"f","type":"function_call"}],"messages":[{"content":[{"id":"t","input":{"to":["[REDACTED:email]"]},"name":"f","type":"tool_use"}],"role":"assistant"}]}`},
		{"tool descriptions, on every surface",
			`{"tools":[{"type":"function","function":{"name":"f","description":"mail a@b.io","parameters":{"type":"object","properties":{"to":{"type":"string","description":"e.g. c@d.io"},"description":{"type":"string"}}}}},{"name":"g","description":"x@y.io","input_schema":{"description":"z@w.io"}},{"type":"function","name":"h","description":"p@q.io","parameters":{"properties":{"a":{"description":"r@s.io"}}}}]}`,
			`{"tools":[{"function":{"description":"mail [REDACTED:email]","name":"f","parameters":{"properties":{"description":{"type":"string"},"to":{"description":"e.g. [REDACTED:email]","type":"string"}},"type":"object"}},"type":"function"},{"description":"[REDACTED:email]","input_schema":{"description":"[REDACTED:email]"},"name":"g"},{"description":"[REDACTED:email]","name":"h","parameters":{"properties":{"a":{"description":"[REDACTED:email]"}}},"type":"function"}]}`},
		{"split over two parts of a message",
			`{"messages":[{"role":"user","content":[{"type":"text","text":"write to john@exa"},{"type":"text","text":"mple.com now"}]}]}`,
			`{"messages":[{"content":[{"text":"write to [REDACTED:email]","type":"text"},{"text":"[REDACTED:email] now","type":"text"}],"role":"user"}]}`},
		{"parts apart are not joined",
			`{"messages":[{"role":"user","content":[{"type":"text","text":"write to john@exa"},{"type":"image_url","image_url":{"url":"https://x"}},{"type":"text","text":"mple.com now"}]}]}`, ""},
		{"messages are not joined, nor tool calls to text",
			`{"messages":[{"role":"user","content":"mail john@exa"},{"role":"user","content":"mple.com now"},{"role":"assistant","tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{\"a\":\"x@exa\",\"b\":\"mple.com\"}"}}]}]}`, ""},
		{"legacy functions and function_call, custom tool input",
			`{"functions":[{"name":"f","description":"a@b.io","parameters":{"properties":{"x":{"description":"c@d.io"}}}}],"messages":[{"role":"assistant","function_call":{"name":"f","arguments":"{\"to\":\"g@h.io\",\"n\":1}"}}],"input":[{"type":"custom_tool_call","call_id":"c","name":"g","input":"to e@f.io"}]}`,
			`{"functions":[{"description":"[REDACTED:email]","name":"f","parameters":{"properties":{"x":{"description":"[REDACTED:email]"}}}}],"input":[{"call_id":"c","input":"to [REDACTED:email]","name":"g","type":"custom_tool_call"}],"messages":[{"function_call":{"arguments":"{\"n\":1,\"to\":\"[REDACTED:email]\"}","name":"f"},"role":"assistant"}]}`},
		{"members with nothing redacted are kept as they came",
			`{"tools":[{"type":"function","function":{"name":"f","parameters":{"properties":{"z":{},"a":{}}}}}],"messages":[{"role":"user","content":"a@b.io"}]}`,
			`{"messages":[{"content":"[REDACTED:email]","role":"user"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"properties":{"z":{},"a":{}}}}}]}`},
		{"nothing found", `{"model":"m",  "messages":[{"role":"user","content":"hello"}]}`, ""},
		{"anthropic text document",
			`{"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"mail bob@example.com"},"context":"from a@b.io"}]}]}`,
			`{"messages":[{"content":[{"context":"from [REDACTED:email]","source":{"data":"mail [REDACTED:email]","media_type":"text/plain","type":"text"},"type":"document"}],"role":"user"}]}`},
		{"anthropic content document",
			`{"messages":[{"role":"user","content":[{"type":"document","source":{"type":"content","content":[{"type":"text","text":"bob@example.com"}]}}]}]}`,
			`{"messages":[{"content":[{"source":{"content":[{"text":"[REDACTED:email]","type":"text"}],"type":"content"},"type":"document"}],"role":"user"}]}`},
		// "mail bob@example.com" → "mail [REDACTED:email]", in base64.
		{"chat text file",
			`{"messages":[{"role":"user","content":[{"type":"file","file":{"filename":"a.txt","file_data":"data:text/plain;base64,bWFpbCBib2JAZXhhbXBsZS5jb20="}}]}]}`,
			`{"messages":[{"content":[{"file":{"file_data":"data:text/plain;base64,bWFpbCBbUkVEQUNURUQ6ZW1haWxd","filename":"a.txt"},"type":"file"}],"role":"user"}]}`},
		{"responses text file, bare base64",
			`{"input":[{"role":"user","content":[{"type":"input_file","filename":"a.md","file_data":"bWFpbCBib2JAZXhhbXBsZS5jb20="}]}]}`,
			`{"input":[{"content":[{"file_data":"bWFpbCBbUkVEQUNURUQ6ZW1haWxd","filename":"a.md","type":"input_file"}],"role":"user"}]}`},
		{"pdf is not inspected",
			`{"messages":[{"role":"user","content":[{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,bWFpbCBib2JAZXhhbXBsZS5jb20="}}]}]}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := []byte(tc.in)
			o, err := p.CheckRequestJSON(body)
			if err != nil {
				t.Fatalf("CheckRequestJSON: %v", err)
			}
			if tc.want == "" {
				if o.Changed || &o.Body[0] != &body[0] {
					t.Errorf("body rewritten to %s, want the input", o.Body)
				}
				return
			}
			if !o.Changed || string(o.Body) != tc.want {
				t.Errorf("body:\n got  %s\n want %s", o.Body, tc.want)
			}
			if !json.Valid(o.Body) {
				t.Errorf("invalid JSON")
			}
		})
	}
}

func TestCheckRequestJSONBlocksAndCounts(t *testing.T) {
	t.Parallel()
	p := mustCompile(t,
		newRule("keys", detAPIKey, modeBlock, dirBoth),
		newRule("email", detEmail, modeAudit, dirBoth),
	)
	body := `{"messages":[{"role":"user","content":"a@b.io c@d.io"},{"role":"user","content":[{"type":"text","text":"e@f.io"}]}]}`
	o, err := p.CheckRequestJSON([]byte(body))
	if err != nil || o.Blocked != nil || o.Changed || len(o.Events) != 1 || o.Events[0].Matches != 3 {
		t.Fatalf("outcome %+v, %v", o, err)
	}
	for _, doc := range []string{
		`{"type":"document","source":{"type":"text","media_type":"text/plain","data":"use ` + githubToken + `"}}`,
		`{"type":"file","file":{"file_data":"data:text/plain;charset=utf-8;base64,` + base64.StdEncoding.EncodeToString([]byte("use "+githubToken)) + `"}}`,
	} {
		o, err = p.CheckRequestJSON([]byte(`{"messages":[{"role":"user","content":[` + doc + `]}]}`))
		if err != nil || o.Blocked == nil {
			t.Errorf("document %s: outcome %+v, %v; want blocked", doc, o, err)
		}
	}
	body = `{"messages":[{"role":"user","content":"use ` + githubToken + `"}]}`
	o, err = p.CheckRequestJSON([]byte(body))
	if err != nil || o.Blocked == nil || o.Body != nil {
		t.Fatalf("outcome %+v, %v; want blocked", o, err)
	}
	if got, want := o.Blocked.Error(), `request blocked by guardrail "keys" (api_key)`; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}

func TestCheckJSONRejectsNonObjects(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, newRule("email", detEmail, modeRedact, dirBoth))
	for _, body := range []string{``, `null`, `[1]`, `"a@b.io"`, `{"messages":`, `{"input": tru}`} {
		if _, err := p.CheckRequestJSON([]byte(body)); !errors.Is(err, ErrNotJSONObject) {
			t.Errorf("CheckRequestJSON(%q) error = %v", body, err)
		}
		if _, err := p.CheckResponseJSON([]byte(body)); !errors.Is(err, ErrNotJSONObject) {
			t.Errorf("CheckResponseJSON(%q) error = %v", body, err)
		}
	}
	// Without rules the body is not even parsed.
	if o, err := mustCompile(t).CheckRequestJSON([]byte(`nope`)); err != nil || string(o.Body) != "nope" {
		t.Errorf("no rules: %+v, %v", o, err)
	}
}

func TestCheckResponseJSON(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, newRule("email", detEmail, modeRedact, dirResponse))
	for _, tc := range []struct {
		name, in, want string
	}{
		{"chat completion",
			`{"id":"c1","choices":[{"index":0,"message":{"role":"assistant","content":"mail a@b.io"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3}}`,
			`{"choices":[{"finish_reason":"stop","index":0,"message":{"content":"mail [REDACTED:email]","role":"assistant"}}],"id":"c1","usage":{"prompt_tokens":12,"completion_tokens":3}}`},
		{"legacy completion", `{"choices":[{"text":"a@b.io","index":0}]}`, `{"choices":[{"index":0,"text":"[REDACTED:email]"}]}`},
		{"anthropic", `{"type":"message","content":[{"type":"text","text":"a@b.io"},{"type":"tool_use","input":{"to":"c@d.io"}}]}`,
			`{"content":[{"text":"[REDACTED:email]","type":"text"},{"input":{"to":"[REDACTED:email]"},"type":"tool_use"}],"type":"message"}`},
		{"responses api", `{"output":[{"type":"message","content":[{"type":"output_text","text":"a@b.io"}]}]}`,
			`{"output":[{"content":[{"text":"[REDACTED:email]","type":"output_text"}],"type":"message"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, err := p.CheckResponseJSON([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, string(o.Body)); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestChatStream(t *testing.T) {
	t.Parallel()
	p := mustCompile(t,
		newRule("email", detEmail, modeRedact, dirResponse),
		newRule("keys", detAPIKey, modeBlock, dirResponse),
	)
	chunk := func(idx int, content string, finish string) string {
		c := map[string]any{"index": idx, "delta": map[string]any{}, "finish_reason": nil}
		if content != "" {
			c["delta"] = map[string]any{"content": content}
		}
		if finish != "" {
			c["finish_reason"] = finish
		}
		b, _ := json.Marshal(map[string]any{"id": "c1", "object": "chat.completion.chunk", "created": 1700000000, "model": "m", "choices": []any{c}})
		return string(b)
	}
	contentOf := func(t *testing.T, data []byte) map[int]string {
		t.Helper()
		var c struct {
			Choices []struct {
				Index int
				Delta struct{ Content *string }
			}
		}
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatalf("forwarded invalid JSON %s: %v", data, err)
		}
		out := map[int]string{}
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				out[ch.Index] += *ch.Delta.Content
			}
		}
		return out
	}

	t.Run("redacts across chunks and releases at finish", func(t *testing.T) {
		t.Parallel()
		s := p.NewChatStream()
		role := `{"id":"c1","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`
		var got strings.Builder
		for _, data := range []string{role, chunk(0, "Write to jo", ""), chunk(0, "hn@exa", ""), chunk(0, "mple.com, ok", ""), chunk(0, "", "stop"),
			`{"id":"c1","choices":[],"usage":{"prompt_tokens":5}}`} {
			out, blocked, err := s.Chunk([]byte(data))
			if err != nil || blocked {
				t.Fatalf("Chunk(%s) = %v, %v", data, blocked, err)
			}
			if data == role || strings.Contains(data, "usage") {
				if string(out) != data {
					t.Errorf("chunk %s rewritten to %s", data, out)
				}
			}
			got.WriteString(contentOf(t, out)[0])
		}
		if out, blocked := s.Finish(); out != nil || blocked {
			t.Errorf("Finish = %s, %v; want nothing left", out, blocked)
		}
		if want := "Write to [REDACTED:email], ok"; got.String() != want {
			t.Errorf("content %q, want %q", got.String(), want)
		}
		if evs := s.Events(); len(evs) != 1 || evs[0].Matches != 1 || evs[0].Direction != "response" {
			t.Errorf("events %v", evs)
		}
	})
	t.Run("finish without finish_reason", func(t *testing.T) {
		t.Parallel()
		s := p.NewChatStream()
		out, _, _ := s.Chunk([]byte(chunk(0, "bye a@b.io", "")))
		if got := contentOf(t, out)[0]; got != "bye " {
			t.Errorf("first chunk content %q", got)
		}
		last, blocked := s.Finish()
		if blocked || string(last) != `{"choices":[{"delta":{"content":"[REDACTED:email]"},"finish_reason":null,"index":0}],"created":1700000000,"id":"c1","model":"m","object":"chat.completion.chunk"}` {
			t.Errorf("Finish = %s, %v", last, blocked)
		}
	})
	t.Run("choices are filtered apart", func(t *testing.T) {
		t.Parallel()
		s := p.NewChatStream()
		var got [2]strings.Builder
		for _, data := range []string{chunk(0, "a@", ""), chunk(1, "x@", ""), chunk(1, "y.io!", ""), chunk(0, "b.io!", ""), chunk(0, "", "stop"), chunk(1, "", "stop")} {
			out, _, err := s.Chunk([]byte(data))
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range contentOf(t, out) {
				got[i].WriteString(c)
			}
		}
		if got[0].String() != "[REDACTED:email]!" || got[1].String() != "[REDACTED:email]!" {
			t.Errorf("choices %q, %q", got[0].String(), got[1].String())
		}
	})
	t.Run("block", func(t *testing.T) {
		t.Parallel()
		s := p.NewChatStream()
		if _, blocked, _ := s.Chunk([]byte(chunk(0, "key: "+stripeKey[:12], ""))); blocked {
			t.Fatal("blocked early")
		}
		out, blocked, err := s.Chunk([]byte(chunk(0, stripeKey[12:]+" ok", "")))
		if out != nil || !blocked || err != nil {
			t.Fatalf("Chunk = %s, %v, %v; want blocked", out, blocked, err)
		}
		if _, blocked, _ := s.Chunk([]byte(chunk(0, "more", ""))); !blocked {
			t.Error("not blocked after the block")
		}
		if got, want := s.Blocked().Error(), `response blocked by guardrail "keys" (api_key)`; got != want {
			t.Errorf("Blocked() = %q, want %q", got, want)
		}
	})
	t.Run("bad chunks", func(t *testing.T) {
		t.Parallel()
		for _, data := range []string{`nope`, `{"choices":{}}`, `{"choices":[{"index":"0"}]}`, `{"choices":[{"index":500}]}`, `{"choices":[{"delta":{"content":5}}]}`} {
			if _, _, err := p.NewChatStream().Chunk([]byte(data)); !errors.Is(err, ErrBadChunk) {
				t.Errorf("Chunk(%s) error = %v", data, err)
			}
		}
	})
	t.Run("no response rules", func(t *testing.T) {
		t.Parallel()
		s := mustCompile(t).NewChatStream()
		data := []byte(`not even json`)
		if out, blocked, err := s.Chunk(data); string(out) != string(data) || blocked || err != nil {
			t.Errorf("Chunk = %s, %v, %v", out, blocked, err)
		}
		if out, blocked := s.Finish(); out != nil || blocked || s.Events() != nil {
			t.Errorf("Finish = %s, %v", out, blocked)
		}
	})
}
