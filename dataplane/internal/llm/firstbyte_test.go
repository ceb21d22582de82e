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
			res, err := c.Serve(context.Background(), w, streamRequest(t, m))
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

// waitFlushes waits (up to 5 s) until the relay flushed n times.
func (w *flushRecorder) waitFlushes(n int) {
	deadline := time.After(5 * time.Second)
	for {
		w.mu.Lock()
		got := len(w.flushes)
		w.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-w.flushed:
		case <-deadline:
			return
		}
	}
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

// TestStreamEventsThatArriveTogetherLeaveTogether: the first event is flushed at once
// (it is the caller's first byte); later events the upstream sent in one go are
// written with one flush; an event that comes alone is flushed alone, before the
// upstream sends the next.
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
		w.waitFlushes(2) // "a" alone, then "b" and "c": all out before "d" exists
		fmt.Fprint(rw, chunk("d"))
		rw.(http.Flusher).Flush()
		w.waitFlushes(3)
		fmt.Fprint(rw, `data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":4,"total_tokens":5}}`+"\n\ndata: [DONE]\n\n")
	}))
	t.Cleanup(srv.Close)
	c := testClient(t)
	m := testModel(t, openAIType, srv.URL)
	if _, err := c.Serve(context.Background(), w, streamRequest(t, m)); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.flushes) < 3 {
		t.Fatalf("flushes %q", w.flushes)
	}
	if first := w.flushes[0]; first != chunk("a") {
		t.Errorf("first flush %q: want the first event alone", first)
	}
	if second := w.flushes[1]; second != chunk("a")+chunk("b")+chunk("c") {
		t.Errorf("second flush %q: want the two events that came with the first together", second)
	}
	if third := w.flushes[2]; third != chunk("a")+chunk("b")+chunk("c")+chunk("d") {
		t.Errorf("third flush %q: want the lone event on its own", third)
	}
}

func TestSSEReaderReady(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, buffered string
		ready          bool
	}{
		{"nothing", "", false},
		{"a whole event", "data: x\n\n", true},
		{"a whole event, CRLF", "data: x\r\n\r\n", true},
		{"half an event", "data: x\n", false},
		{"blank lines only", "\n\n\n\n", false},
		{"blank lines, then half an event", "\n\ndata: x\n", false},
		{"blank lines, then an event", "\r\n\r\ndata: x\n\n", true},
		{"a comment is an event", ": ping\n\n", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			rd := newSSEReader(strings.NewReader(c.buffered))
			_, _ = rd.br.Peek(len(c.buffered)) // fill the buffer as a read from the upstream would
			if got := rd.ready(); got != c.ready {
				t.Fatalf("ready() = %v, want %v", got, c.ready)
			}
		})
	}
}

// TestStrippedEventDoesNotHoldBackTheOneBefore: a content event and a usage chunk
// (stripped: the caller did not ask for usage) arrive together, then the upstream
// pauses; the content must reach the caller during the pause.
func TestStrippedEventDoesNotHoldBackTheOneBefore(t *testing.T) {
	t.Parallel()
	w := &flushRecorder{ResponseRecorder: httptest.NewRecorder(), flushed: make(chan struct{}, 1)}
	content := `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"}}]}` + "\n\n"
	sawContent := make(chan bool, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(rw, content+`data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`+"\n\n")
		rw.(http.Flusher).Flush()
		deadline := time.After(5 * time.Second)
		for seen := false; !seen; {
			select {
			case <-w.flushed:
				w.mu.Lock()
				seen = len(w.flushes) > 0 && strings.Contains(w.flushes[len(w.flushes)-1], `"content":"Hi"`)
				w.mu.Unlock()
			case <-deadline:
				sawContent <- false
				fmt.Fprint(rw, "data: [DONE]\n\n")
				return
			}
		}
		sawContent <- true
		fmt.Fprint(rw, "data: [DONE]\n\n")
	}))
	t.Cleanup(srv.Close)
	c := testClient(t)
	m := testModel(t, openAIType, srv.URL)
	if _, err := c.Serve(context.Background(), w, streamRequest(t, m)); err != nil {
		t.Fatal(err)
	}
	if !<-sawContent {
		t.Fatal("the content waited for the upstream's next event")
	}
	if strings.Contains(w.Body.String(), `"usage":{`) {
		t.Fatalf("the usage chunk the caller did not ask for was relayed: %q", w.Body.String())
	}
}

// streamRequest is a streamed chat request served by model m.
func streamRequest(t *testing.T, m *runtime.Model) *Request {
	t.Helper()
	chat, err := ParseChatRequest([]byte(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	return &Request{Surface: SurfaceChat, Chat: chat, Candidates: []*runtime.Model{m}}
}
