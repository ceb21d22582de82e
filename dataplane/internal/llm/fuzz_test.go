package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkRefusal fails unless err is a described *InvalidRequestError.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	var ie *InvalidRequestError
	if !errors.As(err, &ie) || ie.Message == "" {
		t.Fatalf("error %v is not a described InvalidRequestError", err)
	}
}

// checkChat checks a translated chat request the way adapters will use it.
func checkChat(t *testing.T, c *ChatRequest, model string) {
	t.Helper()
	if c == nil || c.Model != model {
		t.Fatalf("chat form has model %v, want %q", c, model)
	}
	var out map[string]any
	if err := json.Unmarshal(c.UpstreamBody("up", false, false), &out); err != nil {
		t.Fatalf("upstream body is not JSON: %v", err)
	}
	if b, err := c.body(); err == nil {
		// Every adapter must accept (or refuse with a described error) what the
		// translation produced.
		if _, err := chatToAnthropic(b, "up"); err != nil {
			checkRefusal(t, err)
		}
		if _, err := chatToGemini(b); err != nil {
			checkRefusal(t, err)
		}
	}
	_ = c.EstimateTokens()
}

func seeds(f *testing.F, files ...string) {
	for _, name := range files {
		if b, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(b)
		}
	}
}

func FuzzParseMessagesRequest(f *testing.F) {
	seeds(f, "messages_tools.request.json", "messages_tools_stream.request.json", "messages_documents.request.json")
	for _, s := range []string{
		`{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":null}]}]}`,
		`{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"tool_use","input":null}]}],"tool_choice":{"type":"tool"}}`,
		`{"model":"m","max_tokens":1,"messages":[],"system":5}`,
		`{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"x"},{"type":"thinking","thinking":"y","signature":"s"}]}]}`,
		`{"model":"m","max_tokens":-1,"messages":[]}`, `{}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseMessagesRequest(body)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if req.Model == "" {
			t.Fatal("accepted a request without model")
		}
		var out map[string]any
		if err := json.Unmarshal(req.upstreamBody("up"), &out); err != nil || out["model"] != "up" {
			t.Fatalf("upstream body %v, %v", out, err)
		}
		checkChat(t, req.Chat, req.Model)
		if req.Stream != req.Chat.Stream || (req.Stream && !req.Chat.IncludeUsage) {
			t.Fatal("stream settings lost in translation")
		}
	})
}

func FuzzParseResponsesRequest(f *testing.F) {
	seeds(f, "responses_tools.request.json", "responses_tools_stream.request.json", "responses_documents.request.json")
	for _, s := range []string{
		`{"model":"m","input":"hi"}`,
		`{"model":"m","input":[{"type":"function_call_output","output":{"a":1}}]}`,
		`{"model":"m","input":[{"role":"user","content":[{"type":"input_image"}]}]}`,
		`{"model":"m","input":[],"tools":[{"type":"web_search"}]}`,
		`{"model":"m","input":"x","text":{"format":{"type":"json_schema"}},"tool_choice":{"type":"function"}}`,
		`{"model":"m","input":5}`, `{}`, `[]`, ``,
		`{"model":"m","input":[{"type":"custom_tool_call","call_id":"c","name":"p","input":"x"},{"type":"custom_tool_call_output","call_id":"c","output":"ok"}],"tools":[{"type":"custom","name":"p"}]}`,
		`{"model":"m","input":[],"previous_response_id":"resp_1","store":true}`,
		`{"model":"m","input":[{"type":"item_reference","id":"msg_1"},{"type":"custom_tool_call","input":{"a":1}}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseResponsesRequest(body)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		checkChat(t, req.Chat, req.Model)
		if req.Native() {
			// What goes to a provider's own Responses API: the caller's object, valid
			// JSON, the model replaced.
			var up map[string]json.RawMessage
			if err := json.Unmarshal(req.upstreamBody("up/model"), &up); err != nil || string(up["model"]) != `"up/model"` {
				t.Fatalf("native body %s: %v", req.upstreamBody("up/model"), err)
			}
		}
	})
}

func FuzzParseEmbeddingsRequest(f *testing.F) {
	seeds(f, "embeddings.request.json")
	for _, s := range []string{
		`{"model":"m","input":"x"}`, `{"model":"m","input":[1,2,3]}`, `{"model":"m","input":[[1],[2]]}`,
		`{"model":"m","input":["a",""]}`, `{"model":"m","input":"x","dimensions":0}`, `{"model":"m","input":[]}`, `{}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseEmbeddingsRequest(body)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if req.Model == "" || req.EstimateTokens() < 0 {
			t.Fatalf("accepted %+v", req)
		}
		var out map[string]any
		if err := json.Unmarshal(req.upstreamBody("up"), &out); err != nil || out["model"] != "up" {
			t.Fatalf("upstream body %v, %v", out, err)
		}
	})
}

// FuzzUpstreamAnswers feeds arbitrary provider bytes through every decoder (stream
// events and whole answers) and every caller encoder: nothing may panic.
func FuzzUpstreamAnswers(f *testing.F) {
	for _, name := range []string{"anthropic_tools.upstream_response.sse", "gemini_tools.upstream_response.sse", "openai_tools.upstream_response.sse"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			continue
		}
		rd := newSSEReader(bytes.NewReader(b))
		for {
			_, _, data, err := rd.next()
			if err != nil {
				break
			}
			f.Add(bytes.Clone(data))
		}
	}
	seeds(f, "anthropic_tools.upstream_response.json", "gemini_tools.upstream_response.json", "openai_tools.upstream_response.json")
	f.Add([]byte(`{"type":"content_block_delta","index":7,"delta":{"type":"input_json_delta","partial_json":"x"}}`))
	f.Add([]byte(`{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":[1]}}]},"finishReason":"SAFETY"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		encoders := func() []streamEncoder {
			return []streamEncoder{&chatEncoder{includeUsage: true}, &messagesEncoder{model: "m"}, &responsesEncoder{model: "m"}}
		}
		for _, dec := range []streamDecoder{&openAIDecoder{}, &anthropicDecoder{}, &geminiDecoder{}} {
			chunks, _, _ := dec.decode(nil, data)
			for _, enc := range encoders() {
				for i := range chunks {
					c := chunks[i]
					enc.chunk(&c)
				}
				u, _ := dec.usage()
				enc.end("id", u)
				enc.fail("upstream_stream_broken", "x")
			}
		}
		for _, wk := range []wire{wireOpenAI, wireAnthropic, wireGemini} {
			cr, err := decodeAnswer(wk, data, "m", 0)
			if err != nil {
				continue
			}
			_, _ = json.Marshal(chatToMessages(cr, "m"))
			_, _ = json.Marshal(chatToResponse(cr, nil, "m"))
		}
	})
}

// FuzzSplitObject holds the one-pass splitter to encoding/json: the same inputs are
// objects, with the same members and the same raw values.
func FuzzSplitObject(f *testing.F) {
	seeds(f, "messages_tools.request.json", "responses_tools.request.json", "embeddings.request.json")
	for _, s := range []string{
		`{"model":"m","messages":[]}`, `{"a":1,"a":2}`, ` { "k" : "v" } `, `{"m\u00f6del":"x"}`, `{"é":1}`,
		`{}`, `[]`, `null`, ``, `{"a":1}x`, `{"a":1,}`, `{"a":"\ud800"}`, `{"a":[1,{"b":null}],"c":-0.5e+3}`,
		`{"a":01}`, `{"a":"` + "\x01" + `"}`, `{"a":"\xff"}`, `{"a":tru}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := splitObject(body)
		var want map[string]json.RawMessage
		err := json.Unmarshal(body, &want)
		wantOK := err == nil && want != nil
		if ok != wantOK {
			t.Fatalf("splitObject ok=%v, json.Unmarshal err=%v map=%v", ok, err, want != nil)
		}
		if !ok {
			return
		}
		if len(got) != len(want) {
			t.Fatalf("%d members, want %d", len(got), len(want))
		}
		for k, w := range want {
			if g, found := got[k]; !found || !bytes.Equal(g, w) {
				t.Fatalf("member %q = %q, want %q", k, g, w)
			}
		}
	})
}

// FuzzNativeResponsesFilter: whatever a provider sends as a native Responses answer
// or stream event, the response filter does not panic, relays only JSON, and no
// "secret" it was shown reaches the caller.
func FuzzNativeResponsesFilter(f *testing.F) {
	for _, s := range []string{
		`{"type":"response.output_text.delta","item_id":"m","content_index":0,"delta":"a secret"}`,
		`{"type":"response.output_text.done","item_id":"m","content_index":0,"text":"a secret"}`,
		`{"type":"response.content_part.done","item_id":"m","content_index":99999999999999999999,"part":{"type":"output_text","text":"secret"}}`,
		`{"type":"response.output_item.done","item":{"type":"message","id":"m","content":[{"type":"output_text","text":"secret"},7,null]}}`,
		`{"type":"response.completed","response":{"output":[{"type":"reasoning","id":"r","summary":[{"type":"summary_text","text":"secret"}]}]}}`,
		`{"type":"response.reasoning_summary_part.done","item_id":"r","summary_index":0,"part":"secret"}`,
		`{"output":[{"type":"function_call","id":"f","arguments":"secret"}]}`,
		`{"type":"response.audio.delta","delta":"secret"}`,
		`[1,2]`, `{"type":7}`, `not json`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &Request{Surface: SurfaceResponses}
		filtered(req)
		rf := newRespFilter(req)
		outs, err := rf.event(data)
		for _, o := range outs {
			if json.Valid(data) && !json.Valid(o) {
				t.Fatalf("relayed %q for %q", o, data)
			}
		}
		if err == nil && json.Valid(data) {
			for _, o := range outs {
				if saysSecret(o) {
					t.Fatalf("a filtered event still says secret: %s", o)
				}
			}
		}
		if body, err := filterResponsesBody(req, data); err == nil && json.Valid(data) && !json.Valid(body) {
			t.Fatalf("filtered body is not JSON: %q", body)
		}
	})
}

// saysSecret reports whether a text member (delta, text, refusal, arguments, input)
// of a filtered event still holds a text the filter redacts, under a type the filter
// knows.
func saysSecret(b []byte) bool {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return false
	}
	var walk func(v any, known bool) bool
	walk = func(v any, known bool) bool {
		switch v := v.(type) {
		case map[string]any:
			t, _ := v["type"].(string)
			known = known || strings.HasPrefix(t, "response.") || t == "output_text" || t == "summary_text" || t == "message" ||
				t == "reasoning" || t == "function_call" || t == "custom_tool_call" || t == "refusal"
			for k, x := range v {
				if s, ok := x.(string); ok && known && (k == "delta" || k == "text" || k == "refusal" || k == "arguments" || k == "input") &&
					strings.Contains(s, "secret") {
					return true
				}
				if r, ok := x.(map[string]any); ok && k == "response" {
					// A response object: the model's words are in its output only.
					x = r["output"]
				}
				if walk(x, known) {
					return true
				}
			}
		case []any:
			for _, x := range v {
				if walk(x, known) {
					return true
				}
			}
		}
		return false
	}
	return walk(v, false)
}
