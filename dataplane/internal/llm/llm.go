// Package llm proxies LLM calls to upstream providers. Callers speak OpenAI chat
// completions, embeddings or Responses, or Anthropic Messages; providers speak
// OpenAI-compatible, Azure OpenAI, Anthropic or Gemini wire formats. Where the two
// differ the package translates (requests, answers and streams, tool calls included);
// where they match it relays bytes. It chooses deployments through the routing
// package, retries with backoff, falls back to other models, times out slow first
// tokens, relays streams event by event (flushing each), and meters every exchange
// (usage, time to first token, upstream latency, gateway overhead). It knows nothing of
// keys or permissions. Failures before anything was written are returned for the
// caller to render; once an answer has begun, it ends it in the caller's format.
//
// Usage is always captured: OpenAI-style streams are sent upstream with
// stream_options.include_usage (the usage chunk is stripped again when the caller did
// not ask for it), Anthropic and Gemini report it in their own events. When a stream
// ends before the provider reported usage (the caller left, the stream broke, a
// guardrail cut it), the gateway charges an estimate instead (Result.UsageEstimated):
// the prompt's text characters divided by 4, and the completion characters it
// relayed (text and tool-call arguments) divided by 4. Streamed and non-streamed
// answers are priced by the same catalog from the same counts.
package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/h1transport"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/rawconn"
	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	gatewire "github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/routing"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// ErrUpstreamUnreachable means the provider could not be reached or broke the
// connection before answering.
var ErrUpstreamUnreachable = errors.New("upstream unreachable")

// ErrUpstreamTimeout means the provider did not answer within the upstream timeout, or
// sent no first token within the time-to-first-token timeout.
var ErrUpstreamTimeout = errors.New("upstream timeout")

// ErrUpstreamAuth means the provider refused the gateway's credential (401/403); the
// provider's body is not relayed because it may echo part of the credential.
var ErrUpstreamAuth = errors.New("upstream refused credentials")

// ErrUpstreamBadResponse means the provider's answer could not be read or was too large.
var ErrUpstreamBadResponse = errors.New("bad upstream response")

// ErrUpstreamStream means a stream broke after it had started; the caller got a
// truncated stream (ended with an error event in its format).
var ErrUpstreamStream = errors.New("upstream stream broken")

// ErrClientGone means the caller went away; the upstream request was cancelled.
var ErrClientGone = errors.New("client disconnected")

// ErrNoDeployment means every deployment of every candidate model was behind an open
// circuit breaker: nothing was sent upstream.
var ErrNoDeployment = errors.New("no available deployment")

// ErrOperationNotSupported means no candidate model's provider offers the operation
// (embeddings on Anthropic); nothing was sent upstream.
var ErrOperationNotSupported = errors.New("operation not supported by the provider")

// ErrProviderNotSupported means the model's provider is of a type this gateway has no
// adapter for; nothing was sent upstream. It comes inside a *ProviderNotSupportedError.
var ErrProviderNotSupported = errors.New("provider type not supported")

// ProviderNotSupportedError names the provider type the gateway cannot speak; it
// matches ErrProviderNotSupported.
type ProviderNotSupportedError struct {
	ProviderID string
	Type       gatehousev1.ProviderType
}

func (e *ProviderNotSupportedError) Error() string {
	return fmt.Sprintf("provider %q of type %s: %v", e.ProviderID, ProviderTypeName(e.Type), ErrProviderNotSupported)
}

func (e *ProviderNotSupportedError) Unwrap() error { return ErrProviderNotSupported }

// Refusal is the error a request hook (limits admission, guardrails) returns to refuse
// a request, or a content filter returns to cut a response. Its message is shown to the
// caller, in the caller's format.
type Refusal struct {
	// Status is the HTTP status of a refusal before the answer began (default 400).
	Status int
	// Code is a stable machine-readable code, e.g. "rate_limit_exceeded" or
	// "content_blocked"; it is also the usage event's error class.
	Code    string
	Message string
	// Header holds response headers to add (Retry-After, RateLimit-*).
	Header http.Header
}

func (e *Refusal) Error() string { return "refused: " + e.Code + ": " + e.Message }

// ContentFilter sees one text of a response as it is produced: each delta of a stream
// in order, or the whole text of an answer that is not streamed. Filter returns the
// text to pass on instead (the same, redacted, or empty while it holds text back);
// Flush returns what it held back when the text ends, and is called once. An error (a
// *Refusal to choose the message) cuts the response: a stream ends with an error event
// in the caller's format, an answer not yet sent is refused.
//
// The texts of a response are filtered apart, each by a filter of its own (a match
// never spans two of them): the first choice's content (Request.Filter), and through
// Request.NewFilter the content of every other choice (n > 1), each block of each
// choice's reasoning, the JSON arguments of each tool call and each refusal.
type ContentFilter interface {
	Filter(delta string) (string, error)
	Flush() (string, error)
}

// Speaks reports whether the gateway has an adapter for providers of type t. Models of
// other types compile and are listed, but calling them fails with
// ErrProviderNotSupported.
func Speaks(t gatehousev1.ProviderType) bool {
	switch t {
	case gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE,
		gatehousev1.ProviderType_PROVIDER_TYPE_ANTHROPIC,
		gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI,
		gatehousev1.ProviderType_PROVIDER_TYPE_GEMINI:
		return true
	}
	return false
}

// ProviderTypeName is the short name of a provider type, as callers see it in errors
// ("openai_compatible", "anthropic", "azure_openai", "gemini").
func ProviderTypeName(t gatehousev1.ProviderType) string {
	if n, ok := providerTypeNames[t]; ok {
		return n
	}
	return strings.ToLower(strings.TrimPrefix(t.String(), "PROVIDER_TYPE_"))
}

// providerTypeNames spares the request path a string conversion per attempt.
var providerTypeNames = func() map[gatehousev1.ProviderType]string {
	out := map[gatehousev1.ProviderType]string{}
	for v, name := range gatehousev1.ProviderType_name {
		out[gatehousev1.ProviderType(v)] = strings.ToLower(strings.TrimPrefix(name, "PROVIDER_TYPE_"))
	}
	return out
}()

// Config configures a Client. Zero values take the defaults. A model's routing
// settings override the defaults of the same name.
type Config struct {
	// Timeout bounds one upstream attempt, streams included (default 10m).
	Timeout time.Duration
	// TTFTTimeout bounds the wait for a stream's first token; 0 disables it.
	TTFTTimeout time.Duration
	// StreamIdleTimeout bounds the silence between a stream's events once its first
	// token came (before it, TTFTTimeout and Timeout apply): a stalled stream ends
	// with an error event; 0 disables it; a model's routing overrides it.
	StreamIdleTimeout time.Duration
	// MaxRetries is the number of retries after a model's first attempt (default 2;
	// negative for none).
	MaxRetries int
	// RetryBackoff is the base of the exponential backoff between retries (default
	// 250ms); each wait is drawn uniformly from [0, base·2^n] (full jitter), capped at
	// MaxBackoff (default 10s).
	RetryBackoff time.Duration
	MaxBackoff   time.Duration
	// BreakerFailures consecutive failures open a deployment's circuit for
	// BreakerCooldown (defaults 5 and 30s).
	BreakerFailures int
	BreakerCooldown time.Duration
	// MaxResponseBytes bounds a non-streamed upstream body (default 64 MiB).
	MaxResponseBytes int64
	// AllowLinkLocalUpstreams lets connections reach the addresses
	// wire.UpstreamAddrRefused names; they are refused at dial time otherwise.
	AllowLinkLocalUpstreams bool
	// EntraAuthority is the Microsoft Entra ID authority Azure OpenAI providers
	// authenticated by Entra ID get their tokens from (default DefaultEntraAuthority).
	EntraAuthority string
	// ResponseIDs seals the ids of native Responses answers; nil relays the
	// provider's ids as they are (tests of other things only).
	ResponseIDs *ResponseIDs
	// Router holds the routing state; nil makes a private one.
	Router *routing.Router
	// Tracer traces upstream attempts (default: no tracing). The W3C trace context of
	// the request is propagated upstream either way.
	Tracer     trace.Tracer
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Client sends requests to providers over one shared, tuned transport.
type Client struct {
	// rt carries upstream calls: plain http over h1transport (the request's own
	// goroutine does the I/O), https over net/http's Transport (HTTP/2 when offered).
	// Redirects are not followed: a provider answers or fails.
	rt      *h1transport.Transport
	cfg     Config
	maxResp int64
	router  *routing.Router
	tracer  trace.Tracer
	// tracing is false without a tracer: no spans are made (the caller's trace
	// context is still propagated).
	tracing bool
	prop    propagation.TextMapPropagator
	log     *slog.Logger
	metrics *metrics
	// sleep waits between retries; tests replace it.
	sleep func(context.Context, time.Duration) error
	// jitter draws a backoff in [0, d].
	jitter func(d time.Duration) time.Duration
	// now stamps the answers the gateway writes itself (created times).
	now func() time.Time
	// entra holds the Entra ID tokens of Azure OpenAI providers that use them.
	entra *entraTokens
}

// NewClient returns a Client with its own connection pool.
func NewClient(cfg Config) (*Client, error) {
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !cfg.AllowLinkLocalUpstreams {
		dialer.ControlContext = refuseForbiddenAddr
	}
	transport := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		// TLS upstreams too read and write without waking the runtime's monitor
		// (see package rawconn); plain-http ones go through h1transport, which wraps.
		DialContext:           rawconn.WrapDial(dialer.DialContext),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          2048,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ReadBufferSize:        32 << 10,
		WriteBufferSize:       32 << 10,
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Minute
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = 2
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	if cfg.BreakerFailures <= 0 {
		cfg.BreakerFailures = 5
	}
	if cfg.BreakerCooldown <= 0 {
		cfg.BreakerCooldown = 30 * time.Second
	}
	maxResp := cfg.MaxResponseBytes
	if maxResp <= 0 {
		maxResp = 64 << 20
	}
	router := cfg.Router
	if router == nil {
		if router, err = routing.New(routing.Config{}); err != nil {
			return nil, fmt.Errorf("llm: %w", err)
		}
	}
	tracer := cfg.Tracer
	if tracer == nil {
		tracer = noop.NewTracerProvider().Tracer("")
	}
	rt, err := h1transport.New(h1transport.Options{Fallback: transport, DialContext: dialer.DialContext, MaxIdlePerHost: 512, IdleTimeout: 90 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}
	if cfg.EntraAuthority != "" {
		if u, err := url.Parse(cfg.EntraAuthority); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
			return nil, fmt.Errorf("llm: entra authority %q is not an http(s) URL", cfg.EntraAuthority)
		}
	}
	// Token requests get their own small client: no redirects followed (a token
	// endpoint answers or fails), the dial-time address guard as upstream calls.
	tokenClient := &http.Client{
		Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, DialContext: dialer.DialContext,
			TLSHandshakeTimeout: 10 * time.Second, MaxIdleConnsPerHost: 2, IdleConnTimeout: 90 * time.Second},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       entraFetchTimeout,
	}
	return &Client{
		rt:      rt,
		cfg:     cfg,
		maxResp: maxResp,
		router:  router,
		tracer:  tracer,
		tracing: cfg.Tracer != nil,
		prop:    propagation.TraceContext{},
		log:     cfg.Logger.With("component", "llm"),
		metrics: m,
		entra:   newEntraTokens(cfg.EntraAuthority, tokenClient, cfg.Logger.With("component", "llm")),
		sleep:   sleepCtx,
		jitter:  fullJitter,
		now:     time.Now,
	}, nil
}

// ErrUpstreamAddrRefused is the dial error for an address no upstream may have
// (wire.UpstreamAddrRefused): the control plane refuses such URLs, and a name that
// resolves to one later is refused here, after DNS.
var ErrUpstreamAddrRefused = errors.New("upstream address refused (link-local or cloud metadata)")

// refuseForbiddenAddr is the dialer's check of every address it connects to.
func refuseForbiddenAddr(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, ErrUpstreamAddrRefused)
	}
	if gatewire.UpstreamAddrRefused(ap.Addr()) {
		return fmt.Errorf("dial %s: %w", address, ErrUpstreamAddrRefused)
	}
	return nil
}

// Router returns the routing state the client uses.
func (c *Client) Router() *routing.Router { return c.router }

// Close releases idle upstream connections.
func (c *Client) Close() { c.rt.CloseIdleConnections() }

// Usage is the token usage of an exchange.
type Usage struct {
	PromptTokens     int64
	CompletionTokens int64
	CachedTokens     int64
	// CacheWriteTokens are prompt tokens written to the provider's prompt cache
	// (Anthropic), priced above the input price; CacheWrite1hTokens those of them
	// kept for an hour.
	CacheWriteTokens   int64
	CacheWrite1hTokens int64
}

// Tokens are the counts the request is priced by.
func (u Usage) Tokens() runtime.Tokens {
	return runtime.Tokens{Prompt: u.PromptTokens, Completion: u.CompletionTokens, Cached: u.CachedTokens,
		CacheWrites: u.CacheWriteTokens, CacheWrites1h: u.CacheWrite1hTokens}
}

// MaxUsageTokens bounds each count of a Usage: a provider reporting more (or a hostile
// upstream reporting 2^62) is held to it, so sums and prices cannot wrap around.
const MaxUsageTokens = 1 << 40

// clamped returns u with each count within [0, MaxUsageTokens] and the cached tokens
// at most the prompt's.
func (u Usage) clamped() Usage {
	u.PromptTokens = tokenCount(u.PromptTokens)
	u.CompletionTokens = tokenCount(u.CompletionTokens)
	u.CachedTokens = min(tokenCount(u.CachedTokens), u.PromptTokens)
	u.CacheWriteTokens = min(tokenCount(u.CacheWriteTokens), u.PromptTokens-u.CachedTokens)
	u.CacheWrite1hTokens = min(tokenCount(u.CacheWrite1hTokens), u.CacheWriteTokens)
	return u
}

// add returns the sum of two usages, each count clamped first.
func (u Usage) add(v Usage) Usage {
	u, v = u.clamped(), v.clamped()
	return Usage{PromptTokens: u.PromptTokens + v.PromptTokens, CompletionTokens: u.CompletionTokens + v.CompletionTokens,
		CachedTokens: u.CachedTokens + v.CachedTokens, CacheWriteTokens: u.CacheWriteTokens + v.CacheWriteTokens,
		CacheWrite1hTokens: u.CacheWrite1hTokens + v.CacheWrite1hTokens}
}

// tokenCount is n within [0, MaxUsageTokens]: what a provider reports is summed only
// once each part is.
func tokenCount(n int64) int64 { return min(max(n, 0), MaxUsageTokens) }

// Request is one LLM call as the gateway serves it.
type Request struct {
	Surface Surface
	// Chat is the call in chat completions form (every surface but embeddings).
	Chat *ChatRequest
	// Messages is set for SurfaceMessages: relayed as it came to Anthropic upstreams.
	Messages *MessagesRequest
	// Responses is set for SurfaceResponses.
	Responses  *ResponsesRequest
	Embeddings *EmbeddingsRequest
	// Candidates are the models to try in order: the one asked for, then its
	// fallbacks. Never empty.
	Candidates []*runtime.Model
	// Fallback, when set, is called before the first attempt on each candidate after
	// the first: it admits the request under that model's own limits. An error (a
	// *Refusal) skips the candidate; it is the answer only when no upstream answered.
	Fallback func(m *runtime.Model) error
	// Filter, when set, filters the assistant's content (response guardrails): that
	// of the first choice.
	Filter ContentFilter
	// NewFilter, when set, returns a new filter for another text of the answer (see
	// TextKind), or nil to leave it as it is: the content of another choice, a block
	// of reasoning, a tool call's arguments, a refusal. It is used only with Filter: an answer
	// without a Filter may be relayed as the provider sent it. With a Filter and no
	// NewFilter, an answer with a second choice is refused rather than relayed
	// unchecked.
	NewFilter func(TextKind) ContentFilter
	// Header is the caller's request header; anthropic-version and anthropic-beta are
	// forwarded to Anthropic upstreams.
	Header http.Header
	// Start is when the gateway received the request, for the overhead it reports.
	Start time.Time
	// CaptureText keeps the completion text in the result (content logging).
	CaptureText bool
	// Tenant names the caller's org and team; native Responses ids are sealed to it.
	Tenant string
}

func (r *Request) stream() bool {
	switch r.Surface {
	case SurfaceMessages:
		return r.Messages.Stream
	case SurfaceEmbeddings:
		return false
	}
	return r.Chat.Stream
}

// Result describes how a request was served.
type Result struct {
	// Status is the status written to the caller, 0 if nothing was written.
	Status   int
	Streamed bool
	Usage    Usage
	// ServiceTier is the provider's processing tier as its answer reported it
	// (serviceTier), empty when it reported none.
	ServiceTier string
	// UsageEstimated says Usage was counted by the gateway (the stream ended before the
	// provider reported usage): prompt and completion characters divided by 4.
	UsageEstimated bool
	// ClientLeft says the caller left after the provider was asked and before its
	// answer began: what the provider generated meanwhile is unknown.
	ClientLeft bool
	// abandoned is the usage (or the estimated prompt) of answers that came and were
	// left unused (retried); Serve adds it to Usage.
	abandoned Usage
	// TTFT is the time from the answering attempt's start to the first streamed event,
	// or to the response headers when not streaming.
	TTFT time.Duration
	// Upstream is the duration of the answering attempt, stream included.
	Upstream time.Duration
	// UpstreamWait is the time spent waiting on upstreams (every attempt, and the
	// backoff between them) before the answer began.
	UpstreamWait time.Duration
	// Overhead is the gateway's own time before the first byte to the caller: the time
	// since Request.Start less UpstreamWait. It is also sent as x-gatehouse-overhead-ms.
	Overhead time.Duration
	// Model and Deployment served the request (nil when none did); Fallback says Model
	// is one of the asked model's fallbacks.
	Model      *runtime.Model
	Deployment *runtime.Deployment
	Fallback   bool
	// Retries is the number of attempts after the first.
	Retries int
	// Local says the gateway answered by itself (a count_tokens estimate): no
	// provider served it, whatever Model's own provider is.
	Local bool
	// Text is the completion text, when the request asked to capture it.
	Text string
}

// OverheadHeader (x-gatehouse-overhead-ms, in canonical form) carries the gateway's
// overhead in milliseconds with microsecond precision, set before the first byte of
// every answer.
const OverheadHeader = "X-Gatehouse-Overhead-Ms"

// FormatOverhead renders an overhead for OverheadHeader, e.g. "0.183".
func FormatOverhead(d time.Duration) string {
	us := max(d.Microseconds(), 0)
	var buf [24]byte
	b := strconv.AppendInt(buf[:0], us/1000, 10)
	frac := us % 1000
	b = append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	return string(b)
}

// readLine reads one line including its newline, however long.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return line, err
	}
	long := append([]byte(nil), line...)
	for err == bufio.ErrBufferFull {
		if len(long) > maxSSEEvent {
			return nil, errSSEEventTooLarge
		}
		line, err = br.ReadSlice('\n')
		long = append(long, line...)
	}
	return long, err
}

func isBlankLine(line []byte) bool {
	return len(line) > 0 && len(bytes.TrimRight(line, "\r\n")) == 0
}

var (
	dataPrefix = []byte("data:")
	usageKey   = []byte(`"usage"`)
	doneData   = []byte("[DONE]")
)

// inspectEvent records usage carried by an SSE event and reports whether to forward
// it: the usage-only chunk is dropped unless the caller asked for it.
func inspectEvent(event []byte, includeUsage bool, usage *Usage) (forward, sawData bool) {
	var data []byte
	for line := range bytes.Lines(event) {
		rest, ok := bytes.CutPrefix(line, dataPrefix)
		if !ok {
			continue
		}
		rest = bytes.TrimPrefix(rest, []byte(" "))
		rest = bytes.TrimRight(rest, "\r\n")
		if data != nil {
			// Copy: data may alias event, which must be forwarded unchanged.
			data = append(append(append([]byte(nil), data...), '\n'), rest...)
		} else {
			data = rest
		}
	}
	if data == nil {
		return true, false
	}
	return inspectData(data, includeUsage, usage), true
}

// inspectData is inspectEvent for an event's data.
func inspectData(data []byte, includeUsage bool, usage *Usage) (forward bool) {
	if bytes.Equal(data, doneData) || !hasUsage(data) {
		return true
	}
	// One scan for the common shape; json.Unmarshal decides the rest.
	v, ok := members(data, "usage", "choices")
	if ok && v[0] == nil {
		return true
	}
	if ok {
		u, uok := fastUsageJSON(v[0])
		choices, cok := 0, v[1] == nil || string(v[1]) == "null"
		if !cok {
			cok = scanArray(v[1], func(_, _ int) bool { choices++; return true })
		}
		if uok && cok {
			if u == nil {
				return true
			}
			*usage = u.usage()
			return includeUsage || choices > 0
		}
	}
	return inspectDecoded(data, includeUsage, usage)
}

// inspectDecoded is inspectData by encoding/json.
func inspectDecoded(data []byte, includeUsage bool, usage *Usage) (forward bool) {
	var chunk struct {
		Choices []json.RawMessage `json:"choices"`
		Usage   *usageJSON        `json:"usage"`
	}
	if err := json.Unmarshal(data, &chunk); err != nil || chunk.Usage == nil {
		return true
	}
	*usage = chunk.Usage.usage()
	return includeUsage || len(chunk.Choices) > 0
}

// hasUsage is a fast pre-check: streams with usage enabled carry `"usage":null` in every
// chunk but the last, and those need no JSON decoding.
func hasUsage(data []byte) bool {
	i := bytes.Index(data, usageKey)
	if i < 0 {
		return false
	}
	if bytes.Count(data, usageKey) > 1 {
		return true
	}
	rest := bytes.TrimLeft(data[i+len(usageKey):], " \t\r\n")
	rest, ok := bytes.CutPrefix(rest, []byte(":"))
	if !ok {
		return true
	}
	return !bytes.HasPrefix(bytes.TrimLeft(rest, " \t\r\n"), []byte("null"))
}

// classify maps a transport error to the gateway's error kinds: the caller leaving,
// the upstream timeout, or fallback.
func classify(parent, ctx context.Context, err, fallback error) error {
	switch {
	case parent.Err() != nil:
		return fmt.Errorf("%w: %w", ErrClientGone, err)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%w: %w", ErrUpstreamTimeout, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %w", ErrUpstreamTimeout, err)
	}
	return fmt.Errorf("%w: %w", fallback, err)
}

type metrics struct {
	upstream    [2]prometheus.Observer // by streamed
	ttft        prometheus.Histogram
	tokens      [3]prometheus.Counter // prompt, completion, cached
	attempts    *prometheus.CounterVec
	retries     *prometheus.CounterVec
	fallbacks   prometheus.Counter
	estimated   prometheus.Counter
	attemptsVec *prometheus.HistogramVec

	// The children of attempts and attemptsVec for every known provider type and
	// outcome, resolved once: WithLabelValues allocates on every call.
	attemptChildren map[[2]string]prometheus.Counter
	latencyChildren map[string]prometheus.Observer
}

// attemptOutcomes are the outcome labels of gatehouse_gateway_upstream_attempts_total.
var attemptOutcomes = []string{"ok", "status_4xx", "status_429", "status_5xx", "auth", "timeout", "ttft_timeout",
	"unreachable", "bad_response", "client_gone", "stream_broken", "stream_idle", "unsupported", "token"}

func (m *metrics) attempt(ptype, outcome string) prometheus.Counter {
	if c, ok := m.attemptChildren[[2]string{ptype, outcome}]; ok {
		return c
	}
	return m.attempts.WithLabelValues(ptype, outcome)
}

func (m *metrics) latency(ptype string) prometheus.Observer {
	if o, ok := m.latencyChildren[ptype]; ok {
		return o
	}
	return m.attemptsVec.WithLabelValues(ptype)
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	buckets := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	upstream := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gatehouse_gateway_upstream_duration_seconds",
		Help:    "Duration of the upstream exchange that answered, streams included.",
		Buckets: buckets,
	}, []string{"streamed"})
	tokens := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_gateway_tokens_total",
		Help: "Tokens used, by kind (prompt, completion, cached).",
	}, []string{"kind"})
	m := &metrics{
		upstream: [2]prometheus.Observer{upstream.WithLabelValues("false"), upstream.WithLabelValues("true")},
		ttft: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gatehouse_gateway_time_to_first_token_seconds",
			Help:    "Time from the upstream call to the first streamed chunk.",
			Buckets: buckets,
		}),
		tokens: [3]prometheus.Counter{tokens.WithLabelValues("prompt"), tokens.WithLabelValues("completion"), tokens.WithLabelValues("cached")},
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_gateway_upstream_attempts_total",
			Help: "Upstream attempts, by provider type and outcome (ok, status_4xx, status_429, status_5xx, auth, timeout, ttft_timeout, unreachable, bad_response, client_gone).",
		}, []string{"provider_type", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_gateway_upstream_retries_total",
			Help: "Upstream attempts made after a failed one, by the failure that caused them.",
		}, []string{"reason"}),
		fallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_gateway_fallbacks_total",
			Help: "Requests answered by a fallback model.",
		}),
		estimated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_gateway_usage_estimated_total",
			Help: "Requests whose usage the gateway estimated because the stream ended before the provider reported it.",
		}),
		attemptsVec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_gateway_upstream_attempt_latency_seconds",
			Help:    "Latency of upstream attempts to the first token (streams) or the full answer, by provider type.",
			Buckets: buckets,
		}, []string{"provider_type"}),
	}
	for _, c := range []prometheus.Collector{upstream, m.ttft, tokens, m.attempts, m.retries, m.fallbacks, m.estimated, m.attemptsVec} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	m.attemptChildren = map[[2]string]prometheus.Counter{}
	m.latencyChildren = map[string]prometheus.Observer{}
	for t := range gatehousev1.ProviderType_name {
		ptype := ProviderTypeName(gatehousev1.ProviderType(t))
		if !Speaks(gatehousev1.ProviderType(t)) {
			continue
		}
		m.latencyChildren[ptype] = m.attemptsVec.WithLabelValues(ptype)
		for _, o := range attemptOutcomes {
			m.attemptChildren[[2]string{ptype, o}] = m.attempts.WithLabelValues(ptype, o)
		}
	}
	return m, nil
}
