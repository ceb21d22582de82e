package main

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/h1transport"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/httpserver"
)

// startProxy serves a floor proxy to upstream on a loopback port and returns its URL.
func startProxy(t *testing.T, upstream string) string {
	t.Helper()
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := h1transport.New(h1transport.Options{Fallback: http.DefaultTransport})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := &httpserver.Server{Handler: &proxy{rt: rt, target: target, log: log}, Logger: log}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestForwardsAnswersAndStreams: the request reaches the upstream with its path,
// query, headers and body; a complete answer comes back with its Content-Length, a
// stream event by event; an unreachable upstream is a 502.
func TestForwardsAnswersAndStreams(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/v1/chat/completions" || r.URL.RawQuery != "a=1" || r.Header.Get("Authorization") != "Bearer k" || string(body) != `{"x":1}` {
			http.Error(w, "unexpected request "+r.URL.String()+" "+string(body), http.StatusTeapot)
			return
		}
		if r.Header.Get("Accept") != "text/event-stream" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"ok":true}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-release // the first event must reach the caller before the second exists
		_, _ = io.WriteString(w, "data: two\n\n")
	}))
	defer up.Close()
	base := startProxy(t, up.URL)

	post := func(accept string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions?a=1", strings.NewReader(`{"x":1}`))
		req.Header.Set("Authorization", "Bearer k")
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	resp := post("application/json")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != `{"ok":true}` || resp.ContentLength != int64(len(body)) {
		t.Fatalf("answer: %d %q, Content-Length %d", resp.StatusCode, body, resp.ContentLength)
	}

	resp = post("text/event-stream")
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	if line, err := rd.ReadString('\n'); err != nil || line != "data: one\n" {
		t.Fatalf("first event %q, %v", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(rd)
	if string(rest) != "\ndata: two\n\n" {
		t.Fatalf("rest of the stream %q", rest)
	}

	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close()
	resp, err := http.Post(startProxy(t, goneURL)+"/v1/models", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("unreachable upstream: %d, want 502", resp.StatusCode)
	}
}
