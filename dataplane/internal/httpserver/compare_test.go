package httpserver

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMatchesNetHTTP sends the same requests to this server and to net/http's, with
// the same handlers, and compares the answers.
func TestMatchesNetHTTP(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("big body ", bufSize/4)
	mux := http.NewServeMux()
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "small") })
	mux.HandleFunc("/html", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<!DOCTYPE html><p>x") })
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, big) })
	mux.HandleFunc("/flush", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "a")
		w.(http.Flusher).Flush()
		io.WriteString(w, "b")
	})
	mux.HandleFunc("/length", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "3")
		io.WriteString(w, "abc")
	})
	mux.HandleFunc("/short", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "abc")
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	mux.HandleFunc("/identity", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Transfer-Encoding", "identity")
		w.(http.Flusher).Flush()
		io.WriteString(w, "until close")
	})
	mux.HandleFunc("/204", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	mux.HandleFunc("/304", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(304)
	})
	mux.HandleFunc("/103", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(103)
		io.WriteString(w, "hinted")
	})
	mux.HandleFunc("/encoded", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		io.WriteString(w, "not really gzip")
	})
	mux.HandleFunc("/nosniff", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil
		io.WriteString(w, "<html>")
	})
	mux.HandleFunc("/echo", echo)

	ours := startServer(t, &Server{Handler: mux})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	std := &http.Server{Handler: mux}
	go std.Serve(l)
	t.Cleanup(func() { std.Close() })
	theirs := l.Addr().String()

	var reqs []string
	for _, path := range []string{"/small", "/html", "/empty", "/big", "/flush", "/length", "/short", "/close", "/identity", "/204", "/304", "/103", "/encoded", "/nosniff", "/missing"} {
		reqs = append(reqs,
			"GET "+path+" HTTP/1.1\r\nHost: t\r\n\r\n",
			"HEAD "+path+" HTTP/1.1\r\nHost: t\r\n\r\n",
			"GET "+path+" HTTP/1.0\r\n\r\n",
			"GET "+path+" HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
			"GET "+path+" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
		)
	}
	reqs = append(reqs,
		post("/echo", "body"),
		"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"+chunked("ab", "cd"),
		"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n",
		"GET http://other/echo HTTP/1.1\r\nHost: t\r\n\r\n",
		"POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nab",
		post("/small", strings.Repeat("u", 300<<10)),
		"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab",
		"POST /small HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab",
		"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
		"POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab",
		// Framing that must not desynchronize: refused, or read exactly.
		"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n"+chunked("ab"),
		"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity, chunked\r\n\r\n"+chunked("ab"),
		"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"+chunked("ab"),
		"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\n"+chunked("ab"),
		"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n"+chunked("ab"),
		"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length : 2\r\n\r\nab",
		"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: +2\r\n\r\nab",
		"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2, 2\r\n\r\nab",
		"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",
		"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\nab\r\n0\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nab\r\n0\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000002\r\nab\r\n0\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2;ext=1\r\nab\r\n0\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2;"+strings.Repeat("e", 5<<10)+"\r\nab\r\n0\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\n0\n\n",
		"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\nX-Trailer: "+strings.Repeat("t", 5<<10)+"\r\n\r\n",
		"POST /small HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"+chunked(strings.Repeat("c", 100<<10)),
		"POST /small HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"GET /echo HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n",
		"GET /echo HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, close\r\n\r\n",
		"GET /echo HTTP/1.1\r\nHost: t\r\nConnection: Close\r\n\r\n",
		"GET /echo HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
		"HEAD /big HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	)
	for _, req := range reqs {
		if strings.HasPrefix(req, "GET /103 HTTP/1.0") {
			// net/http sends a 103 to an HTTP/1.0 client, which RFC 9110 section
			// 15.2 forbids; this server drops it.
			continue
		}
		name := req
		if i := strings.Index(req, "\r\n\r\n"); i >= 0 {
			name = strings.ReplaceAll(req[:i], "\r\n", " | ")
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			want := exchange(t, theirs, req)
			got := exchange(t, ours, req)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("answers differ (-net/http +httpserver):\n%s", diff)
			}
		})
	}
}

// exchanged is what a client sees of an answer.
type exchanged struct {
	Raw    string // status line, headers but Date, transfer encoding; or the status of an error answer
	Body   string // and the error that cut it short, if any
	Reused bool   // a second request on the connection was answered
}

func exchange(t *testing.T, addr, req string) exchanged {
	c := dial(t, addr)
	go io.WriteString(c.Conn, req+req) // the server may stop reading
	method := strings.Fields(req)[0]
	res, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode == http.StatusContinue {
		if res, err = http.ReadResponse(c.br, &http.Request{Method: method}); err != nil {
			t.Fatal(err)
		}
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		body = append(body, "; "+err.Error()...)
	}
	res.Header.Del("Date")
	if res.Close && res.StatusCode >= 400 &&
		(strings.HasPrefix(string(body), strconv.Itoa(res.StatusCode)+" ") || string(body) == "Unsupported transfer encoding") {
		// The server's own error answer (before any handler): its text and
		// Content-Length differ from net/http's by design.
		return exchanged{Raw: res.Proto + " " + strconv.Itoa(res.StatusCode) + " (server error)\n"}
	}
	var head strings.Builder
	head.WriteString(res.Proto + " " + res.Status + "\n")
	res.Header.Write(&head)
	head.WriteString("te=" + strings.Join(res.TransferEncoding, ",") + "\n")
	ex := exchanged{Raw: head.String(), Body: string(body)}
	if res2, err := http.ReadResponse(c.br, &http.Request{Method: method}); err == nil {
		io.Copy(io.Discard, res2.Body)
		ex.Reused = true
	}
	return ex
}
