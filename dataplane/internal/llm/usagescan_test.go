package llm

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// fullUsage is the reference: the full decode decodeTopLevelUsage replaces.
func fullUsage[T any](body []byte) (*T, bool) {
	var parsed struct {
		Usage *T `json:"usage"`
	}
	if json.Unmarshal(body, &parsed) != nil {
		return nil, false
	}
	return parsed.Usage, true
}

func checkUsageSame(t *testing.T, body []byte) {
	t.Helper()
	want, wantOK := fullUsage[usageJSON](body)
	var got *usageJSON
	gotOK := decodeTopLevelUsage(body, &got)
	if gotOK != wantOK || (wantOK && !reflect.DeepEqual(got, want)) {
		t.Fatalf("openai %q: got %v %+v, want %v %+v", body, gotOK, got, wantOK, want)
	}
	// Validity must agree with encoding/json whenever the scan decides alone.
	if _, _, _, ok := scanTopLevelUsage(body); ok && !json.Valid(body) {
		t.Fatalf("scan accepted invalid JSON %q", body)
	}
	wantA, wantAOK := fullUsage[anthropicUsage](body)
	var gotA *anthropicUsage
	gotAOK := decodeTopLevelUsage(body, &gotA)
	if gotAOK != wantAOK || (wantAOK && !reflect.DeepEqual(gotA, wantA)) {
		t.Fatalf("anthropic %q: got %v %+v, want %v %+v", body, gotAOK, gotA, wantAOK, wantA)
	}
}

var usageScanSeeds = []string{
	`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi \"there\" \\ \u00e9 \ud83d\ude00"},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":3}}}`,
	`{"usage":{"input_tokens":5,"output_tokens":2,"cache_read_input_tokens":1,"cache_creation_input_tokens":4}}`,
	` { "Usage" : { "prompt_tokens" : 1 } } `,
	`{"USAGE":{"prompt_tokens":1}}`,
	`{"usage":null}`,
	`{"usage":{"prompt_tokens":1},"usage":{"completion_tokens":2}}`,
	`{"usage":{"prompt_tokens":1},"Usage":null}`,
	`{"u\u0073age":{"prompt_tokens":4}}`,
	`{"uſage":{"prompt_tokens":4}}`,
	`{"usage":"x"}`,
	`{"usage":{"prompt_tokens":"1"}}`,
	`{"usage":{"prompt_tokens":1.5}}`,
	`{"usage":{"prompt_tokens":1e2}}`,
	`{"usage":{"prompt_tokens":1}`,
	`{"usage":{"prompt_tokens":1}}x`,
	`{"usage":{"prompt_tokens":1}} {}`,
	`{"a":[1,2,{"usage":{"prompt_tokens":9}}],"b":-0.5e-3}`,
	`{"a":01,"usage":{"prompt_tokens":1}}`,
	`{"a":tru,"usage":{"prompt_tokens":1}}`,
	`{"a":"\x","usage":{"prompt_tokens":1}}`,
	"{\"a\":\"\x01\",\"usage\":{\"prompt_tokens\":1}}",
	"{\"a\":\"\xff\",\"usage\":{\"prompt_tokens\":1}}",
	`{"a":[1,],"usage":{"prompt_tokens":1}}`,
	`{,}`,
	`{}`,
	`[]`,
	`null`,
	``,
	`{"a":1,}`,
	`{"data":[{"embedding":[0.1,-2,3e5,4E-1]}],"usage":{"prompt_tokens":3,"total_tokens":3}}`,
	`{"a":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `,"usage":{"prompt_tokens":1}}`,
	`{"a":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `,"usage":{"prompt_tokens":1}}`,
}

func TestDecodeTopLevelUsageMatchesFullDecode(t *testing.T) {
	for _, s := range usageScanSeeds {
		checkUsageSame(t, []byte(s))
	}
}

func FuzzDecodeTopLevelUsage(f *testing.F) {
	for _, s := range usageScanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkUsageSame(t, body)
	})
}

var benchAnswer = []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"up-echo","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, this is a short answer."},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":3}}}`)

func BenchmarkUsageFullDecode(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if u, ok := fullUsage[usageJSON](benchAnswer); !ok || u == nil {
			b.Fatal("no usage")
		}
	}
}

func BenchmarkUsageScan(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var u *usageJSON
		if !decodeTopLevelUsage(benchAnswer, &u) || u == nil {
			b.Fatal("no usage")
		}
	}
}

func TestFastUsageJSONShapes(t *testing.T) {
	for _, u := range []string{
		`{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}`,
		`{"prompt_tokens":-0,"prompt_tokens_details":null}`,
		`{"prompt_tokens_details":{"cached_tokens":5,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":1}}`,
		`{"prompt_tokens_details":{"Cached_Tokens":5}}`,
		`{"prompt_tokens_details":{"cached_tokens":1,"cached_tokens":2}}`,
		`{"prompt_tokens_details":{"cached_tokens":null}}`,
		`{"prompt_tokens_details":[]}`,
		`{"prompt_tokens_details":{"cached_tokens":"1"}}`,
		`{"Prompt_Tokens":4}`,
		`{"prompt_tokens":9223372036854775807}`,
		`{"prompt_tokens":9223372036854775808}`,
		`{"prompt_tokens":-9223372036854775808}`,
		`{"prompt_tokens":1.0}`,
		`{"prompt_tokens":null}`,
		`{"prompt_tokens":true}`,
		`{"prompt_tokens":1,"prompt_tokens":2}`,
		`{"prompt_tokens\u0000":1}`,
		`{"x":{"prompt_tokens":1},"total_tokens":7}`,
		`{ "prompt_tokens" : 1 , "total_tokens" : 2 }`,
		`{}`, `[]`, `1`, `"s"`, `null`,
	} {
		checkUsageSame(t, []byte(`{"id":"x","usage":`+u+`}`))
		checkUsageSame(t, []byte(`{"usage":`+u+`,"id":"x"}`))
	}
}

var streamChunkSeeds = []string{
	`{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`,
	`{"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":2}}}`,
	`{"id":"c","choices":null,"usage":{"prompt_tokens":1}}`,
	`{"id":"c","choices":[],"usage":null}`,
	`{"id":"c","choices":[{"delta":{"content":"usage"}}],"usage":null,"x":{"usage":1}}`,
	`{"id":"c","choices":{},"usage":{"prompt_tokens":1}}`,
	`{"id":"c","choices":[],"usage":{"prompt_tokens":1},"usage":{"prompt_tokens":2}}`,
	`{"id":"c","Choices":[1],"USAGE":{"Prompt_Tokens":5}}`,
	`{"id":"c","choices":[],"usage":{"prompt_tokens":"1"}}`,
	`{"id":"c","choices":[],"usage":7}`,
	`{"id":"c","choices":[],"us\u0061ge":{"prompt_tokens":1}}`,
	`{"id":"c","choices":[],"usage":{"prompt_tokens":1}`,
	`[{"usage":{"prompt_tokens":1}}]`,
	`[DONE]`,
}

// TestInspectDataMatchesFullDecode: the scan reads a stream chunk's usage and decides
// whether to forward it exactly as decoding the chunk with encoding/json does.
func TestInspectDataMatchesFullDecode(t *testing.T) {
	for _, s := range streamChunkSeeds {
		checkInspectSame(t, []byte(s))
	}
}

func FuzzInspectData(f *testing.F) {
	for _, s := range streamChunkSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkInspectSame(t, data) })
}

func checkInspectSame(t *testing.T, data []byte) {
	t.Helper()
	for _, include := range []bool{false, true} {
		var fast, full Usage
		gotFwd := inspectData(data, include, &fast)
		wantFwd := true
		if !bytes.Equal(data, doneData) && hasUsage(data) {
			wantFwd = inspectDecoded(data, include, &full)
		}
		if gotFwd != wantFwd || fast != full {
			t.Fatalf("%s (include %v): scan forward %v usage %+v, decode forward %v usage %+v", data, include, gotFwd, fast, wantFwd, full)
		}
	}
}

var messagesSeeds = []string{
	`[{"role":"user","content":"hello there"}]`,
	`[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"bc"}]}]`,
	`[{"role":"assistant","content":null,"tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},{"role":"tool","content":"r\u00e9sult"}]`,
	`[{"role":"assistant","tool_calls":[{"function":{"arguments":null}}]}]`,
	`[{"role":"assistant","tool_calls":[{"function":{"arguments":"ab"},"function":{"name":"x"}}]}]`,
	`[{"role":"assistant","tool_calls":[{"function":null}]}]`,
	`[{"role":"assistant","tool_calls":null,"content":"x"}]`,
	`[{"content":"a","Content":"bbb"}]`,
	`[{"content":"a"},null,"x",{"content":"bb"}]`,
	`[{"content":"a"},{"tool_calls":[{"function":{"arguments":5}}]},{"content":"ccc"}]`,
	`[{"content":"invalid \xff utf8"}]`,
	`[]`,
	`{"content":"x"}`,
	`null`,
}

// TestMessagesTextLenMatchesFullDecode: the token estimate's scan counts what
// decoding the messages with encoding/json counts.
func TestMessagesTextLenMatchesFullDecode(t *testing.T) {
	for _, s := range messagesSeeds {
		if got, want := messagesTextLen([]byte(s)), decodedMessagesTextLen([]byte(s)); got != want {
			t.Errorf("%s: scan %d, decode %d", s, got, want)
		}
	}
}

func FuzzMessagesTextLen(f *testing.F) {
	for _, s := range messagesSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if got, want := messagesTextLen(raw), decodedMessagesTextLen(raw); got != want {
			t.Fatalf("%q: scan %d, decode %d", raw, got, want)
		}
	})
}
