package h1transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// upstream is a real net/http server on loopback that counts the connections it
// accepted.
type upstream struct {
	*httptest.Server
	conns atomic.Int64
}

func newUpstream(t testing.TB, h http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewUnstartedServer(h)
	u.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			u.conns.Add(1)
		}
	}
	u.Start()
	t.Cleanup(u.Close)
	return u
}

func newTransport(t testing.TB, fallback http.RoundTripper) *Transport {
	t.Helper()
	if fallback == nil {
		fallback = http.DefaultTransport
	}
	tr, err := New(Options{Fallback: fallback})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "%s %s %s %s", r.Method, r.URL.RequestURI(), r.Header.Get("X-Test"), b)
}

func post(t testing.TB, tr http.RoundTripper, ctx context.Context, url, body string) (int, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Test", "yes")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestKeepAliveReusesOneConnection(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, echo)
	tr := newTransport(t, nil)
	for i := range 50 {
		status, got, err := post(t, tr, context.Background(), u.URL+"/v1/x?a=1", fmt.Sprint("body", i))
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("POST /v1/x?a=1 yes body%d", i); status != 200 || got != want {
			t.Fatalf("got %d %q, want 200 %q", status, got, want)
		}
	}
	if n := u.conns.Load(); n != 1 {
		t.Fatalf("50 sequential requests used %d connections, want 1", n)
	}
}

func TestConcurrentRequestsGetTheirOwnAnswers(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, echo)
	tr := newTransport(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for g := range 20 {
		wg.Go(func() {
			for i := range 10 {
				body := fmt.Sprintf("g%d-i%d", g, i)
				_, got, err := post(t, tr, context.Background(), u.URL+"/c", body)
				if err != nil {
					errs <- err
					return
				}
				if want := "POST /c yes " + body; got != want {
					errs <- fmt.Errorf("got %q, want %q", got, want)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := u.conns.Load(); n > 20 {
		t.Errorf("20 workers opened %d connections", n)
	}
}

func TestStreamedBodyArrivesAsWritten(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-release
		fmt.Fprint(w, "data: two\n\n")
	})
	tr := newTransport(t, nil)
	req, _ := http.NewRequest(http.MethodPost, u.URL, strings.NewReader("{}"))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event %q, %v: it must arrive before the upstream ends", line, err)
	}
	close(release)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "\ndata: two\n\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}
	// Read to its end, the connection serves the next request.
	if _, _, err := post(t, tr, context.Background(), u.URL, "x"); err != nil {
		t.Fatal(err)
	}
	if n := u.conns.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

func TestCancelUnblocksAndDiscardsTheConnection(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/head" {
			<-hold // never answers
			return
		}
		fmt.Fprint(w, "partial")
		w.(http.Flusher).Flush()
		<-hold
	})
	t.Cleanup(func() { close(hold) }) // before the server's Close, which waits for handlers
	tr := newTransport(t, nil)

	t.Run("waiting for the head", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, _, err := post(t, tr, ctx, u.URL+"/head", "x")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want the context's", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("returned after %v", d)
		}
	})
	t.Run("reading the body", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u.URL+"/body", strings.NewReader("x"))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		buf := make([]byte, 7)
		if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "partial" {
			t.Fatalf("%q %v", buf, err)
		}
		time.AfterFunc(20*time.Millisecond, cancel)
		if _, err := resp.Body.Read(buf); err == nil {
			t.Fatal("read after cancel succeeded")
		}
	})
	tr.mu.Lock()
	idle := len(tr.idle[u.Listener.Addr().String()])
	tr.mu.Unlock()
	if idle != 0 {
		t.Fatalf("%d broken connections went back to the pool", idle)
	}
}

func TestEarlyCloseDoesNotReuse(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, strings.Repeat("x", 64<<10))
	})
	tr := newTransport(t, nil)
	for range 3 {
		req, _ := http.NewRequest(http.MethodGet, u.URL, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close() // unread
	}
	if n := u.conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3 (an unread body ruins its connection)", n)
	}
}

// rawUpstream answers each connection with the script it is given: the handler
// reads one request and writes what it likes.
func rawUpstream(t *testing.T, serve func(n int, c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for n := 0; ; n++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(n, c, bufio.NewReader(c))
			}()
		}
	}()
	return "http://" + l.Addr().String()
}

func TestStaleConnectionIsReplacedOnce(t *testing.T) {
	t.Parallel()
	var served atomic.Int64
	closed := make(chan struct{}, 10)
	url := rawUpstream(t, func(n int, c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		served.Add(1)
		// Keep-alive promised, then the connection is closed right after.
		fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		c.Close()
		closed <- struct{}{}
	})
	tr := newTransport(t, nil)
	for i := range 5 {
		status, got, err := post(t, tr, context.Background(), url, "x")
		if err != nil || status != 200 || got != "ok" {
			t.Fatalf("request %d: %d %q %v", i, status, got, err)
		}
		<-closed // a POST always peeks at a reused connection: no pause needed
	}
	if n := served.Load(); n != 5 {
		t.Fatalf("upstream served %d requests, want 5 (each once)", n)
	}
}

// TestRetryOnlyWhatIsSafeToRepeat: an upstream that reads a request on a reused
// connection and closes it unanswered may have acted on it; only a request that
// may be sent twice is sent again.
func TestRetryOnlyWhatIsSafeToRepeat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		method string
		header http.Header
		retry  bool
	}{
		{"POST", http.MethodPost, nil, false},
		{"POST with an idempotency key", http.MethodPost, http.Header{"Idempotency-Key": {"k"}}, true},
		{"GET", http.MethodGet, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var served atomic.Int64
			url := rawUpstream(t, func(_ int, c net.Conn, br *bufio.Reader) {
				for i := 0; ; i++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					served.Add(1)
					if i == 1 {
						return // the second request on a connection dies unanswered
					}
					fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			})
			tr := newTransport(t, nil)
			do := func() error {
				req, _ := http.NewRequest(tt.method, url, strings.NewReader("x"))
				for k, v := range tt.header {
					req.Header[k] = v
				}
				resp, err := tr.RoundTrip(req)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				_, err = io.ReadAll(resp.Body)
				return err
			}
			if err := do(); err != nil {
				t.Fatal(err)
			}
			err := do()
			if tt.retry != (err == nil) {
				t.Fatalf("second request: %v, want retried %v", err, tt.retry)
			}
			want := int64(2)
			if tt.retry {
				want = 3
			}
			if n := served.Load(); n != want {
				t.Fatalf("upstream read %d requests, want %d", n, want)
			}
		})
	}
}

func TestInformationalAnswersAreSkipped(t *testing.T) {
	t.Parallel()
	url := rawUpstream(t, func(_ int, c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			fmt.Fprint(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"+
				"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone")
		}
	})
	tr := newTransport(t, nil)
	for range 2 {
		status, got, err := post(t, tr, context.Background(), url, "x")
		if err != nil || status != 201 || got != "done" {
			t.Fatalf("%d %q %v", status, got, err)
		}
	}
}

// TestOddFramingIsNotReused: answers whose framing a server must not send are read
// one way by http.ReadResponse and may have been meant another: their connection
// must not carry the next request.
func TestOddFramingIsNotReused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		answer string
		late   string // sent after a pause, once the answer has been read
		status int
		body   string
	}{
		{"TE and CL", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 7\r\n\r\n2\r\nok\r\n0\r\n\r\n", "", 200, "ok"},
		{"CL and TE with a space", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding : chunked\r\n\r\nok", "", 200, "ok"},
		{"TE on HTTP/1.0", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nok", "", 200, "ok"},
		{"204 with a body", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", "HTTP/", 204, ""},
		{"101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n", "HTTP/1.1 200 OK\r\n", 101, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var conns atomic.Int64
			url := rawUpstream(t, func(n int, c net.Conn, br *bufio.Reader) {
				conns.Add(1)
				for i := 0; ; i++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if i > 0 {
						fmt.Fprint(c, "HTTP/1.1 500 Reused\r\nContent-Length: 0\r\n\r\n")
						continue
					}
					fmt.Fprint(c, tt.answer)
					if tt.late != "" {
						time.Sleep(50 * time.Millisecond)
						fmt.Fprint(c, tt.late)
					}
				}
			})
			tr := newTransport(t, nil)
			for i := range 2 {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != tt.status || string(b) != tt.body {
					t.Fatalf("request %d: %d %q %v, want %d %q", i, resp.StatusCode, b, err, tt.status, tt.body)
				}
			}
			if n := conns.Load(); n != 2 {
				t.Fatalf("%d connections, want 2", n)
			}
		})
	}
}

func TestTooManyInformationalAnswers(t *testing.T) {
	t.Parallel()
	url := rawUpstream(t, func(_ int, c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		for range 100 {
			fmt.Fprint(c, "HTTP/1.1 103 Early Hints\r\n\r\n")
		}
		io.Copy(io.Discard, br) // and never a final answer
	})
	tr := newTransport(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if _, err := tr.RoundTrip(req); err == nil || ctx.Err() != nil {
		t.Fatalf("err %v (context %v), want an error before the deadline", err, ctx.Err())
	}
}

func TestConnectionCloseIsHonoured(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		fmt.Fprint(w, "bye")
	})
	tr := newTransport(t, nil)
	for range 3 {
		if _, got, err := post(t, tr, context.Background(), u.URL, "x"); err != nil || got != "bye" {
			t.Fatalf("%q %v", got, err)
		}
	}
	if n := u.conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3", n)
	}
}

func TestChunkedRequestBody(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%v %d %s", r.TransferEncoding, r.ContentLength, b)
	})
	tr := newTransport(t, nil)
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("hello "))
		pw.Write([]byte("world"))
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, u.URL, pr)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if got := string(b); got != "[chunked] -1 hello world" {
		t.Fatalf("upstream saw %q", got)
	}
}

func TestHeaderInjectionIsRefused(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, echo)
	tr := newTransport(t, nil)
	tests := []struct {
		name  string
		build func(r *http.Request)
	}{
		{"line break in a value", func(r *http.Request) { r.Header = http.Header{"X-Evil": {"a\r\nX-Injected: 1"}} }},
		{"line break in a name", func(r *http.Request) { r.Header = http.Header{"X-Evil\r\nX-Injected": {"1"}} }},
		{"colon in a name", func(r *http.Request) { r.Header = http.Header{"X-Evil: 1\r\nX": {"1"}} }},
		{"NUL in a value", func(r *http.Request) { r.Header = http.Header{"X-Evil": {"a\x00b"}} }},
		{"line break in the query", func(r *http.Request) { r.URL.RawQuery = "a=1 HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /b" }},
		{"space in the query", func(r *http.Request) { r.URL.RawQuery = "a=1 HTTP/1.0" }},
		{"line break in the host", func(r *http.Request) { r.Host = "a\r\nX-Injected: 1" }},
		{"separator in the method", func(r *http.Request) { r.Method = "GET /x HTTP/1.1\r\n" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, u.URL, strings.NewReader("x"))
			tt.build(req)
			if _, err := tr.RoundTrip(req); !errors.Is(err, ErrHeaderInjection) {
				t.Fatalf("err %v, want ErrHeaderInjection", err)
			}
		})
	}
}

// TestFramingFieldsInAnyCase: framing fields set straight into the header map, not
// in canonical form, must not reach the upstream next to the ones the transport
// writes.
func TestFramingFieldsInAnyCase(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, echo)
	tr := newTransport(t, nil)
	for _, h := range []http.Header{
		{"content-length": {"100"}},
		{"transfer-encoding": {"chunked"}},
		{"HOST": {"elsewhere"}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u.URL+"/p", strings.NewReader("body"))
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%v: %v", h, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "POST /p  body" {
			t.Errorf("%v: upstream answered %d %q", h, resp.StatusCode, b)
		}
	}
}

type recordingRT struct{ calls atomic.Int64 }

func (r *recordingRT) RoundTrip(*http.Request) (*http.Response, error) {
	r.calls.Add(1)
	return &http.Response{StatusCode: 299, Body: http.NoBody}, nil
}

func TestHTTPSGoesToTheFallback(t *testing.T) {
	t.Parallel()
	fb := &recordingRT{}
	tr := newTransport(t, fb)
	req, _ := http.NewRequest(http.MethodPost, "https://api.example.invalid/v1", strings.NewReader("x"))
	resp, err := tr.RoundTrip(req)
	if err != nil || resp.StatusCode != 299 || fb.calls.Load() != 1 {
		t.Fatalf("resp %v err %v calls %d", resp, err, fb.calls.Load())
	}
}

func TestIdlePoolIsBounded(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, echo)
	tr, err := New(Options{Fallback: http.DefaultTransport, MaxIdlePerHost: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.CloseIdleConnections()
	var resps []*http.Response
	for range 5 {
		req, _ := http.NewRequest(http.MethodGet, u.URL, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resps = append(resps, resp)
	}
	for _, r := range resps {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	tr.mu.Lock()
	n := len(tr.idle[u.Listener.Addr().String()])
	tr.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d idle connections, want 2", n)
	}
}

func TestIdleConnectionsExpire(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, echo)
	tr := newTransport(t, nil)
	clock := time.Now()
	var mu sync.Mutex
	tr.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	if _, _, err := post(t, tr, context.Background(), u.URL, "a"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	clock = clock.Add(2 * time.Minute)
	mu.Unlock()
	if _, _, err := post(t, tr, context.Background(), u.URL, "b"); err != nil {
		t.Fatal(err)
	}
	if n := u.conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2 (the first expired)", n)
	}
}

func TestAnswerWithoutBody(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	tr := newTransport(t, nil)
	for range 3 {
		req, _ := http.NewRequest(http.MethodPost, u.URL, bytes.NewReader(nil))
		resp, err := tr.RoundTrip(req)
		if err != nil || resp.StatusCode != 204 {
			t.Fatalf("%v %v", resp, err)
		}
		resp.Body.Close()
	}
	if n := u.conns.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

// BenchmarkRoundTrip compares this transport with net/http's on the same upstream.
func BenchmarkRoundTrip(b *testing.B) {
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"hello"}]}`)
	answer := []byte(`{"id":"x","choices":[{"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}`)
	u := newUpstream(b, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	})
	std := &http.Transport{MaxIdleConnsPerHost: 512}
	h1 := newTransport(b, std)
	for _, c := range []struct {
		name string
		rt   http.RoundTripper
	}{{"h1transport", h1}, {"net-http", std}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodPost, u.URL+"/v1/chat/completions", bytes.NewReader(body))
					resp, err := c.rt.RoundTrip(req)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
	}
}
