// Package demoupstream is a deterministic, OpenAI-compatible HTTP upstream:
// the fake "edge we don't own" that the gateway proxies to in `make dev`, in
// e2e tests and in latency benchmarks.
//
// It serves POST /v1/chat/completions (plain and SSE streaming),
// POST /v1/embeddings and GET /v1/models. Replies depend only on the request,
// so the same request always yields the same content, usage and ids. The last
// user message may carry fault-injection triggers:
//
//	[[status:429]]   reply with that status (200-599) and an OpenAI error body
//	[[sleep:250ms]]  wait that long first (capped at 30s, ends with the request)
//	[[drop]]         abort the connection (streaming: after two chunks)
//
// It is not a model, does no tokenization (token counts are estimates from
// text length) and keeps no state between requests.
package demoupstream

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configures the demo upstream. The zero value is a usable,
// unauthenticated upstream with no artificial latency.
type Options struct {
	// APIKey, when non-empty, is required as "Authorization: Bearer <APIKey>".
	APIKey string
	// FirstTokenDelay is waited before the first chunk of a stream (and
	// before a non-streaming reply), like a model's time to first token.
	FirstTokenDelay time.Duration
	// TokenDelay is waited between streamed content chunks. A non-streaming
	// reply waits FirstTokenDelay + TokenDelay*(completion_tokens-1) in one
	// go, so both modes take as long to complete.
	TokenDelay time.Duration
	// Logger receives per-request diagnostics at debug level and internal
	// failures at error level. Nil discards.
	Logger *slog.Logger
	// Now is the clock behind "created" timestamps. Nil means time.Now; a
	// fixed clock makes whole response bodies byte-identical.
	Now func() time.Time
}

// Models listed by GET /v1/models. Chat and embeddings accept any model name
// and echo it back; these are merely the names a client can discover.
const (
	ChatModel      = "demo-chat"
	ChatMiniModel  = "demo-chat-mini"
	EmbeddingModel = "demo-embed"
)

const (
	// maxBodyBytes bounds request bodies; larger ones get 413.
	maxBodyBytes = 8 << 20
	// maxPooledBytes keeps one huge request from pinning memory in the pool.
	maxPooledBytes = 1 << 20
	// modelsCreated is the fixed "created" of listed models.
	modelsCreated = 1700000000
	ownedBy       = "gatehouse-demo"
)

// errClientGone marks failures caused by the client going away (write
// errors, cancelled request context). Nothing more can be written, so such
// errors are only logged at debug level.
var errClientGone = errors.New("client gone")

// apiError is an error shown to the client as an OpenAI error object. msg
// must be safe to show; err holds the detail, which is only logged.
type apiError struct {
	status     int
	typ        string
	code       string // empty renders as null
	param      string // empty renders as null
	msg        string
	retryAfter bool
	err        error
}

func (e *apiError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%d %s: %v", e.status, e.msg, e.err)
	}
	return strconv.Itoa(e.status) + " " + e.msg
}

func (e *apiError) Unwrap() error { return e.err }

func badRequest(msg, param string, err error) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", param: param, msg: msg, err: err}
}

// server is the http.Handler returned by New. It is immutable after New
// apart from the scratch pool.
type server struct {
	apiKey          []byte
	firstTokenDelay time.Duration
	tokenDelay      time.Duration
	log             *slog.Logger
	now             func() time.Time

	pool sync.Pool // *scratch

	// responses keeps the last answers of the Responses API (see responses.go).
	kept storedResponses

	// Pre-encoded bodies and header values. Header values are shared
	// between responses to spare an allocation each; they are never
	// modified in place, and their capacity equals their length so that an
	// append by a wrapping middleware copies instead of sharing.
	modelsBody  []byte
	modelBodies map[string][]byte
	hdrJSON     []string
	hdrSSE      []string
	hdrNoCache  []string
	hdrNoBuffer []string
	hdrOne      []string
	allowGet    []string
	allowPost   []string
}

// scratch is per-request working memory, pooled.
type scratch struct {
	in  bytes.Buffer
	out []byte
}

// New returns the demo upstream handler.
func New(opts Options) http.Handler {
	s := &server{
		firstTokenDelay: opts.FirstTokenDelay,
		tokenDelay:      opts.TokenDelay,
		log:             opts.Logger,
		now:             opts.Now,
		hdrJSON:         header("application/json"),
		hdrSSE:          header("text/event-stream; charset=utf-8"),
		hdrNoCache:      header("no-cache"),
		hdrNoBuffer:     header("no"),
		hdrOne:          header("1"),
		allowGet:        header(http.MethodGet),
		allowPost:       header(http.MethodPost),
		modelBodies:     make(map[string][]byte, 3),
	}
	if opts.APIKey != "" {
		s.apiKey = []byte(opts.APIKey)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.pool.New = func() any { return &scratch{out: make([]byte, 0, 4096)} }

	list := []byte(`{"object":"list","data":[`)
	for i, id := range []string{ChatModel, ChatMiniModel, EmbeddingModel} {
		if i > 0 {
			list = append(list, ',')
		}
		m := appendModel(nil, id)
		s.modelBodies[id] = m
		list = append(list, m...)
	}
	s.modelsBody = append(list, "]}"...)
	return s
}

func header(v string) []string { return []string{v}[:1:1] }

func appendModel(b []byte, id string) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, id)
	b = append(b, `,"object":"model","created":`...)
	b = strconv.AppendInt(b, modelsCreated, 10)
	b = append(b, `,"owned_by":"`+ownedBy+`"}`...)
	return b
}

// ServeHTTP adapts the error-returning routes to HTTP.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := s.route(w, r); err != nil {
		s.writeError(w, r, err)
	}
}

// route holds every route of the demo upstream.
func (s *server) route(w http.ResponseWriter, r *http.Request) error {
	switch p := r.URL.Path; {
	case p == "/v1/chat/completions":
		if err := s.admit(w, r, http.MethodPost); err != nil {
			return err
		}
		return s.chatCompletions(w, r)
	case p == "/v1/responses":
		if err := s.admit(w, r, http.MethodPost); err != nil {
			return err
		}
		return s.responses(w, r)
	case strings.HasPrefix(p, "/v1/responses/"):
		method := http.MethodGet
		if r.Method == http.MethodDelete && !strings.HasSuffix(p, "/input_items") {
			method = http.MethodDelete
		}
		if err := s.admit(w, r, method); err != nil {
			return err
		}
		return s.storedResponse(w, r, strings.TrimPrefix(p, "/v1/responses/"))
	case p == "/v1/embeddings":
		if err := s.admit(w, r, http.MethodPost); err != nil {
			return err
		}
		return s.embeddings(w, r)
	case p == "/v1/models":
		if err := s.admit(w, r, http.MethodGet); err != nil {
			return err
		}
		return writeBody(w, http.StatusOK, s.hdrJSON, s.modelsBody)
	case strings.HasPrefix(p, "/v1/models/"):
		if err := s.admit(w, r, http.MethodGet); err != nil {
			return err
		}
		return s.model(w, strings.TrimPrefix(p, "/v1/models/"))
	default:
		return &apiError{
			status: http.StatusNotFound,
			typ:    "invalid_request_error",
			msg:    "Invalid URL (" + r.Method + " " + p + ")",
		}
	}
}

// admit checks the method, then the API key.
func (s *server) admit(w http.ResponseWriter, r *http.Request, method string) error {
	if r.Method != method {
		if method == http.MethodGet {
			w.Header()["Allow"] = s.allowGet
		} else {
			w.Header()["Allow"] = s.allowPost
		}
		return &apiError{
			status: http.StatusMethodNotAllowed,
			typ:    "invalid_request_error",
			msg:    "Method " + r.Method + " is not allowed for " + r.URL.Path + ".",
		}
	}
	if s.apiKey == nil {
		return nil
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(token), s.apiKey) != 1 {
		msg := "Incorrect API key provided."
		if !ok {
			msg = "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
		}
		return &apiError{status: http.StatusUnauthorized, typ: "invalid_request_error", code: "invalid_api_key", msg: msg}
	}
	return nil
}

func (s *server) model(w http.ResponseWriter, id string) error {
	body, ok := s.modelBodies[id]
	if !ok {
		return &apiError{
			status: http.StatusNotFound,
			typ:    "invalid_request_error",
			code:   "model_not_found",
			param:  "model",
			msg:    "The model '" + id + "' does not exist.",
		}
	}
	return writeBody(w, http.StatusOK, s.hdrJSON, body)
}

// writeError renders err in OpenAI's error format; errors that are not
// apiErrors become a generic 500 so no internal detail reaches the client.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errClientGone) {
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "client went away",
			slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		return
	}
	var ae *apiError
	if !errors.As(err, &ae) {
		s.log.LogAttrs(r.Context(), slog.LevelError, "demo upstream failed",
			slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		ae = &apiError{status: http.StatusInternalServerError, typ: "server_error", msg: "The demo upstream failed to handle the request."}
	} else {
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "request rejected",
			slog.String("path", r.URL.Path), slog.Int("status", ae.status), slog.String("error", err.Error()))
	}
	if ae.retryAfter {
		w.Header()["Retry-After"] = s.hdrOne
	}
	sc := s.pool.Get().(*scratch)
	defer s.release(sc)
	sc.out = appendError(sc.out[:0], ae)
	if err := writeBody(w, ae.status, s.hdrJSON, sc.out); err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "write error response",
			slog.String("path", r.URL.Path), slog.String("error", err.Error()))
	}
}

func appendError(b []byte, e *apiError) []byte {
	b = append(b, `{"error":{"message":`...)
	b = appendString(b, e.msg)
	b = append(b, `,"type":`...)
	b = appendString(b, e.typ)
	b = append(b, `,"param":`...)
	b = appendNullable(b, e.param)
	b = append(b, `,"code":`...)
	b = appendNullable(b, e.code)
	return append(b, "}}"...)
}

func appendNullable(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return appendString(b, s)
}

func (s *server) release(sc *scratch) {
	if sc.in.Cap() > maxPooledBytes || cap(sc.out) > maxPooledBytes {
		return
	}
	sc.in.Reset()
	sc.out = sc.out[:0]
	s.pool.Put(sc)
}

// readBody reads the request body into sc.in, bounded by maxBodyBytes.
// Decoding is left to the caller, which knows its request type.
func readBody(w http.ResponseWriter, r *http.Request, sc *scratch) error {
	if r.ContentLength > 0 && r.ContentLength <= maxBodyBytes {
		sc.in.Grow(int(r.ContentLength))
	}
	if _, err := sc.in.ReadFrom(http.MaxBytesReader(w, r.Body, maxBodyBytes)); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return &apiError{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error", msg: "Request body too large.", err: err}
		}
		return fmt.Errorf("read body: %w: %w", errClientGone, err)
	}
	return nil
}

func writeBody(w http.ResponseWriter, status int, contentType []string, body []byte) error {
	h := w.Header()
	h["Content-Type"] = contentType
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("write body: %w: %w", errClientGone, err)
	}
	return nil
}

// pacer waits between chunks, reusing one timer per request.
type pacer struct{ t *time.Timer }

// wait blocks for d, or until ctx ends.
func (p *pacer) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	if p.t == nil {
		p.t = time.NewTimer(d)
	} else {
		p.t.Reset(d)
	}
	select {
	case <-p.t.C:
		return nil
	case <-ctx.Done():
		p.t.Stop()
		return fmt.Errorf("wait: %w: %w", errClientGone, ctx.Err())
	}
}

func (p *pacer) stop() {
	if p.t != nil {
		p.t.Stop()
	}
}
