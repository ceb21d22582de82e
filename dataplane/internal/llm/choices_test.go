package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// secretFilter stands in for the response guardrails: it holds its text back until
// the text ends, then redacts "secret" and refuses "4111". Its texts are kept, to
// show that each choice had filters of its own.
type secretFilter struct {
	kind TextKind
	buf  strings.Builder
	log  *filterLog
}

type filterLog struct {
	mu    sync.Mutex
	texts []string // by filter, what it was given
}

func (f *secretFilter) Filter(delta string) (string, error) {
	f.buf.WriteString(delta)
	return "", nil
}

func (f *secretFilter) Flush() (string, error) {
	text := f.buf.String()
	f.log.mu.Lock()
	f.log.texts = append(f.log.texts, fmt.Sprintf("%d:%s", f.kind, text))
	f.log.mu.Unlock()
	if strings.Contains(text, "4111") {
		return "", &Refusal{Code: "content_blocked", Message: "A card number is not allowed."}
	}
	return strings.ReplaceAll(text, "secret", "[REDACTED]"), nil
}

// filtered sets a request's response filters to secretFilters.
func filtered(req *Request) *filterLog {
	log := &filterLog{}
	req.Filter = &secretFilter{kind: TextContent, log: log}
	req.NewFilter = func(k TextKind) ContentFilter { return &secretFilter{kind: k, log: log} }
	return log
}

// choiceTexts are the texts a three-choice upstream answer holds: choice i says
// "secret <i>" in its content, reasoning and tool call arguments, and the content of
// choices 1 and 2 starts and ends a "secret" split between them.
func choiceTexts(i int) (content, reasoning, args string) {
	content = fmt.Sprintf("secret %d", i)
	switch i {
	case 1:
		content += " sec"
	case 2:
		content = "ret " + content
	}
	return content, fmt.Sprintf("think secret %d", i), fmt.Sprintf(`{"q":"secret %d"}`, i)
}

// manyChoicesUpstream answers as a provider asked for three choices (n, or Gemini's
// candidateCount) does, streamed or not, in its wire format.
func manyChoicesUpstream(t *testing.T, wk wire) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stream := strings.Contains(r.URL.Path, ":streamGenerateContent") || strings.Contains(r.Header.Get("Accept"), "event-stream")
		var events []any
		var answer any
		switch wk {
		case wireGemini:
			var cands []any
			for i := range 3 {
				content, reasoning, args := choiceTexts(i)
				parts := []any{map[string]any{"text": reasoning, "thought": true}, map[string]any{"text": content},
					map[string]any{"functionCall": map[string]any{"name": "look", "args": json.RawMessage(args)}}}
				cands = append(cands, map[string]any{"index": i, "content": map[string]any{"role": "model", "parts": parts}, "finishReason": "STOP"})
				if stream {
					for _, p := range parts {
						events = append(events, map[string]any{"responseId": "r1", "candidates": []any{map[string]any{"index": i, "content": map[string]any{"role": "model", "parts": []any{p}}}}})
					}
				}
			}
			usage := map[string]any{"promptTokenCount": 3, "candidatesTokenCount": 9}
			answer = map[string]any{"responseId": "r1", "candidates": cands, "usageMetadata": usage}
			if stream {
				for i := range 3 {
					events = append(events, map[string]any{"responseId": "r1", "candidates": []any{map[string]any{"index": i, "content": map[string]any{"role": "model", "parts": []any{}}, "finishReason": "STOP"}}})
				}
				events = append(events, map[string]any{"responseId": "r1", "usageMetadata": usage})
			}
		default:
			var choices []any
			for i := range 3 {
				content, reasoning, args := choiceTexts(i)
				choices = append(choices, map[string]any{"index": i, "finish_reason": "tool_calls", "message": map[string]any{
					"role": "assistant", "content": content, "reasoning_content": reasoning,
					"tool_calls": []any{map[string]any{"id": fmt.Sprint("call_", i), "type": "function", "function": map[string]any{"name": "look", "arguments": args}}}}})
			}
			usage := map[string]any{"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12}
			answer = map[string]any{"id": "c1", "object": "chat.completion", "model": "up", "choices": choices, "usage": usage}
			chunk := func(i int, delta map[string]any, finish any) any {
				return map[string]any{"id": "c1", "object": "chat.completion.chunk", "model": "up",
					"choices": []any{map[string]any{"index": i, "delta": delta, "finish_reason": finish}}}
			}
			// The choices interleave, their reasoning and arguments each in two deltas.
			half := func(s string, h int) string { return [2]string{s[:len(s)/2], s[len(s)/2:]}[h] }
			for step := range 5 {
				for i := range 3 {
					content, reasoning, args := choiceTexts(i)
					var delta map[string]any
					switch step {
					case 0, 1:
						delta = map[string]any{"reasoning_content": half(reasoning, step)}
					case 2:
						delta = map[string]any{"content": content}
					default:
						tc := map[string]any{"index": 0, "function": map[string]any{"arguments": half(args, step-3)}}
						if step == 3 {
							tc["id"], tc["type"], tc["function"].(map[string]any)["name"] = fmt.Sprint("call_", i), "function", "look"
						}
						delta = map[string]any{"tool_calls": []any{tc}}
					}
					events = append(events, chunk(i, delta, nil))
				}
			}
			for i := range 3 {
				events = append(events, chunk(i, map[string]any{}, "tool_calls"))
			}
			events = append(events, map[string]any{"id": "c1", "object": "chat.completion.chunk", "choices": []any{}, "usage": usage}, "[DONE]")
		}
		if !stream {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(answer)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, ev := range events {
			b, _ := json.Marshal(ev)
			if s, ok := ev.(string); ok {
				b = []byte(s)
			}
			fmt.Fprintf(w, "data: %s\n\n", b)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// answerChoices reads the choices a chat caller got, streamed or not, as texts by
// choice: content, reasoning and tool call arguments.
func answerChoices(t *testing.T, body string, stream bool) map[int][3]string {
	t.Helper()
	out := map[int][3]string{}
	if !stream {
		var cr chatResponse
		if err := json.Unmarshal([]byte(body), &cr); err != nil {
			t.Fatalf("answer: %v: %s", err, body)
		}
		for _, ch := range cr.Choices {
			args := ""
			for _, tc := range ch.Message.ToolCalls {
				args += tc.Function.Arguments
			}
			out[ch.Index] = [3]string{deref(ch.Message.Content), deref(ch.Message.ReasoningContent), args}
		}
		return out
	}
	for _, c := range chatChunks(t, body) {
		for _, ch := range c.Choices {
			texts := out[ch.Index]
			texts[0] += deref(ch.Delta.Content)
			texts[1] += deref(ch.Delta.ReasoningContent)
			for _, tc := range ch.Delta.ToolCalls {
				texts[2] += tc.Function.Arguments
			}
			out[ch.Index] = texts
		}
	}
	return out
}

// TestEveryChoiceGoesThroughTheResponseFilters: an answer with several choices (n > 1
// on an OpenAI-style upstream, candidateCount on Gemini) has every choice's content,
// reasoning and tool call arguments filtered, each by a filter of its own, streamed
// or not; a match is never stitched across two choices.
func TestEveryChoiceGoesThroughTheResponseFilters(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		provider wire
	}{{"openai", wireOpenAI}, {"gemini", wireGemini}} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s stream=%t", tt.name, stream), func(t *testing.T) {
				t.Parallel()
				typ := map[wire]gatehousev1.ProviderType{wireOpenAI: openAIType, wireGemini: geminiType}[tt.provider]
				srv := manyChoicesUpstream(t, tt.provider)
				c := testClient(t)
				req := parseGoldenRequest(t, SurfaceChat, fmt.Appendf(nil, `{"model":"m","n":3,"stream":%t,"messages":[{"role":"user","content":"hi"}]}`, stream))
				req.Candidates = []*runtime.Model{testModel(t, typ, srv.URL)}
				log := filtered(req)
				rec := httptest.NewRecorder()
				if _, err := c.Serve(context.Background(), rec, req); err != nil {
					t.Fatal(err)
				}
				if rec.Code != http.StatusOK {
					t.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
				body := rec.Body.String()
				if strings.Contains(body, "secret") {
					t.Errorf("a secret passed unfiltered:\n%s", body)
				}
				got := answerChoices(t, body, stream)
				var wantTexts []string
				for i := range 3 {
					content, reasoning, args := choiceTexts(i)
					want := [3]string{content, reasoning, args}
					for k, text := range want {
						wantTexts = append(wantTexts, fmt.Sprintf("%d:%s", k, text))
						want[k] = strings.ReplaceAll(text, "secret", "[REDACTED]")
					}
					if got[i] != want {
						t.Errorf("choice %d = %q, want %q", i, got[i], want)
					}
				}
				// Each text of each choice was filtered on its own: the "sec" ending
				// choice 1 and the "ret" starting choice 2 never met in one filter.
				log.mu.Lock()
				defer log.mu.Unlock()
				if diff := cmp.Diff(wantTexts, log.texts, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
					t.Errorf("filtered texts (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestSecondChoiceBlocked: a blocked text in any choice cuts the whole answer.
func TestSecondChoiceBlocked(t *testing.T) {
	t.Parallel()
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprint("stream=", stream), func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !stream {
					w.Header().Set("Content-Type", "application/json")
					fmt.Fprint(w, `{"id":"c1","object":"chat.completion","model":"up","choices":[`+
						`{"index":0,"message":{"role":"assistant","content":"fine"},"finish_reason":"stop"},`+
						`{"index":1,"message":{"role":"assistant","content":"card 4111 1111 1111 1111"},"finish_reason":"stop"}],`+
						`"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`)
					return
				}
				w.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprint(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"fine\"},\"finish_reason\":null},{\"index\":1,\"delta\":{\"content\":\"card 4111 1111 1111 1111\"},\"finish_reason\":null}]}\n\n"+
					"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"},{\"index\":1,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"+
					"data: [DONE]\n\n")
			}))
			t.Cleanup(srv.Close)
			c := testClient(t)
			req := parseGoldenRequest(t, SurfaceChat, fmt.Appendf(nil, `{"model":"m","n":2,"stream":%t,"messages":[{"role":"user","content":"hi"}]}`, stream))
			req.Candidates = []*runtime.Model{testModel(t, openAIType, srv.URL)}
			filtered(req)
			rec := httptest.NewRecorder()
			_, err := c.Serve(context.Background(), rec, req)
			var ref *Refusal
			if !errors.As(err, &ref) || ref.Code != "content_blocked" {
				t.Fatalf("err = %v, want the refusal", err)
			}
			if body := rec.Body.String(); strings.Contains(body, "4111") || stream && !strings.Contains(body, "content_blocked") {
				t.Errorf("answer:\n%s", body)
			}
		})
	}
}

// TestOneChoiceForMessagesAndResponses: a Message or a Response is one answer, the
// first choice, whatever an upstream sends besides.
func TestOneChoiceForMessagesAndResponses(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		surface Surface
		body    string
	}{
		{SurfaceMessages, `{"model":"m","max_tokens":10,"stream":%t,"messages":[{"role":"user","content":"hi"}]}`},
		{SurfaceResponses, `{"model":"m","stream":%t,"input":"hi"}`},
	} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprint(tt.surface, stream), func(t *testing.T) {
				t.Parallel()
				srv := manyChoicesUpstream(t, wireOpenAI)
				c := testClient(t)
				req := parseGoldenRequest(t, tt.surface, fmt.Appendf(nil, tt.body, stream))
				req.Candidates = []*runtime.Model{testModel(t, openAIType, srv.URL)}
				log := filtered(req)
				rec := httptest.NewRecorder()
				if _, err := c.Serve(context.Background(), rec, req); err != nil {
					t.Fatal(err)
				}
				body := rec.Body.String()
				if strings.Contains(body, "secret") || strings.Contains(body, "[REDACTED] 1") || !strings.Contains(body, "[REDACTED] 0") {
					t.Errorf("answer:\n%s", body)
				}
				log.mu.Lock()
				defer log.mu.Unlock()
				if len(log.texts) != 3 {
					t.Errorf("filtered texts %q, want those of the first choice", log.texts)
				}
			})
		}
	}
}

// TestManyChoicesFromAnthropicRefused: Anthropic answers one choice per request, so a
// chat request with n > 1 for it is refused, naming n, before anything is sent.
func TestManyChoicesFromAnthropicRefused(t *testing.T) {
	t.Parallel()
	called := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called = true
		http.Error(w, "unexpected", http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	c := testClient(t)
	for _, n := range []int{2} {
		req := parseGoldenRequest(t, SurfaceChat, fmt.Appendf(nil, `{"model":"m","n":%d,"messages":[{"role":"user","content":"hi"}]}`, n))
		req.Candidates = []*runtime.Model{testModel(t, anthropicType, srv.URL)}
		_, err := c.Serve(context.Background(), httptest.NewRecorder(), req)
		var ie *InvalidRequestError
		if !errors.As(err, &ie) || ie.Param != "n" {
			t.Errorf("n=%d: err = %v, want an invalid request naming n", n, err)
		}
	}
	if called {
		t.Error("the request with n=2 reached Anthropic")
	}
}
