package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
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
	if err := json.Unmarshal(c.UpstreamBody("up"), &out); err != nil {
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
