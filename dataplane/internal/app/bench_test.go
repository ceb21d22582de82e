package app_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// benchUpstream answers every call with a canned completion, without parsing, so the
// benchmark measures the gateway rather than the fake provider.
func benchUpstream() http.Handler {
	nonStream := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"up-echo","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, this is a short answer."},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":3}}}`)
	var stream bytes.Buffer
	for i := range 20 {
		fmt.Fprintf(&stream, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up-echo\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok%d \"}}],\"usage\":null}\n\n", i)
	}
	stream.WriteString("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up-echo\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":20,\"total_tokens\":31}}\n\ndata: [DONE]\n\n")
	streamBody := stream.Bytes()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = w.Write(streamBody)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(nonStream)
	})
}

// BenchmarkChatCompletions drives an in-process gateway (config from an embedded NATS,
// usage published to it) in front of an in-process upstream, in parallel over keep-alive
// connections. "direct" calls the upstream without the gateway, as the baseline.
func BenchmarkChatCompletions(b *testing.B) {
	h := startHarness(b, harnessOptions{upstream: benchUpstream()})
	up := h.upstream.srv

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024}}
	b.Cleanup(client.CloseIdleConnections)
	messages := `"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello in one short sentence, please."}]`
	cases := []struct {
		name   string
		url    string
		body   string
		stream bool
	}{
		{"non-streaming/direct", up.URL + "/v1/chat/completions", `{"model":"up-echo",` + messages + `}`, false},
		{"non-streaming/gateway", h.url + "/v1/chat/completions", `{"model":"echo",` + messages + `}`, false},
		{"streaming/direct", up.URL + "/v1/chat/completions", `{"model":"up-echo","stream":true,` + messages + `}`, true},
		{"streaming/gateway", h.url + "/v1/chat/completions", `{"model":"echo","stream":true,` + messages + `}`, true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("POST", c.url, strings.NewReader(c.body))
					req.Header.Set("Authorization", "Bearer "+h.fx.key)
					req.Header.Set("Content-Type", "application/json")
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || n == 0 {
						b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
					}
				}
			})
		})
	}
}

// BenchmarkSurfaces measures each caller surface against each provider format through
// the gateway (the multi-format fake provider of upstreams_test.go answers), streamed
// and not. Compare with chat→openai, the pass-through path, to see what a
// translation costs.
func BenchmarkSurfaces(b *testing.B) {
	h := startHarness(b, harnessOptions{})
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024}}
	b.Cleanup(client.CloseIdleConnections)
	bodies := map[string]string{
		"/v1/chat/completions": `{"model":%q,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello."}]%s}`,
		"/v1/messages":         `{"model":%q,"max_tokens":64,"system":"You are terse.","messages":[{"role":"user","content":"Say hello."}]%s}`,
		"/v1/responses":        `{"model":%q,"instructions":"You are terse.","input":"Say hello."%s}`,
	}
	for _, c := range []struct{ name, path, model string }{
		{"chat→openai", "/v1/chat/completions", "echo"},
		{"chat→anthropic", "/v1/chat/completions", "claude"},
		{"chat→gemini", "/v1/chat/completions", "gemini"},
		{"messages→anthropic", "/v1/messages", "claude"},
		{"messages→openai", "/v1/messages", "echo"},
		{"responses→openai", "/v1/responses", "echo"},
	} {
		for _, stream := range []string{"", `,"stream":true`} {
			name := c.name
			if stream != "" {
				name += "/stream"
			}
			body := fmt.Sprintf(bodies[c.path], c.model, stream)
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						req, _ := http.NewRequest("POST", h.url+c.path, strings.NewReader(body))
						req.Header.Set("Authorization", "Bearer "+h.fx.key)
						resp, err := client.Do(req)
						if err != nil {
							b.Fatal(err)
						}
						n, _ := io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 || n == 0 {
							b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
						}
					}
				})
			})
		}
	}
}
