package httpserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestKeepAliveReusesConnection(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	remotes := map[string]int{}
	addr := startServer(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		remotes[r.RemoteAddr]++
		mu.Unlock()
		echo(w, r)
	})})
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: testTimeout}
	for i := range 50 {
		var res *http.Response
		var err error
		if i%2 == 0 {
			res, err = hc.Get("http://" + addr + "/get")
		} else {
			res, err = hc.Post("http://"+addr+"/post", "text/plain", strings.NewReader("body"+strconv.Itoa(i)))
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		want := "GET /get "
		if i%2 == 1 {
			want = "POST /post body" + strconv.Itoa(i)
		}
		if string(body) != want {
			t.Fatalf("request %d: body %q, want %q", i, body, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(remotes) != 1 {
		t.Errorf("requests came over %d connections, want 1: %v", len(remotes), remotes)
	}
}

func TestRequestBodies(t *testing.T) {
	t.Parallel()
	addr := startServer(t, &Server{Handler: http.HandlerFunc(echo)})
	tests := []struct {
		name string
		req  string
		want string
	}{
		{"content length", post("/a", "hello"), "POST /a hello"},
		{"chunked", "POST /b HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked("hel", "lo, ", "world"), "POST /b hello, world"},
		{"chunked with trailer", "POST /c HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n", "POST /c abc"},
		{"empty", post("/d", ""), "POST /d "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, addr)
			// Twice on one connection: the body must be consumed exactly.
			c.send(tt.req + tt.req)
			for range 2 {
				if got := c.read("POST"); got.body != tt.want {
					t.Errorf("body %q, want %q", got.body, tt.want)
				}
			}
		})
	}

	t.Run("net/http client, unknown length", func(t *testing.T) {
		t.Parallel()
		pr, pw := io.Pipe()
		go func() {
			for i := range 3 {
				fmt.Fprintf(pw, "part%d ", i)
			}
			pw.Close()
		}()
		res, err := http.Post("http://"+addr+"/e", "text/plain", pr)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if want := "POST /e part0 part1 part2 "; string(body) != want {
			t.Errorf("body %q, want %q", body, want)
		}
	})
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	called := make(chan string, 100)
	addr := startServer(t, &Server{
		MaxHeaderBytes: 1 << 10,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			called <- r.Method + " " + r.URL.Path
			io.Copy(io.Discard, r.Body)
		}),
	})
	tests := []struct {
		name string
		req  string
		want int
	}{
		{"TE and CL", "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE and CL, large head", "POST / HTTP/1.1\r\nHost: test\r\nX-Pad: " + strings.Repeat("p", 4400) + "\r\ncontent-length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE with a space", "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE and CL on HTTP/1.0", "POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n5\r\nGET /\r\n0\r\n\r\n", 400},
		{"TE on HTTP/1.0", "POST / HTTP/1.0\r\nConnection: keep-alive\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: test\r\nX-A: a\r\n b\r\n\r\n", 400},
		{"TE behind obs-fold", "POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400},
		{"bare LF in a field", "POST / HTTP/1.1\r\nHost: test\r\nX-A: a\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"bare LF head", "GET / HTTP/1.1\nHost: test\n\n", 400},
		{"bare LF end of head", "GET / HTTP/1.1\r\nHost: test\r\n\n", 400},
		{"two CL", "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
		{"garbage", "\x00\x01\x02 nonsense\r\n\r\n", 400},
		{"bad request line", "GET /\r\nHost: test\r\n\r\n", 400},
		{"bad header", "GET / HTTP/1.1\r\nHost: test\r\nBad Header: x\r\n\r\n", 400},
		{"missing host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"bad host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"unsupported TE", "POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"HTTP/2", "GET / HTTP/2.0\r\nHost: test\r\n\r\n", 505},
		{"head too large", "GET / HTTP/1.1\r\nHost: test\r\nX-Big: " + strings.Repeat("a", 8<<10) + "\r\n\r\n", 431},
		{"line too large", "GET /" + strings.Repeat("a", 8<<10) + " HTTP/1.1\r\nHost: test\r\n\r\n", 431},
		{"bad expect", "POST / HTTP/1.1\r\nHost: test\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\na", 417},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, addr)
			c.send(tt.req)
			got := c.read("GET")
			if got.StatusCode != tt.want {
				t.Errorf("status %d, want %d", got.StatusCode, tt.want)
			}
			if !got.Close {
				t.Errorf("answer does not say Connection: close")
			}
			c.closed()
		})
	}
	select {
	case r := <-called:
		t.Errorf("handler called for %s", r)
	default:
	}
}

func TestExpectContinue(t *testing.T) {
	t.Parallel()
	addr := startServer(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ignore" {
			io.WriteString(w, "not reading")
			return
		}
		echo(w, r)
	})})
	const head = "POST %s HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"

	t.Run("handler reads", func(t *testing.T) {
		t.Parallel()
		c := dial(t, addr)
		c.send(fmt.Sprintf(head, "/read"))
		line, err := c.br.ReadString('\n')
		if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
			t.Fatalf("got %q, %v; want a 100 Continue", line, err)
		}
		if line, _ := c.br.ReadString('\n'); line != "\r\n" {
			t.Fatalf("got %q after the 100 status line", line)
		}
		c.send("hello")
		if got := c.read("POST"); got.body != "POST /read hello" || got.Close {
			t.Errorf("got %q (close %v)", got.body, got.Close)
		}
		c.send(get("/again"))
		if got := c.read("GET"); got.body != "GET /again " {
			t.Errorf("next request: %q", got.body)
		}
	})

	t.Run("handler does not read", func(t *testing.T) {
		t.Parallel()
		c := dial(t, addr)
		c.send(fmt.Sprintf(head, "/ignore"))
		got := c.read("POST")
		if got.StatusCode != 200 || got.body != "not reading" || !got.Close {
			t.Errorf("got %d %q (close %v), want 200 and a close", got.StatusCode, got.body, got.Close)
		}
		c.closed()
	})

	t.Run("net/http client", func(t *testing.T) {
		t.Parallel()
		tr := &http.Transport{ExpectContinueTimeout: testTimeout}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("POST", "http://"+addr+"/read", strings.NewReader("12345"))
		req.Header.Set("Expect", "100-continue")
		res, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if string(body) != "POST /read 12345" {
			t.Errorf("body %q", body)
		}
	})
}

func TestHTTP10(t *testing.T) {
	t.Parallel()
	addr := startServer(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Write([]byte(strings.Repeat("x", 3*bufSize)))
			return
		}
		io.WriteString(w, "hi")
	})})
	tests := []struct {
		name      string
		header    string
		path      string
		keepAlive bool
	}{
		{"close", "", "/", false},
		{"keep-alive", "Connection: keep-alive\r\n", "/", true},
		{"keep-alive, unknown length", "Connection: keep-alive\r\n", "/big", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, addr)
			req := "GET " + tt.path + " HTTP/1.0\r\n" + tt.header + "\r\n"
			c.send(req)
			got := c.read("GET")
			if got.Proto != "HTTP/1.0" || got.StatusCode != 200 {
				t.Errorf("status line %s %d", got.Proto, got.StatusCode)
			}
			if tt.path == "/big" {
				if got.ContentLength != -1 || len(got.body) != 3*bufSize {
					t.Errorf("content length %d, %d bytes; want a close-delimited body", got.ContentLength, len(got.body))
				}
			} else if got.body != "hi" || got.ContentLength != 2 {
				t.Errorf("body %q, content length %d", got.body, got.ContentLength)
			}
			if ka := got.Header.Get("Connection") == "keep-alive"; ka != tt.keepAlive {
				t.Errorf("Connection: %q", got.Header.Get("Connection"))
			}
			if !tt.keepAlive {
				c.closed()
				return
			}
			c.send(req)
			if got := c.read("GET"); got.body != "hi" {
				t.Errorf("second answer %q", got.body)
			}
		})
	}
}

func TestAnswers(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("0123456789", bufSize/5) // two buffers' worth
	tests := []struct {
		name    string
		method  string
		handler http.HandlerFunc
		// want
		status   int
		line     string // status line text, if checked
		body     string
		length   int64 // -1: none
		chunked  bool
		header   http.Header
		noHeader []string
	}{
		{
			name: "small gets a length", method: "GET",
			handler: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html><body>hi") },
			status:  200, body: "<html><body>hi", length: 14,
			header: http.Header{"Content-Type": {"text/html; charset=utf-8"}},
		},
		{
			name: "empty", method: "GET",
			handler: func(w http.ResponseWriter, r *http.Request) {},
			status:  200, length: 0, noHeader: []string{"Content-Type"},
		},
		{
			name: "large is chunked", method: "GET",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/x-test")
				for i := 0; i < len(big); i += 100 {
					io.WriteString(w, big[i:min(i+100, len(big))])
				}
			},
			status: 200, body: big, length: -1, chunked: true,
			header: http.Header{"Content-Type": {"application/x-test"}},
		},
		{
			name: "large in one write", method: "GET",
			handler: func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(big)) },
			status:  200, body: big, length: -1, chunked: true,
			header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
		},
		{
			name: "declared length", method: "GET",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(len(big)))
				w.Write([]byte(big[:10]))
				w.Write([]byte(big[10:]))
			},
			status: 200, body: big, length: int64(len(big)),
		},
		{
			name: "HEAD", method: "HEAD",
			handler: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "twelve bytes") },
			status:  200, length: 12,
		},
		{
			name: "HEAD, nothing written", method: "HEAD",
			handler: func(w http.ResponseWriter, r *http.Request) {},
			status:  200, length: -1,
		},
		{
			name: "204", method: "GET",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "10")
				w.WriteHeader(http.StatusNoContent)
				if _, err := io.WriteString(w, "body"); !errors.Is(err, http.ErrBodyNotAllowed) {
					panic(fmt.Sprintf("write to a 204: %v", err))
				}
			},
			status: 204, length: 0, noHeader: []string{"Content-Length", "Transfer-Encoding"},
		},
		{
			name: "304", method: "GET",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.Header().Set("ETag", `"x"`)
				w.WriteHeader(http.StatusNotModified)
			},
			status: 304, length: 0, header: http.Header{"Etag": {`"x"`}},
			noHeader: []string{"Content-Length", "Content-Type", "Transfer-Encoding"},
		},
		{
			name: "status text invented", method: "GET",
			handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(599) },
			status:  599, line: "599 status code 599", length: 0,
		},
		{
			name: "header changes after WriteHeader are ignored", method: "GET",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Before", "1")
				w.WriteHeader(201)
				w.WriteHeader(500) // ignored
				w.Header().Set("X-After", "1")
				io.WriteString(w, "made")
			},
			status: 201, body: "made", length: 4,
			header: http.Header{"X-Before": {"1"}}, noHeader: []string{"X-After"},
		},
		{
			name: "write past declared length", method: "GET",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "2")
				if _, err := io.WriteString(w, "abc"); !errors.Is(err, http.ErrContentLength) {
					panic(fmt.Sprintf("write past length: %v", err))
				}
				io.WriteString(w, "ab")
			},
			status: 200, body: "ab", length: 2,
		},
		{
			name: "handler Date and header values sanitized", method: "GET",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Date", "yesterday")
				w.Header().Set("X-Split", "a\r\nInjected: yes")
			},
			status: 200, length: 0,
			header: http.Header{"Date": {"yesterday"}, "X-Split": {"a  Injected: yes"}}, noHeader: []string{"Injected"},
		},
	}
	mux := http.NewServeMux()
	for i, tt := range tests {
		mux.Handle("/"+strconv.Itoa(i), tt.handler)
	}
	addr := startServer(t, &Server{Handler: mux})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, addr)
			// Each request twice on one connection: the framing must be exact.
			req := tt.method + " /" + strconv.Itoa(i) + " HTTP/1.1\r\nHost: test\r\n\r\n"
			c.send(req + req)
			for range 2 {
				got := c.read(tt.method)
				if got.StatusCode != tt.status {
					t.Errorf("status %d, want %d", got.StatusCode, tt.status)
				}
				if tt.line != "" && got.Status != tt.line {
					t.Errorf("status line %q, want %q", got.Status, tt.line)
				}
				if got.body != tt.body {
					t.Errorf("body %q, want %q", trim(got.body), trim(tt.body))
				}
				if got.ContentLength != tt.length {
					t.Errorf("content length %d, want %d", got.ContentLength, tt.length)
				}
				if isChunked := len(got.TransferEncoding) > 0; isChunked != tt.chunked {
					t.Errorf("transfer encoding %v", got.TransferEncoding)
				}
				for k := range tt.header {
					if diff := cmp.Diff(tt.header[k], got.Header[k]); diff != "" {
						t.Errorf("header %s (-want +got):\n%s", k, diff)
					}
				}
				for _, k := range tt.noHeader {
					if v, ok := got.Header[k]; ok {
						t.Errorf("unexpected header %s: %q", k, v)
					}
				}
				if _, err := http.ParseTime(got.Header.Get("Date")); err != nil && tt.header.Get("Date") == "" {
					t.Errorf("Date: %v", err)
				}
				if got.Close {
					t.Errorf("connection closes")
				}
			}
		})
	}
}

func trim(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func TestStreamingFlushReachesClient(t *testing.T) {
	t.Parallel()
	step := make(chan struct{})
	returned := make(chan struct{})
	addr := startServer(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(returned)
		rc := http.NewResponseController(w)
		for i := range 3 {
			fmt.Fprintf(w, "event %d\n", i)
			if err := rc.Flush(); err != nil {
				panic(err)
			}
			<-step
		}
	})})
	c := dial(t, addr)
	c.send(get("/stream"))
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.TransferEncoding) == 0 {
		t.Errorf("a flushed answer is not chunked")
	}
	buf := make([]byte, 64)
	for i := range 3 {
		want := fmt.Sprintf("event %d\n", i)
		if _, err := io.ReadFull(res.Body, buf[:len(want)]); err != nil || string(buf[:len(want)]) != want {
			t.Fatalf("read %q, %v; want %q", buf[:len(want)], err, want)
		}
		select {
		case <-returned:
			t.Fatalf("handler returned before event %d was read", i)
		default:
		}
		step <- struct{}{}
	}
	wait(t, returned, "handler")
	if rest, err := io.ReadAll(res.Body); err != nil || len(rest) != 0 {
		t.Errorf("after the last event: %q, %v", rest, err)
	}
}

func TestClientGoneCancelsContext(t *testing.T) {
	t.Parallel()
	type result struct {
		path string
		err  error
	}
	results := make(chan result, 10)
	started := make(chan string, 10)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/stream" {
			io.WriteString(w, "first")
			w.(http.Flusher).Flush()
		}
		started <- r.URL.Path
		select {
		case <-r.Context().Done():
			results <- result{r.URL.Path, nil}
		case <-time.After(testTimeout):
			results <- result{r.URL.Path, errors.New("context not canceled")}
		}
	})
	addr := startServer(t, &Server{Handler: handler})
	tests := []struct {
		name, req string
	}{
		{"streaming", get("/stream")},
		{"long, silent", get("/silent")},
		{"long, silent, after a body", post("/post", strings.Repeat("b", 3*bufSize))},
		{"long, silent, after a chunked body", "POST /chunked HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked("abc", "def")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: results are matched by order.
			c := dial(t, addr)
			c.send(tt.req)
			path := wait(t, started, "handler start")
			if path == "/stream" {
				if _, err := c.br.ReadString('\n'); err != nil { // the status line
					t.Fatal(err)
				}
			}
			c.Close()
			start := time.Now()
			res := wait(t, results, "handler result")
			if res.err != nil {
				t.Fatalf("%s: %v", res.path, res.err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("%s: canceled after %v", res.path, d)
			}
		})
	}
}

func TestPipelining(t *testing.T) {
	t.Parallel()
	addr := startServer(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(r.URL.Query().Get("sleep")); err == nil {
			// Long enough for the background read to take the next requests.
			time.Sleep(d)
		}
		if r.URL.Query().Get("flush") != "" {
			w.(http.Flusher).Flush()
		}
		echo(w, r)
	})})
	tests := []struct {
		name string
		reqs []string
	}{
		{"quick", []string{get("/1"), post("/2", "two"), get("/3")}},
		{"slow handlers", []string{get("/1?sleep=30ms"), post("/2?sleep=30ms", "two"), get("/3?sleep=30ms")}},
		{"streaming handlers", []string{get("/1?flush=1&sleep=10ms"), post("/2?flush=1", "two"), get("/3")}},
		{"bytes arrive while the handler runs", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, addr)
			if tt.reqs == nil {
				// The second request arrives while the first handler runs (and
				// the background read holds the bytes), before its response.
				c.send(get("/1?sleep=100ms"))
				time.Sleep(30 * time.Millisecond)
				c.send(get("/2"))
				tt.reqs = []string{"/1", "/2"}
			} else {
				c.send(strings.Join(tt.reqs, ""))
			}
			for i := range tt.reqs {
				got := c.read("GET")
				if !strings.Contains(got.body, " /"+strconv.Itoa(i+1)+" ") {
					t.Errorf("answer %d: %q", i+1, got.body)
				}
			}
		})
	}
}

func TestUnreadBody(t *testing.T) {
	t.Parallel()
	addr := startServer(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ignored your body")
	})})
	tests := []struct {
		name      string
		size      int
		chunked   bool
		keepAlive bool
	}{
		{"small", 10 << 10, false, true},
		{"small, chunked", 10 << 10, true, true},
		{"large", 1 << 20, false, false},
		{"large, chunked", 1 << 20, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, addr)
			body := strings.Repeat("x", tt.size)
			req := post("/", body)
			if tt.chunked {
				req = "POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(body)
			}
			go io.WriteString(c.Conn, req) // the server may stop reading
			got := c.read("POST")
			if got.body != "ignored your body" {
				t.Errorf("body %q", got.body)
			}
			if got.Close == tt.keepAlive {
				t.Errorf("close %v, want %v", got.Close, !tt.keepAlive)
			}
			if !tt.keepAlive {
				io.Copy(io.Discard, c.br) // closed, perhaps with a reset
				return
			}
			c.send(get("/next"))
			if got := c.read("GET"); got.body != "ignored your body" {
				t.Errorf("next answer %q", got.body)
			}
		})
	}
}

func TestPanics(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	addr := startServer(t, &Server{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/panic":
				io.WriteString(w, "partial")
				panic("boom")
			case "/abort":
				w.WriteHeader(200)
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler)
			}
			io.WriteString(w, "fine")
		}),
	})
	for _, path := range []string{"/panic", "/abort"} {
		c := dial(t, addr)
		c.send(get(path))
		if path == "/abort" {
			// The header was flushed; the body never ends.
			res, err := http.ReadResponse(c.br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadAll(res.Body); err == nil {
				t.Errorf("%s: body read without error", path)
			}
		}
		c.closed()
		c = dial(t, addr)
		c.send(get("/ok"))
		if got := c.read("GET"); got.body != "fine" {
			t.Errorf("after %s: %q", path, got.body)
		}
	}
	out := logs.String()
	if !strings.Contains(out, "boom") || !strings.Contains(out, "server_test.go") {
		t.Errorf("panic not logged with its stack:\n%s", out)
	}
	if strings.Contains(out, "abort") {
		t.Errorf("http.ErrAbortHandler logged:\n%s", out)
	}
}

func TestTimeouts(t *testing.T) {
	t.Parallel()
	addr := startServer(t, &Server{
		Handler:           http.HandlerFunc(echo),
		ReadHeaderTimeout: 200 * time.Millisecond,
		IdleTimeout:       300 * time.Millisecond,
	})
	tests := []struct {
		name    string
		first   string // a complete request answered first, if any
		partial string
	}{
		{"slow first head", "", "GET / HTTP/1.1\r\nHost: te"},
		{"silent new connection", "", ""},
		{"slow later head", get("/1"), "GET / HTTP/1.1\r\n"},
		{"idle keep-alive", get("/1"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, addr)
			if tt.first != "" {
				c.send(tt.first)
				c.read("GET")
			}
			start := time.Now()
			// A slowloris keeps sending, a byte at a time, and still gets cut off.
			for i := range len(tt.partial) {
				if _, err := io.WriteString(c.Conn, tt.partial[i:i+1]); err != nil {
					break // cut off already
				}
				time.Sleep(10 * time.Millisecond)
			}
			// A request line cut short may still be answered (400), as in
			// net/http.
			if rest, _ := io.ReadAll(c.br); len(rest) > 0 && !strings.HasPrefix(string(rest), "HTTP/1.1 400 ") {
				t.Errorf("got %q", rest)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("closed after %v", d)
			}
		})
	}

	t.Run("a slow body is not cut by the head timeout", func(t *testing.T) {
		t.Parallel()
		c := dial(t, addr)
		c.send(get("/1"))
		c.read("GET")
		c.send("POST /slow HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\na")
		time.Sleep(500 * time.Millisecond) // past both timeouts
		c.send("bc")
		if got := c.read("POST"); got.body != "POST /slow abc" {
			t.Errorf("got %q", got.body)
		}
	})
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			started <- struct{}{}
			<-release
		}
		io.WriteString(w, "done "+r.URL.Path)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() { close(release) })
		s.Close()
	})

	idle := dial(t, addr)
	idle.send(get("/idle"))
	idle.read("GET")
	active := dial(t, addr)
	active.send(get("/block"))
	wait(t, started, "handler start")

	// A deadline too short for the active request.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a short deadline: %v", err)
	}
	if err := wait(t, served, "Serve"); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve returned %v", err)
	}
	idle.closed()
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Errorf("still accepting")
	}

	shutdown := make(chan error, 1)
	go func() { shutdown <- s.Shutdown(context.Background()) }()
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v with a request active", err)
	case <-time.After(50 * time.Millisecond):
	}
	once.Do(func() { close(release) })
	got := active.read("GET")
	if got.body != "done /block" || !got.Close {
		t.Errorf("active request: %q (close %v)", got.body, got.Close)
	}
	active.closed()
	if err := wait(t, shutdown, "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := s.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
}

func TestResponseWriterInterfaces(t *testing.T) {
	t.Parallel()
	got := make(chan []string, 1)
	addr := startServer(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var is []string
		if _, ok := w.(http.Hijacker); ok {
			is = append(is, "Hijacker")
		}
		//lint:ignore SA1019 checking that it is absent
		if _, ok := w.(http.CloseNotifier); ok {
			is = append(is, "CloseNotifier")
		}
		if _, ok := w.(io.ReaderFrom); ok {
			is = append(is, "ReaderFrom")
		}
		if _, ok := w.(http.Flusher); ok {
			is = append(is, "Flusher")
		}
		if _, ok := w.(io.StringWriter); ok {
			is = append(is, "StringWriter")
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
			is = append(is, "SetReadDeadline: "+err.Error())
		}
		if err := rc.EnableFullDuplex(); err != nil {
			is = append(is, "EnableFullDuplex: "+err.Error())
		}
		if r.Context().Value(http.LocalAddrContextKey) == nil {
			is = append(is, "no local address")
		}
		got <- is
	})})
	c := dial(t, addr)
	c.send(get("/"))
	c.read("GET")
	if diff := cmp.Diff([]string{"Flusher", "StringWriter"}, <-got); diff != "" {
		t.Errorf("ResponseWriter (-want +got):\n%s", diff)
	}
}

// TestCompleteAnswerFlushedEarly: a handler that declares its length, writes it all
// and flushes has its answer on the wire while it still works, without the
// background read a streaming answer gets.
func TestCompleteAnswerFlushedEarly(t *testing.T) {
	t.Parallel()
	release := make(chan struct{}, 2)
	var bg atomic.Int32
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "hello")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush: %v", err)
		}
		c := w.(*response).c
		c.mu.Lock()
		bg.Store(int32(c.bg))
		c.mu.Unlock()
		<-release // bookkeeping after the answer
	})}
	addr := startServer(t, srv)
	c := dial(t, addr)
	c.send(get("/"))
	a := c.read("GET") // while the handler still waits
	release <- struct{}{}
	if a.StatusCode != 200 || a.body != "hello" || a.ContentLength != 5 || len(a.TransferEncoding) != 0 {
		t.Fatalf("answer %d %q length %d te %v", a.StatusCode, a.body, a.ContentLength, a.TransferEncoding)
	}
	// The connection serves the next request normally.
	c.send(get("/"))
	release <- struct{}{}
	if a := c.read("GET"); a.body != "hello" {
		t.Fatalf("second answer %q", a.body)
	}
	if bg.Load() != int32(bgIdle) {
		t.Fatalf("background read state %d, want idle: a complete answer needs no watching", bg.Load())
	}
}
