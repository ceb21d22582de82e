package llm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// serveFiltered serves body on surface through one provider of type typ answering
// with upstream, the response filters secretFilters; it returns what the caller got
// (a refusal that cut the answer is in it).
func serveFiltered(t *testing.T, surface Surface, typ gatehousev1.ProviderType, body string, upstream http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(upstream)
	t.Cleanup(srv.Close)
	req := parseGoldenRequest(t, surface, []byte(body))
	req.Candidates = []*runtime.Model{testModel(t, typ, srv.URL)}
	filtered(req)
	rec := httptest.NewRecorder()
	var ref *Refusal
	if _, err := testClient(t).Serve(context.Background(), rec, req); err != nil && !errors.As(err, &ref) {
		t.Fatalf("serve: %v", err)
	}
	return rec.Body.String()
}

// answerJSON answers with a complete chat completion.
func answerJSON(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	}
}

// answerSSE answers with a stream of data events.
func answerSSE(events ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, e := range events {
			fmt.Fprintf(w, "data: %s\n\n", e)
		}
	}
}

const chunkHead = `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"up","choices":[`

// surfaceBody is a minimal request body of each surface.
func surfaceBody(s Surface, stream bool) string {
	switch s {
	case SurfaceMessages:
		return fmt.Sprintf(`{"model":"m","max_tokens":5,"stream":%t,"messages":[{"role":"user","content":"hi"}]}`, stream)
	case SurfaceResponses:
		return fmt.Sprintf(`{"model":"m","stream":%t,"input":"hi"}`, stream)
	}
	return fmt.Sprintf(`{"model":"m","stream":%t,"messages":[{"role":"user","content":"hi"}]}`, stream)
}

func TestRefusalGoesThroughTheResponseFilters(t *testing.T) {
	t.Parallel()
	t.Run("answer", func(t *testing.T) {
		t.Parallel()
		got := serveFiltered(t, SurfaceChat, openAIType, surfaceBody(SurfaceChat, false), answerJSON(
			`{"id":"c1","object":"chat.completion","model":"up","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I won't share secret 123"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`))
		if strings.Contains(got, "secret") || !strings.Contains(got, `"refusal":"I won't share [REDACTED] 123"`) {
			t.Errorf("answer: %s", got)
		}
	})
	t.Run("stream", func(t *testing.T) {
		t.Parallel()
		got := serveFiltered(t, SurfaceChat, openAIType, surfaceBody(SurfaceChat, true), answerSSE(
			chunkHead+`{"index":0,"delta":{"role":"assistant","refusal":"I won't share sec"},"finish_reason":null}]}`,
			chunkHead+`{"index":0,"delta":{"refusal":"ret 123"},"finish_reason":null}]}`,
			chunkHead+`{"index":0,"delta":{},"finish_reason":"stop"}]}`, `[DONE]`))
		if strings.Contains(got, "secret") || !strings.Contains(got, `"refusal":"I won't share [REDACTED] 123"`) {
			t.Errorf("stream: %s", got)
		}
	})
	t.Run("blocked", func(t *testing.T) {
		t.Parallel()
		got := serveFiltered(t, SurfaceChat, openAIType, surfaceBody(SurfaceChat, true), answerSSE(
			chunkHead+`{"index":0,"delta":{"role":"assistant","refusal":"card 4111"},"finish_reason":"stop"}]}`, `[DONE]`))
		if strings.Contains(got, "4111") || !strings.Contains(got, "content_blocked") {
			t.Errorf("blocked: %s", got)
		}
	})
}

func TestThinkingBlocksFromOpenAIStyleUpstreams(t *testing.T) {
	t.Parallel()
	// What an OpenAI-style upstream claims are Anthropic blocks: text outside a
	// "thinking" block, redacted_thinking data and unknown types reach no filter.
	blocks := `[{"type":"redacted_thinking","thinking":"secret A","data":"secret B"},{"type":"thinking","thinking":"plain","signature":"sig","data":"secret C"},{"type":"mystery","thinking":"secret D","data":"secret E"}]`
	answer := `{"id":"c1","object":"chat.completion","model":"up","choices":[{"index":0,"message":{"role":"assistant","content":"ok","thinking_blocks":` + blocks + `},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`
	events := []string{
		chunkHead + `{"index":0,"delta":{"role":"assistant","thinking_blocks":` + blocks + `},"finish_reason":null}]}`,
		chunkHead + `{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}`, `[DONE]`,
	}
	for _, surface := range []Surface{SurfaceChat, SurfaceMessages, SurfaceResponses} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("surface %d stream %t", surface, stream), func(t *testing.T) {
				t.Parallel()
				upstream := answerJSON(answer)
				if stream {
					upstream = answerSSE(events...)
				}
				got := serveFiltered(t, surface, openAIType, surfaceBody(surface, stream), upstream)
				if strings.Contains(got, "secret") || strings.Contains(got, "redacted_thinking") || strings.Contains(got, "mystery") {
					t.Errorf("unchecked thinking reached the caller: %s", got)
				}
				if surface != SurfaceResponses && !strings.Contains(got, "plain") {
					t.Errorf("the thinking block's text is lost: %s", got)
				}
			})
		}
	}
}

func TestRedactedThinkingFromAnthropicPasses(t *testing.T) {
	t.Parallel()
	got := serveFiltered(t, SurfaceChat, anthropicType, surfaceBody(SurfaceChat, false), answerJSON(
		`{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"redacted_thinking","data":"ENCRYPTED"},{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}`))
	if !strings.Contains(got, `"data":"ENCRYPTED"`) {
		t.Errorf("Anthropic's redacted_thinking was dropped: %s", got)
	}
}
