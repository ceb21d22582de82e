package demoupstream

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// benchChatBody is a typical small chat request: a system prompt and one
// user turn of a few sentences.
const benchChatBody = `{"model":"demo-chat","messages":[` +
	`{"role":"system","content":"You are a helpful assistant. Answer briefly."},` +
	`{"role":"user","content":"Summarise the main trade-offs of running an AI gateway in front of several model providers, in two sentences."}]`

// discardWriter is a ResponseWriter that keeps nothing, so handler
// benchmarks measure the handler alone.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(status int)      { d.status = status }
func (d *discardWriter) Write(b []byte) (int, error) { d.n += len(b); return len(b), nil }
func (d *discardWriter) Flush()                      {}

// reusableBody lets one request be served many times without allocating.
type reusableBody struct{ bytes.Reader }

func (*reusableBody) Close() error { return nil }

func BenchmarkChatCompletion(b *testing.B) {
	modes := []struct {
		name string
		body string
	}{
		{"non-streaming", benchChatBody + `}`},
		{"streaming", benchChatBody + `,"stream":true,"stream_options":{"include_usage":true}}`},
	}
	for _, m := range modes {
		b.Run("handler/"+m.name, func(b *testing.B) {
			h := New(Options{})
			req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
			req.ContentLength = int64(len(m.body))
			body := &reusableBody{}
			w := &discardWriter{h: make(http.Header)}
			b.ReportAllocs()
			b.SetBytes(int64(len(m.body)))
			for b.Loop() {
				body.Reset([]byte(m.body))
				req.Body = body
				clear(w.h)
				w.status, w.n = 0, 0
				h.ServeHTTP(w, req)
				if w.status != http.StatusOK || w.n == 0 {
					b.Fatalf("status %d, %d bytes", w.status, w.n)
				}
			}
		})
		b.Run("loopback/"+m.name, func(b *testing.B) {
			srv := httptest.NewServer(New(Options{}))
			defer srv.Close()
			client := srv.Client()
			b.ReportAllocs()
			for b.Loop() {
				resp, err := client.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(m.body))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}

func BenchmarkEmbeddings(b *testing.B) {
	h := New(Options{})
	const payload = `{"model":"demo-embed","input":["the quick brown fox","jumps over the lazy dog"]}`
	req := httptest.NewRequest(http.MethodPost, "/v1/embeddings", nil)
	body := &reusableBody{}
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		body.Reset([]byte(payload))
		req.Body = body
		clear(w.h)
		h.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
}
