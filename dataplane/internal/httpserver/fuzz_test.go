package httpserver

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzServeConn sends arbitrary bytes over a connection: the server must answer or
// close, and never panic or hang.
func FuzzServeConn(f *testing.F) {
	seeds := []string{
		get("/"),
		get("/") + get("/flush") + post("/big", "x"),
		post("/", "hello"),
		"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked("ab", "cd"),
		"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n",
		"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nshort",
		"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + "GET /big HTTP/1.0\r\n\r\n",
		"HEAD /big HTTP/1.1\r\nHost: t\r\n\r\n",
		"GET / HTTP/2.0\r\nHost: t\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n",
		"\r\n\r\n",
		"GET /\x00 HTTP/1.1\r\nHost: t\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: t\r\nX: " + strings.Repeat("a", 5000) + "\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" + get("/"),
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	var logs logBuffer
	s := &Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			switch r.URL.Path {
			case "/flush":
				io.WriteString(w, "flushed")
				w.(http.Flusher).Flush()
			case "/big":
				w.Write(make([]byte, 3*bufSize))
			}
			io.WriteString(w, "ok")
		}),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       5 * time.Second,
		MaxHeaderBytes:    4 << 10,
		Logger:            slog.New(slog.NewTextHandler(&logs, nil)),
	}
	addr := startServer(f, s)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(testTimeout))
		c.Write(data) // the server may have closed already
		c.(*net.TCPConn).CloseWrite()
		// The server must end the exchange on its own once the client is done.
		if _, err := io.Copy(io.Discard, c); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("server still holds the connection after %v", testTimeout)
			}
		}
		if out := logs.String(); strings.Contains(out, "panicked") {
			t.Fatalf("handler panicked:\n%s", out)
		}
	})
}
