package llm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

func TestParseChatRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		body      string
		wantParam string
		wantErr   bool
		stream    bool
		usage     bool
	}{
		{name: "minimal", body: `{"model":"m","messages":[]}`},
		{name: "stream", body: `{"model":"m","stream":true}`, stream: true},
		{name: "stream with usage", body: `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`, stream: true, usage: true},
		{name: "null stream", body: `{"model":"m","stream":null,"stream_options":null}`},
		{name: "not json", body: `{"model":`, wantErr: true},
		{name: "array", body: `[1]`, wantErr: true},
		{name: "null", body: `null`, wantErr: true},
		{name: "empty", body: ``, wantErr: true},
		{name: "no model", body: `{"messages":[]}`, wantErr: true, wantParam: "model"},
		{name: "empty model", body: `{"model":""}`, wantErr: true, wantParam: "model"},
		{name: "numeric model", body: `{"model":3}`, wantErr: true, wantParam: "model"},
		{name: "string stream", body: `{"model":"m","stream":"yes"}`, wantErr: true, wantParam: "stream"},
		{name: "array stream_options", body: `{"model":"m","stream_options":[]}`, wantErr: true, wantParam: "stream_options"},
		{name: "string include_usage", body: `{"model":"m","stream_options":{"include_usage":"1"}}`, wantErr: true, wantParam: "stream_options.include_usage"},
		// Another spelling of a member the translators read (they match any case).
		{name: "Stream", body: `{"model":"m","stream":false,"Stream":true}`, wantErr: true, wantParam: "Stream"},
		{name: "ſtream (folds to stream)", body: `{"model":"m","\u017ftream":true}`, wantErr: true, wantParam: "ſtream"},
		{name: "MAX_TOKENS", body: `{"model":"m","MAX_TOKENS":1}`, wantErr: true, wantParam: "MAX_TOKENS"},
		{name: "an unknown capitalised member passes", body: `{"model":"m","X_Vendor":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := ParseChatRequest([]byte(tt.body))
			if tt.wantErr {
				var ie *InvalidRequestError
				if !errors.As(err, &ie) {
					t.Fatalf("err = %v, want InvalidRequestError", err)
				}
				if ie.Param != tt.wantParam {
					t.Fatalf("param = %q, want %q", ie.Param, tt.wantParam)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.Stream != tt.stream || req.IncludeUsage != tt.usage {
				t.Fatalf("stream=%v usage=%v, want %v %v", req.Stream, req.IncludeUsage, tt.stream, tt.usage)
			}
		})
	}
}

func TestUpstreamBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want map[string]any
	}{
		{
			name: "model rewritten, rest kept",
			body: `{"model":"alias","messages":[{"role":"user","content":"hi \u003c3"}],"temperature":0.5,"x-extra":{"a":[1,2]}}`,
			want: map[string]any{
				"model":       "gpt-real",
				"messages":    []any{map[string]any{"role": "user", "content": "hi <3"}},
				"temperature": 0.5,
				"x-extra":     map[string]any{"a": []any{1.0, 2.0}},
			},
		},
		{
			name: "stream forces usage",
			body: `{"model":"alias","stream":true}`,
			want: map[string]any{"model": "gpt-real", "stream": true, "stream_options": map[string]any{"include_usage": true}},
		},
		{
			name: "stream keeps other options",
			body: `{"model":"alias","stream":true,"stream_options":{"include_usage":false,"include_obfuscation":false}}`,
			want: map[string]any{"model": "gpt-real", "stream": true,
				"stream_options": map[string]any{"include_usage": true, "include_obfuscation": false}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := ParseChatRequest([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(req.UpstreamBody("gpt-real", false, false), &got); err != nil {
				t.Fatalf("upstream body is not JSON: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("upstream body (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseChatRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","stream":true,"stream_options":{"include_usage":false}}`,
		`{"model":"\u00e9","stream":null}`,
		`{"model":"m","model":"n"}`,
		`{}`, `[]`, `"x"`, `{"model":1}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseChatRequest(body)
		if err != nil {
			var ie *InvalidRequestError
			if !errors.As(err, &ie) || ie.Message == "" {
				t.Fatalf("error %v is not a described InvalidRequestError", err)
			}
			return
		}
		if req.Model == "" {
			t.Fatal("accepted a request without model")
		}
		var out struct {
			Model         string `json:"model"`
			StreamOptions *struct {
				IncludeUsage bool `json:"include_usage"`
			} `json:"stream_options"`
		}
		up := req.UpstreamBody("upstream/model", false, false)
		if err := json.Unmarshal(up, &out); err != nil {
			t.Fatalf("upstream body %q is not JSON: %v", up, err)
		}
		if out.Model != "upstream/model" {
			t.Fatalf("upstream model = %q", out.Model)
		}
		if req.Stream && (out.StreamOptions == nil || !out.StreamOptions.IncludeUsage) {
			t.Fatal("stream without include_usage upstream")
		}
	})
}

func TestInspectEvent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		event        string
		includeUsage bool
		forward      bool
		sawData      bool
		usage        Usage
	}{
		{name: "content chunk", event: "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n", forward: true, sawData: true},
		{name: "done", event: "data: [DONE]\n\n", forward: true, sawData: true},
		{name: "comment", event: ": keep-alive\n\n", forward: true},
		{name: "usage chunk stripped", event: "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"prompt_tokens_details\":{\"cached_tokens\":1}}}\n\n",
			sawData: true, usage: Usage{PromptTokens: 3, CompletionTokens: 4, CachedTokens: 1}},
		{name: "usage chunk kept", event: "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n", includeUsage: true,
			forward: true, sawData: true, usage: Usage{PromptTokens: 3, CompletionTokens: 4}},
		{name: "usage with choices is forwarded", event: "data: {\"choices\":[{}],\"usage\":{\"prompt_tokens\":1}}\r\n\r\n",
			forward: true, sawData: true, usage: Usage{PromptTokens: 1}},
		{name: "usage as content is not usage", event: "data: {\"choices\":[{\"delta\":{\"content\":\"usage\"}}],\"x\":\"usage\"}\n\n", forward: true, sawData: true},
		{name: "multi-line data", event: "data: {\"choices\":[],\ndata: \"usage\":{\"prompt_tokens\":2}}\n\n", sawData: true, usage: Usage{PromptTokens: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			event := []byte(tt.event)
			var u Usage
			forward, saw := inspectEvent(event, tt.includeUsage, &u)
			if forward != tt.forward || saw != tt.sawData {
				t.Errorf("forward=%v sawData=%v, want %v %v", forward, saw, tt.forward, tt.sawData)
			}
			if u != tt.usage {
				t.Errorf("usage = %+v, want %+v", u, tt.usage)
			}
			if string(event) != tt.event {
				t.Errorf("event modified: %q", event)
			}
		})
	}
}

func TestEstimateTokens(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, body string
		want       int64
	}{
		{"text and default output", `{"model":"m","messages":[{"role":"user","content":"12345678"}]}`, 2 + DefaultCompletionEstimate},
		{"parts, tool call arguments, max_tokens", `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"abcd"}]},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]}]}`, 3 + 10},
		{"max_completion_tokens wins", `{"model":"m","max_tokens":10,"max_completion_tokens":20,"messages":[]}`, 20},
		{"null limit falls back", `{"model":"m","max_completion_tokens":null,"max_tokens":7,"messages":[]}`, 7},
		{"negative limit", `{"model":"m","max_tokens":-5,"messages":[]}`, 0},
		{"messages of the wrong type", `{"model":"m","messages":"nope"}`, DefaultCompletionEstimate},
		{"n choices", `{"model":"m","max_tokens":10,"n":3,"messages":[]}`, 30},
		{"n beyond 128", `{"model":"m","max_tokens":10,"n":100000,"messages":[]}`, 1280},
		{"huge max_tokens", `{"model":"m","max_tokens":1000000000000000,"messages":[]}`, 1 << 20},
		{"max_tokens near 2^63 with a prompt", `{"model":"m","max_tokens":9223372036854775807,"messages":[{"role":"user","content":"12345678"}]}`, 2 + 1<<20},
		{"the largest estimate", `{"model":"m","max_tokens":9223372036854775807,"n":9223372036854775807,"messages":[]}`, 128 << 20},
		// An image counts mediaEstimate whatever its bytes; tool definitions as their JSON.
		{"an image and text", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"text","text":"abcd"},{"type":"image_url","image_url":{"url":"data:image/png;base64,` +
			strings.Repeat("A", 40000) + `"}}]}]}`, 1 + mediaEstimate + 1},
		{"tool definitions", `{"model":"m","max_tokens":1,"messages":[],"tools":[{"type":"function","function":{"name":"f","description":"` +
			strings.Repeat("d", 395) + `"}}]}`, (457+3)/4 + 1}, // the tools member is 457 bytes
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := ParseChatRequest([]byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if got := r.EstimateTokens(); got != c.want {
				t.Fatalf("EstimateTokens = %d, want %d", got, c.want)
			}
		})
	}
}

// TestOtherSpellingsRefusedOnEverySurface: the Messages and Responses parsers refuse
// another spelling of a member their translators read, as the chat parser does.
func TestOtherSpellingsRefusedOnEverySurface(t *testing.T) {
	t.Parallel()
	for name, parse := range map[string]func([]byte) error{
		"messages":     func(b []byte) error { _, err := ParseMessagesRequest(b); return err },
		"count_tokens": func(b []byte) error { _, err := ParseCountTokensRequest(b); return err },
		"responses":    func(b []byte) error { _, err := ParseResponsesRequest(b); return err },
	} {
		good := `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"input":"hi"}`
		if err := parse([]byte(good)); err != nil {
			t.Errorf("%s: %s: %v", name, good, err)
		}
		var ie *InvalidRequestError
		if err := parse([]byte(`{"model":"m","max_tokens":5,"messages":[],"input":"hi","Stream":true}`)); !errors.As(err, &ie) || ie.Param != "Stream" {
			t.Errorf("%s: Stream: %v, want an InvalidRequestError for it", name, err)
		}
	}
}

// TestCompletionTokensForOpenAI: OpenAI's own API and Azure (2024-09-01 on) get the
// output limit as max_completion_tokens, which their reasoning models require; other
// OpenAI-compatible servers keep max_tokens, which some of them read only.
func TestCompletionTokensForOpenAI(t *testing.T) {
	t.Parallel()
	provider := func(typ gatehousev1.ProviderType, base, version string) *runtime.Provider {
		u, _ := url.Parse(base)
		return &runtime.Provider{Type: typ, BaseURL: u, APIVersion: version}
	}
	compat, azure := gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE, gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI
	for _, c := range []struct {
		name string
		p    *runtime.Provider
		want bool
	}{
		{"openai", provider(compat, "https://api.openai.com/v1", ""), true},
		{"vllm", provider(compat, "http://vllm:8000/v1", ""), false},
		{"ollama", provider(compat, "http://127.0.0.1:11434/v1", ""), false},
		{"azure, default version", provider(azure, "https://x.openai.azure.com", ""), true},
		{"azure, an old version", provider(azure, "https://x.openai.azure.com", "2024-06-01"), false},
	} {
		if got := takesCompletionTokens(c.p); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	r, err := ParseChatRequest([]byte(`{"model":"m","max_tokens":50,"messages":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(r.UpstreamBody("o3", true, false)); got != `{"max_completion_tokens":50,"messages":[],"model":"o3"}` {
		t.Errorf("for OpenAI: %s", got)
	}
	if got := string(r.UpstreamBody("llama", false, false)); got != `{"max_tokens":50,"messages":[],"model":"llama"}` {
		t.Errorf("for others: %s", got)
	}
}

// Gemini's thought signatures ride on tool calls as Google's OpenAI-compatible API
// carries them: they are left out for OpenAI's own API and Azure, which refuse a
// property they do not know, in whatever spelling the gateway itself would read, and
// go on to every other OpenAI-style server (Google's endpoint, a proxy before Gemini).
func TestThoughtSignaturesLeftOutForOpenAI(t *testing.T) {
	t.Parallel()
	provider := func(typ gatehousev1.ProviderType, base string) *runtime.Provider {
		u, _ := url.Parse(base)
		return &runtime.Provider{Type: typ, BaseURL: u}
	}
	compat, azure := gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE, gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI
	for _, c := range []struct {
		p    *runtime.Provider
		want bool
	}{
		{provider(compat, "https://api.openai.com/v1"), true},
		{provider(azure, "https://x.openai.azure.com"), true},
		{provider(compat, "https://generativelanguage.googleapis.com/v1beta/openai"), false},
		{provider(compat, "http://litellm:4000/v1"), false},
		{provider(compat, "http://vllm:8000/v1"), false},
	} {
		if got := refusesUnknownFields(c.p); got != c.want {
			t.Errorf("%s: %v, want %v", c.p.BaseURL, got, c.want)
		}
	}
	body := `{"model":"m","messages":[{"role":"user","content":"weather?"},` +
		`{"role":"assistant","content":null,"tool_calls":[` +
		`{"id":"c1","type":"function","function":{"name":"w","arguments":"{}"},"extra_content":{"google":{"thought_signature":"c2ln"}}},` +
		`{"id":"c2","type":"function","function":{"name":"t","arguments":"{}"},"Extra_Content":{"google":{"thought_signature":"c2ln"}}},` +
		`{"id":"c3","type":"function","function":{"name":"u","arguments":"{}"},"extra\u005fcontent":{"google":{"thought_signature":"c2ln"}}}]},` +
		`{"role":"tool","tool_call_id":"c1","content":"sunny, says extra_content"}]}`
	r, err := ParseChatRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	toOpenAI := r.UpstreamBody("gpt", false, false)
	var sent struct {
		Messages []struct {
			Content   *string
			ToolCalls []map[string]json.RawMessage `json:"tool_calls"`
		}
	}
	if err := json.Unmarshal(toOpenAI, &sent); err != nil {
		t.Fatal(err)
	}
	if n := len(sent.Messages); n != 3 || len(sent.Messages[1].ToolCalls) != 3 {
		t.Fatalf("messages changed shape: %s", toOpenAI)
	}
	if strings.Contains(strings.ToLower(string(toOpenAI)), "c2ln") {
		t.Errorf("a signature reached OpenAI: %s", toOpenAI)
	}
	for i, tc := range sent.Messages[1].ToolCalls {
		if string(tc["id"]) != fmt.Sprintf(`"c%d"`, i+1) || len(tc["function"]) == 0 {
			t.Errorf("tool call %d lost its members: %v", i, tc)
		}
	}
	if c := sent.Messages[2].Content; c == nil || *c != "sunny, says extra_content" {
		t.Errorf("a tool result's text changed: %v", c)
	}
	if got := string(r.UpstreamBody("gemini-3-pro", false, true)); !strings.Contains(got, `"extra_content":{"google":{"thought_signature":"c2ln"}}`) {
		t.Errorf("Google's endpoint lost the signature: %s", got)
	}
	// A value of another shape carries no signature and is no error.
	for _, extra := range []string{`"x"`, `{"google":"x"}`, `{"google":{"thought_signature":5}}`, `null`} {
		tc := toolCall{ExtraContent: json.RawMessage(extra)}
		if sig := tc.thoughtSignature(); sig != "" {
			t.Errorf("extra_content %s: signature %q", extra, sig)
		}
		b, err := ParseChatRequest([]byte(`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"},"extra_content":` + extra + `}]}]}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.body(); err != nil {
			t.Errorf("extra_content %s: %v", extra, err)
		}
	}
}
