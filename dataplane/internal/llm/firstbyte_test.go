package llm

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// signalWriter is a ResponseWriter that reports its first write.
type signalWriter struct {
	*httptest.ResponseRecorder
	once  sync.Once
	wrote chan struct{}
}

func (w *signalWriter) Write(b []byte) (int, error) {
	w.once.Do(func() { close(w.wrote) })
	return w.ResponseRecorder.Write(b)
}

// TestStreamRelaysBeforeTheFirstTokenWithoutTTFTBound: without a time-to-first-token
// bound nothing is held back, so the caller's first byte does not wait for the
// model's first token; with the bound the answer waits for it (and could move on).
func TestStreamRelaysBeforeTheFirstTokenWithoutTTFTBound(t *testing.T) {
	t.Parallel()
	for _, bound := range []time.Duration{0, 10 * time.Second} {
		t.Run(fmt.Sprint("ttft bound ", bound), func(t *testing.T) {
			t.Parallel()
			w := &signalWriter{ResponseRecorder: httptest.NewRecorder(), wrote: make(chan struct{})}
			relayedEarly := make(chan bool, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				rw.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprint(rw, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n")
				rw.(http.Flusher).Flush()
				// The first token waits until the caller saw bytes, or a while.
				select {
				case <-w.wrote:
					relayedEarly <- true
				case <-time.After(300 * time.Millisecond):
					relayedEarly <- false
				}
				fmt.Fprint(rw, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}\n\ndata: [DONE]\n\n")
			}))
			t.Cleanup(srv.Close)
			c := testClient(t)
			m := testModel(t, openAIType, srv.URL)
			m.Routing.TTFTTimeout = bound
			chat, err := ParseChatRequest([]byte(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Serve(context.Background(), w, &Request{Surface: SurfaceChat, Chat: chat, Candidates: []*runtime.Model{m}})
			if err != nil {
				t.Fatal(err)
			}
			early := <-relayedEarly
			if want := bound == 0; early != want {
				t.Fatalf("role chunk relayed before the first token: %v, want %v", early, want)
			}
			body := w.Body.String()
			if !strings.Contains(body, `"role":"assistant"`) || !strings.Contains(body, `"content":"Hi"`) || !strings.HasSuffix(body, "data: [DONE]\n\n") {
				t.Fatalf("stream %q", body)
			}
			// Time to first token counts to the token, not to the role chunk.
			if res.TTFT <= 0 || res.TTFT > res.Upstream || res.Usage.CompletionTokens != 1 {
				t.Fatalf("result %+v", res)
			}
		})
	}
}

// flushRecorder records what had been written at each flush.
type flushRecorder struct {
	*httptest.ResponseRecorder
	mu      sync.Mutex
	flushes []string
	flushed chan struct{}
}

func (w *flushRecorder) Flush() {
	w.mu.Lock()
	w.flushes = append(w.flushes, w.Body.String())
	w.mu.Unlock()
	select {
	case w.flushed <- struct{}{}:
	default:
	}
}

// TestStreamEventsThatArriveTogetherLeaveTogether: events the upstream sent in one
// go are written with one flush; an event that comes alone is flushed alone, before
// the upstream sends the next.
func TestStreamEventsThatArriveTogetherLeaveTogether(t *testing.T) {
	t.Parallel()
	w := &flushRecorder{ResponseRecorder: httptest.NewRecorder(), flushed: make(chan struct{}, 1)}
	chunk := func(content string) string {
		return `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"` + content + `"}}]}` + "\n\n"
	}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(rw, chunk("a")+chunk("b")+chunk("c"))
		rw.(http.Flusher).Flush()
		select { // the three must have reached the caller before "d" exists
		case <-w.flushed:
		case <-time.After(5 * time.Second):
		}
		fmt.Fprint(rw, chunk("d"))
		rw.(http.Flusher).Flush()
		select {
		case <-w.flushed:
		case <-time.After(5 * time.Second):
		}
		fmt.Fprint(rw, `data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":4,"total_tokens":5}}`+"\n\ndata: [DONE]\n\n")
	}))
	t.Cleanup(srv.Close)
	c := testClient(t)
	m := testModel(t, openAIType, srv.URL)
	chat, err := ParseChatRequest([]byte(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Serve(context.Background(), w, &Request{Surface: SurfaceChat, Chat: chat, Candidates: []*runtime.Model{m}}); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.flushes) < 2 {
		t.Fatalf("flushes %q", w.flushes)
	}
	if first := w.flushes[0]; first != chunk("a")+chunk("b")+chunk("c") {
		t.Errorf("first flush %q: want the three events that came together", first)
	}
	if second := w.flushes[1]; second != chunk("a")+chunk("b")+chunk("c")+chunk("d") {
		t.Errorf("second flush %q: want the lone event on its own", second)
	}
}
