package demoupstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Wire shapes as a client sees them. Pointers tell null from absent.

type usageJSON struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

type completionJSON struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage             *usageJSON `json:"usage"`
	SystemFingerprint string     `json:"system_fingerprint"`
}

type chunkJSON struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Role    *string `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usageJSON `json:"usage"`
}

type errorJSON struct {
	Error *struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

type embeddingsJSON struct {
	Object string `json:"object"`
	Data   []struct {
		Object    string          `json:"object"`
		Index     int             `json:"index"`
		Embedding json.RawMessage `json:"embedding"`
	} `json:"data"`
	Model string `json:"model"`
	Usage struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	} `json:"usage"`
}

func fixedNow() time.Time { return time.Unix(1700000123, 0) }

func newTestServer(t *testing.T, opts Options) *httptest.Server {
	t.Helper()
	if opts.Now == nil {
		opts.Now = fixedNow
	}
	srv := httptest.NewServer(New(opts))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, srv *httptest.Server, method, path, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s %s: %v", method, path, err)
	}
	return resp, b
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, b)
	}
	return v
}

// chatBody builds a chat request with one user message plus extra fields.
func chatBody(user string, extra string) string {
	b, _ := json.Marshal(user)
	if extra != "" {
		extra = "," + extra
	}
	return `{"model":"demo-chat","messages":[{"role":"user","content":` + string(b) + `}]` + extra + `}`
}

// readEvents reads SSE data payloads until [DONE]; done reports whether
// [DONE] was seen, err is the read error that ended the stream otherwise.
func readEvents(r io.Reader) (events []string, done bool, err error) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return events, false, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			return events, false, fmt.Errorf("not a data line: %q", line)
		}
		if data == "[DONE]" {
			if rest, _ := io.ReadAll(br); strings.TrimSpace(string(rest)) != "" {
				return events, true, fmt.Errorf("data after [DONE]: %q", rest)
			}
			return events, true, nil
		}
		events = append(events, data)
	}
}

// streamed is a stream reassembled the way a client would.
type streamed struct {
	content      string
	pieces       int
	finishReason string
	usage        *usageJSON
	usageNulls   int
	chunks       int
}

func collectStream(t *testing.T, events []string) streamed {
	t.Helper()
	var s streamed
	if len(events) < 2 {
		t.Fatalf("got %d events, want at least 2", len(events))
	}
	first := decode[chunkJSON](t, []byte(events[0]))
	if len(first.Choices) != 1 || first.Choices[0].Delta.Role == nil || *first.Choices[0].Delta.Role != "assistant" {
		t.Fatalf("first chunk has no assistant role: %s", events[0])
	}
	for i, ev := range events {
		c := decode[chunkJSON](t, []byte(ev))
		if c.Object != "chat.completion.chunk" || c.ID != first.ID || c.Model != "demo-chat" || c.Created != fixedNow().Unix() {
			t.Errorf("chunk %d header = %q %q %q %d", i, c.Object, c.ID, c.Model, c.Created)
		}
		if strings.Contains(ev, `"usage":null`) {
			s.usageNulls++
		}
		s.chunks++
		if len(c.Choices) == 0 {
			if c.Usage == nil {
				t.Fatalf("chunk %d has neither choices nor usage: %s", i, ev)
			}
			if i != len(events)-1 {
				t.Errorf("usage chunk %d is not the last", i)
			}
			s.usage = c.Usage
			continue
		}
		ch := c.Choices[0]
		if ch.FinishReason != nil {
			s.finishReason = *ch.FinishReason
			continue
		}
		if s.finishReason != "" {
			t.Errorf("chunk %d after finish_reason: %s", i, ev)
		}
		if i > 0 && ch.Delta.Content != nil {
			s.content += *ch.Delta.Content
			s.pieces++
		}
	}
	return s
}

func stream(t *testing.T, srv *httptest.Server, body string) streamed {
	t.Helper()
	resp, b := do(t, srv, http.MethodPost, "/v1/chat/completions", body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type = %q", ct)
	}
	events, done, err := readEvents(bytes.NewReader(b))
	if err != nil || !done {
		t.Fatalf("stream ended without [DONE] (err %v): %s", err, b)
	}
	return collectStream(t, events)
}

func TestChatCompletion(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("abcd ", 60) // 300 runes
	tests := []struct {
		name        string
		body        string
		wantContent string
		wantPrompt  int
		wantPieces  int
	}{
		{
			name:        "system and user",
			body:        `{"model":"demo-chat","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"Hi there"}]}`,
			wantContent: "Hello from the demo model. You said: Hi there",
			wantPrompt:  (4 + 3) + (2 + 3) + 3,
			wantPieces:  9,
		},
		{
			name: "content parts",
			body: `{"model":"demo-chat","n":3,"messages":[{"role":"user","content":[` +
				`{"type":"text","text":"Describe"},{"type":"image_url","image_url":{"url":"https://example.com/a.png"}},{"type":"text","text":"this please"}]}]}`,
			wantContent: "Hello from the demo model. You said: Describe\nthis please",
			wantPrompt:  (5 + 3 + 85) + 3,
			wantPieces:  10,
		},
		{
			name:        "last user message wins",
			body:        `{"model":"demo-chat","messages":[{"role":"user","content":"first"},{"role":"assistant","content":null},{"role":"user","content":"  second  "}]}`,
			wantContent: "Hello from the demo model. You said: second",
			wantPrompt:  (2 + 3) + (0 + 3) + (3 + 3) + 3,
			wantPieces:  8,
		},
		{
			name:        "no user message",
			body:        `{"model":"demo-chat","messages":[{"role":"system","content":"rules"}]}`,
			wantContent: "Hello from the demo model.",
			wantPrompt:  (2 + 3) + 3,
			wantPieces:  5,
		},
		{
			name:        "long message truncated",
			body:        chatBody(long, ""),
			wantContent: "Hello from the demo model. You said: " + long[:199] + "...",
			wantPrompt:  (75 + 3) + 3,
			wantPieces:  7 + 40,
		},
		{
			name:        "escaping and unicode",
			body:        chatBody("say \"hi\"\t<b>&</b> \\ ünïcødé 🙂", ""),
			wantContent: "Hello from the demo model. You said: say \"hi\"\t<b>&</b> \\ ünïcødé 🙂",
			wantPrompt:  (8 + 3) + 3,
			wantPieces:  13,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newTestServer(t, Options{})
			resp, b := do(t, srv, http.MethodPost, "/v1/chat/completions", tt.body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if !strings.HasPrefix(resp.Header.Get("X-Request-Id"), "req_") {
				t.Errorf("X-Request-Id = %q", resp.Header.Get("X-Request-Id"))
			}
			got := decode[completionJSON](t, b)
			if got.Object != "chat.completion" || got.Model != "demo-chat" || got.Created != fixedNow().Unix() ||
				!strings.HasPrefix(got.ID, "chatcmpl-") || got.SystemFingerprint == "" {
				t.Errorf("header fields = %q %q %d %q %q", got.Object, got.Model, got.Created, got.ID, got.SystemFingerprint)
			}
			if len(got.Choices) != 1 {
				t.Fatalf("got %d choices, want 1", len(got.Choices))
			}
			c := got.Choices[0]
			if c.Message.Role != "assistant" || c.FinishReason != "stop" || c.Index != 0 {
				t.Errorf("choice = %+v", c)
			}
			if c.Message.Content != tt.wantContent {
				t.Errorf("content = %q, want %q", c.Message.Content, tt.wantContent)
			}
			want := usageJSON{PromptTokens: tt.wantPrompt, CompletionTokens: tt.wantPieces, TotalTokens: tt.wantPrompt + tt.wantPieces}
			if u := got.Usage; u == nil || u.PromptTokensDetails == nil || u.CompletionTokensDetails == nil {
				t.Fatalf("usage incomplete: %s", b)
			}
			if u := *got.Usage; u.PromptTokens != want.PromptTokens || u.CompletionTokens != want.CompletionTokens ||
				u.TotalTokens != want.TotalTokens || u.PromptTokensDetails.CachedTokens != 0 {
				t.Errorf("usage = %+v, want %+v", u, want)
			}

			_, again := do(t, srv, http.MethodPost, "/v1/chat/completions", tt.body)
			if !bytes.Equal(b, again) {
				t.Errorf("same request, different bodies:\n%s\n%s", b, again)
			}
		})
	}
}

func TestChatCompletionStream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		user string
		max  string // extra request fields
	}{
		{name: "short", user: "Hi there"},
		{name: "multiline", user: "line one\n\nline  two\ttabbed"},
		{name: "escaping", user: `quote " backslash \ control ` + "\x01" + ` emoji 🙂`},
		{name: "max_tokens", user: "one two three four", max: `"max_tokens":4`},
		{name: "max_completion_tokens", user: "one two three four", max: `"max_tokens":9,"max_completion_tokens":2`},
	}
	for _, tt := range tests {
		for _, includeUsage := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/include_usage=%t", tt.name, includeUsage), func(t *testing.T) {
				t.Parallel()
				srv := newTestServer(t, Options{})
				_, b := do(t, srv, http.MethodPost, "/v1/chat/completions", chatBody(tt.user, tt.max))
				plain := decode[completionJSON](t, b)

				extra := fmt.Sprintf(`"stream":true,"stream_options":{"include_usage":%t}`, includeUsage)
				if tt.max != "" {
					extra += "," + tt.max
				}
				got := stream(t, srv, chatBody(tt.user, extra))

				if got.content != plain.Choices[0].Message.Content {
					t.Errorf("streamed content %q, non-streaming %q", got.content, plain.Choices[0].Message.Content)
				}
				if got.finishReason != plain.Choices[0].FinishReason {
					t.Errorf("finish_reason %q, non-streaming %q", got.finishReason, plain.Choices[0].FinishReason)
				}
				if got.pieces != plain.Usage.CompletionTokens {
					t.Errorf("%d content chunks, completion_tokens %d", got.pieces, plain.Usage.CompletionTokens)
				}
				if !includeUsage {
					if got.usage != nil || got.usageNulls != 0 {
						t.Errorf("usage sent without include_usage: %+v, %d nulls", got.usage, got.usageNulls)
					}
					return
				}
				if got.usage == nil {
					t.Fatal("no usage chunk")
				}
				if !reflect.DeepEqual(got.usage, plain.Usage) {
					t.Errorf("streamed usage %+v, non-streaming %+v", *got.usage, *plain.Usage)
				}
				if got.usageNulls != got.chunks-1 {
					t.Errorf(`%d of %d chunks carry "usage":null, want all but the last`, got.usageNulls, got.chunks)
				}
			})
		}
	}
}

func TestStreamWithDelays(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, Options{FirstTokenDelay: time.Millisecond, TokenDelay: time.Millisecond})
	got := stream(t, srv, chatBody("paced reply", `"stream":true`))
	if want := "Hello from the demo model. You said: paced reply"; got.content != want {
		t.Errorf("content = %q, want %q", got.content, want)
	}
	_, b := do(t, srv, http.MethodPost, "/v1/chat/completions", chatBody("paced reply", ""))
	if c := decode[completionJSON](t, b); c.Choices[0].Message.Content != got.content {
		t.Errorf("non-streaming content = %q", c.Choices[0].Message.Content)
	}
}

func TestMaxTokens(t *testing.T) {
	t.Parallel()
	// "Hello from the demo model. You said: Hi there" is 9 pieces.
	tests := []struct {
		name       string
		extra      string
		want       string
		wantTokens int
		wantFinish string
	}{
		{"max_tokens", `"max_tokens":3`, "Hello from the", 3, "length"},
		{"max_completion_tokens wins", `"max_tokens":5,"max_completion_tokens":2`, "Hello from", 2, "length"},
		{"exact fit", `"max_tokens":9`, "Hello from the demo model. You said: Hi there", 9, "stop"},
		{"roomy", `"max_completion_tokens":100`, "Hello from the demo model. You said: Hi there", 9, "stop"},
		{"zero is no limit", `"max_tokens":0`, "Hello from the demo model. You said: Hi there", 9, "stop"},
	}
	srv := newTestServer(t, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, b := do(t, srv, http.MethodPost, "/v1/chat/completions", chatBody("Hi there", tt.extra))
			got := decode[completionJSON](t, b)
			c := got.Choices[0]
			if c.Message.Content != tt.want || c.FinishReason != tt.wantFinish || got.Usage.CompletionTokens != tt.wantTokens {
				t.Errorf("got %q %q %d, want %q %q %d", c.Message.Content, c.FinishReason, got.Usage.CompletionTokens,
					tt.want, tt.wantFinish, tt.wantTokens)
			}
			s := stream(t, srv, chatBody("Hi there", tt.extra+`,"stream":true`))
			if s.content != tt.want || s.finishReason != tt.wantFinish || s.pieces != tt.wantTokens {
				t.Errorf("stream got %q %q %d, want %q %q %d", s.content, s.finishReason, s.pieces,
					tt.want, tt.wantFinish, tt.wantTokens)
			}
		})
	}
}

func TestAPIKey(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, Options{APIKey: "sk-demo"})
	tests := []struct {
		name   string
		auth   string
		status int
	}{
		{"missing", "", http.StatusUnauthorized},
		{"wrong", "Bearer sk-wrong", http.StatusUnauthorized},
		{"prefix of key", "Bearer sk-", http.StatusUnauthorized},
		{"no scheme", "sk-demo", http.StatusUnauthorized},
		{"basic", "Basic c2stZGVtbw==", http.StatusUnauthorized},
		{"right", "Bearer sk-demo", http.StatusOK},
	}
	for _, tt := range tests {
		for _, ep := range []struct{ method, path, body string }{
			{http.MethodPost, "/v1/chat/completions", chatBody("hi", "")},
			{http.MethodPost, "/v1/embeddings", `{"model":"demo-embed","input":"hi"}`},
			{http.MethodGet, "/v1/models", ""},
		} {
			t.Run(tt.name+ep.path, func(t *testing.T) {
				t.Parallel()
				var hdr []string
				if tt.auth != "" {
					hdr = []string{"Authorization", tt.auth}
				}
				resp, b := do(t, srv, ep.method, ep.path, ep.body, hdr...)
				if resp.StatusCode != tt.status {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
				}
				if tt.status == http.StatusUnauthorized {
					e := decode[errorJSON](t, b)
					if e.Error == nil || e.Error.Code == nil || *e.Error.Code != "invalid_api_key" || e.Error.Type != "invalid_request_error" {
						t.Errorf("error body = %s", b)
					}
				}
			})
		}
	}
}

func TestStatusInjection(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, Options{})
	tests := []struct {
		user       string
		status     int
		wantType   string
		retryAfter string
	}{
		{"[[status:429]]", 429, "requests", "1"},
		{"please fail [[status:500]] now", 500, "server_error", ""},
		{"[[status:503]]", 503, "server_error", "1"},
		{"[[status:502]]", 502, "server_error", ""},
		{"[[status:400]]", 400, "invalid_request_error", ""},
		{"[[status:401]]", 401, "invalid_request_error", ""},
		{"200 with an error body [[status:200]]", 200, "invalid_request_error", ""},
		{"[[sleep:1ms]] [[status:429]]", 429, "requests", "1"},
	}
	for _, tt := range tests {
		for _, streaming := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%t", tt.user, streaming), func(t *testing.T) {
				t.Parallel()
				resp, b := do(t, srv, http.MethodPost, "/v1/chat/completions", chatBody(tt.user, fmt.Sprintf(`"stream":%t`, streaming)))
				if resp.StatusCode != tt.status {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q", ct)
				}
				if got := resp.Header.Get("Retry-After"); got != tt.retryAfter {
					t.Errorf("Retry-After = %q, want %q", got, tt.retryAfter)
				}
				e := decode[errorJSON](t, b)
				if e.Error == nil || e.Error.Type != tt.wantType || e.Error.Message == "" {
					t.Errorf("error body = %s", b)
				}
			})
		}
	}

	// Malformed triggers are plain text.
	for _, user := range []string{"[[status:99]]", "[[status:600]]", "[[status:42x]]", "[[status:4290]]", "[[ status:429 ]]", "[[status:429"} {
		t.Run("ignored "+user, func(t *testing.T) {
			t.Parallel()
			resp, b := do(t, srv, http.MethodPost, "/v1/chat/completions", chatBody(user, ""))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			if got := decode[completionJSON](t, b); !strings.HasSuffix(got.Choices[0].Message.Content, user) {
				t.Errorf("content = %q", got.Choices[0].Message.Content)
			}
		})
	}
}

func TestDropInjection(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, Options{})

	t.Run("stream", func(t *testing.T) {
		t.Parallel()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/chat/completions",
			strings.NewReader(chatBody("[[drop]] bye", `"stream":true,"stream_options":{"include_usage":true}`)))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("do: %v", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		events, done, err := readEvents(resp.Body)
		if done || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("done=%t err=%v, want an unexpected EOF before [DONE]", done, err)
		}
		if len(events) != 2 {
			t.Fatalf("got %d events before the drop, want 2: %q", len(events), events)
		}
		if c := decode[chunkJSON](t, []byte(events[1])); *c.Choices[0].Delta.Content != "Hello" {
			t.Errorf("second chunk = %s", events[1])
		}
	})

	t.Run("non-streaming", func(t *testing.T) {
		t.Parallel()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/chat/completions",
			strings.NewReader(chatBody("[[drop]]", "")))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("got status %d, want the connection dropped", resp.StatusCode)
		}
	})
}

// tracked wraps h to report when each call starts and when it returns,
// panics included.
func tracked(h http.Handler) (_ http.Handler, started, done <-chan struct{}) {
	st, dn := make(chan struct{}, 1), make(chan struct{}, 1)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { dn <- struct{}{} }()
		st <- struct{}{}
		h.ServeHTTP(w, r)
	}), st, dn
}

// within waits for ch, failing the test after a generous deadline.
func within(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: nothing after 5s", what)
	}
}

func TestClientGone(t *testing.T) {
	t.Parallel()
	t.Run("during sleep trigger", func(t *testing.T) {
		t.Parallel()
		h, started, done := tracked(New(Options{}))
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		ctx, cancel := context.WithCancel(t.Context())
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/chat/completions",
			strings.NewReader(chatBody("[[sleep:30s]]", "")))
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() {
			resp, err := srv.Client().Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		within(t, started, "handler start")
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("client error = %v, want context.Canceled", err)
		}
		within(t, done, "handler return after the client went away")
	})

	t.Run("mid-stream", func(t *testing.T) {
		t.Parallel()
		h, _, done := tracked(New(Options{TokenDelay: time.Hour}))
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		ctx, cancel := context.WithCancel(t.Context())
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/chat/completions",
			strings.NewReader(chatBody("a long wait", `"stream":true`)))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		for range 4 { // role chunk and first word, then the upstream waits an hour
			if _, err := br.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
		}
		cancel()
		within(t, done, "handler return after the client went away")
	})
}

func TestEmbeddings(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, Options{})
	embed := func(t *testing.T, body string) (embeddingsJSON, [][]float32, []byte) {
		t.Helper()
		resp, b := do(t, srv, http.MethodPost, "/v1/embeddings", body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		got := decode[embeddingsJSON](t, b)
		vecs := make([][]float32, len(got.Data))
		for i, d := range got.Data {
			if d.Index != i || d.Object != "embedding" {
				t.Errorf("data[%d] = %d %q", i, d.Index, d.Object)
			}
			var s string
			if json.Unmarshal(d.Embedding, &s) == nil {
				vecs[i] = decodeBase64Floats(t, s)
			} else {
				vecs[i] = decode[[]float32](t, d.Embedding)
			}
		}
		return got, vecs, b
	}

	tests := []struct {
		name       string
		body       string
		wantVecs   int
		wantDims   int
		wantTokens int
	}{
		{"string", `{"model":"demo-embed","input":"hello"}`, 1, 8, 2},
		{"array", `{"model":"demo-embed","input":["hello","a longer sentence"]}`, 2, 8, 2 + 5},
		{"dimensions", `{"model":"demo-embed","input":"hello","dimensions":20}`, 1, 20, 2},
		{"base64", `{"model":"demo-embed","input":["hello","x"],"encoding_format":"base64"}`, 2, 8, 2 + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, vecs, b := embed(t, tt.body)
			if got.Object != "list" || got.Model != "demo-embed" || len(vecs) != tt.wantVecs {
				t.Fatalf("response = %s", b)
			}
			if got.Usage.PromptTokens != tt.wantTokens || got.Usage.TotalTokens != tt.wantTokens {
				t.Errorf("usage = %+v, want %d", got.Usage, tt.wantTokens)
			}
			for i, v := range vecs {
				if len(v) != tt.wantDims {
					t.Errorf("vector %d has %d dims, want %d", i, len(v), tt.wantDims)
				}
				var norm float64
				for _, x := range v {
					norm += float64(x) * float64(x)
				}
				if math.Abs(norm-1) > 1e-5 {
					t.Errorf("vector %d has squared norm %v, want 1", i, norm)
				}
			}
			if _, _, again := embed(t, tt.body); !bytes.Equal(b, again) {
				t.Errorf("same request, different bodies:\n%s\n%s", b, again)
			}
		})
	}

	t.Run("same text same vector", func(t *testing.T) {
		t.Parallel()
		_, alone, _ := embed(t, `{"model":"demo-embed","input":"hello"}`)
		_, batch, _ := embed(t, `{"model":"demo-embed","input":["other","hello"]}`)
		_, b64, _ := embed(t, `{"model":"demo-embed","input":"hello","encoding_format":"base64"}`)
		_, wide, _ := embed(t, `{"model":"demo-embed","input":"hello","dimensions":16}`)
		if !reflect.DeepEqual(alone[0], batch[1]) || !reflect.DeepEqual(alone[0], b64[0]) {
			t.Errorf("vectors for %q differ: %v %v %v", "hello", alone[0], batch[1], b64[0])
		}
		if reflect.DeepEqual(batch[0], batch[1]) {
			t.Error("different texts got the same vector")
		}
		if len(wide[0]) != 16 {
			t.Errorf("got %d dims, want 16", len(wide[0]))
		}
	})
}

func decodeBase64Floats(t *testing.T, s string) []float32 {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("base64: %v", err)
	}
	if len(raw)%4 != 0 {
		t.Fatalf("base64 payload of %d bytes", len(raw))
	}
	v := make([]float32, len(raw)/4)
	for i := range v {
		v[i] = math.Float32frombits(uint32(raw[4*i]) | uint32(raw[4*i+1])<<8 | uint32(raw[4*i+2])<<16 | uint32(raw[4*i+3])<<24)
	}
	return v
}

func TestModels(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, Options{})
	resp, b := do(t, srv, http.MethodGet, "/v1/models", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	list := decode[struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}](t, b)
	var ids []string
	for _, m := range list.Data {
		ids = append(ids, m.ID)
		if m.Object != "model" || m.Created == 0 || m.OwnedBy == "" {
			t.Errorf("model = %+v", m)
		}
	}
	if want := []string{ChatModel, ChatMiniModel, EmbeddingModel}; list.Object != "list" || !reflect.DeepEqual(ids, want) {
		t.Errorf("got %q %q, want list %q", list.Object, ids, want)
	}

	resp, b = do(t, srv, http.MethodGet, "/v1/models/demo-embed", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"id":"demo-embed"`) {
		t.Errorf("GET /v1/models/demo-embed = %d %s", resp.StatusCode, b)
	}
}

func TestMalformed(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, Options{})
	tests := []struct {
		name      string
		method    string
		path      string
		body      string
		status    int
		wantParam string
		wantCode  string
		wantAllow string
	}{
		{name: "chat bad json", method: "POST", path: "/v1/chat/completions", body: `{"model":`, status: 400},
		{name: "chat not an object", method: "POST", path: "/v1/chat/completions", body: `[]`, status: 400},
		{name: "chat empty body", method: "POST", path: "/v1/chat/completions", body: ``, status: 400},
		{name: "chat no model", method: "POST", path: "/v1/chat/completions", body: `{"messages":[{"role":"user","content":"hi"}]}`, status: 400, wantParam: "model"},
		{name: "chat no messages", method: "POST", path: "/v1/chat/completions", body: `{"model":"demo-chat","messages":[]}`, status: 400, wantParam: "messages"},
		{name: "chat content number", method: "POST", path: "/v1/chat/completions", body: `{"model":"demo-chat","messages":[{"role":"user","content":42}]}`, status: 400, wantParam: "messages"},
		{name: "chat content parts wrong", method: "POST", path: "/v1/chat/completions", body: `{"model":"demo-chat","messages":[{"role":"user","content":[1]}]}`, status: 400},
		{name: "chat negative max_tokens", method: "POST", path: "/v1/chat/completions", body: chatBody("hi", `"max_tokens":-1`), status: 400, wantParam: "max_tokens"},
		{name: "chat huge body", method: "POST", path: "/v1/chat/completions", body: strings.Repeat(" ", maxBodyBytes+1), status: 413},
		{name: "embeddings bad json", method: "POST", path: "/v1/embeddings", body: `{`, status: 400},
		{name: "embeddings no model", method: "POST", path: "/v1/embeddings", body: `{"input":"hi"}`, status: 400, wantParam: "model"},
		{name: "embeddings number", method: "POST", path: "/v1/embeddings", body: `{"model":"demo-embed","input":42}`, status: 400, wantParam: "input"},
		{name: "embeddings tokens", method: "POST", path: "/v1/embeddings", body: `{"model":"demo-embed","input":[1,2,3]}`, status: 400, wantParam: "input"},
		{name: "embeddings empty array", method: "POST", path: "/v1/embeddings", body: `{"model":"demo-embed","input":[]}`, status: 400, wantParam: "input"},
		{name: "embeddings empty string", method: "POST", path: "/v1/embeddings", body: `{"model":"demo-embed","input":["a",""]}`, status: 400, wantParam: "input"},
		{name: "embeddings format", method: "POST", path: "/v1/embeddings", body: `{"model":"demo-embed","input":"a","encoding_format":"hex"}`, status: 400, wantParam: "encoding_format"},
		{name: "embeddings dimensions", method: "POST", path: "/v1/embeddings", body: `{"model":"demo-embed","input":"a","dimensions":-1}`, status: 400, wantParam: "dimensions"},
		{name: "chat GET", method: "GET", path: "/v1/chat/completions", status: 405, wantAllow: "POST"},
		{name: "embeddings PUT", method: "PUT", path: "/v1/embeddings", body: `{}`, status: 405, wantAllow: "POST"},
		{name: "models POST", method: "POST", path: "/v1/models", body: `{}`, status: 405, wantAllow: "GET"},
		{name: "unknown path", method: "GET", path: "/v1/nope", status: 404},
		{name: "root", method: "GET", path: "/", status: 404},
		{name: "unknown model", method: "GET", path: "/v1/models/nope", status: 404, wantParam: "model", wantCode: "model_not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, b := do(t, srv, tt.method, tt.path, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if got := resp.Header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
			e := decode[errorJSON](t, b)
			if e.Error == nil || e.Error.Message == "" || e.Error.Type != "invalid_request_error" {
				t.Fatalf("error body = %s", b)
			}
			if got := deref(e.Error.Param); got != tt.wantParam {
				t.Errorf("param = %q, want %q", got, tt.wantParam)
			}
			if got := deref(e.Error.Code); got != tt.wantCode {
				t.Errorf("code = %q, want %q", got, tt.wantCode)
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
