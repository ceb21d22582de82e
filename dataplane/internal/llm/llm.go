// Package llm proxies OpenAI-compatible LLM calls to upstream providers: it rewrites the
// request for the provider, relays the answer (streams event by event, flushing each),
// and meters it (token usage, time to first token, upstream latency). It decides which
// provider types the gateway can speak (Speaks) and refuses the others before any I/O.
// It knows nothing of keys or permissions, and never writes error bodies of its own:
// failures before the first byte is written are returned for the caller to render.
package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// ErrUpstreamUnreachable means the provider could not be reached or broke the
// connection before answering.
var ErrUpstreamUnreachable = errors.New("upstream unreachable")

// ErrUpstreamTimeout means the provider did not answer within the upstream timeout.
var ErrUpstreamTimeout = errors.New("upstream timeout")

// ErrUpstreamAuth means the provider refused the gateway's credential (401/403); the
// provider's body is not relayed because it may echo part of the credential.
var ErrUpstreamAuth = errors.New("upstream refused credentials")

// ErrUpstreamBadResponse means the provider's answer could not be read or was too large.
var ErrUpstreamBadResponse = errors.New("bad upstream response")

// ErrUpstreamStream means a stream broke after it had started; the caller got a
// truncated stream.
var ErrUpstreamStream = errors.New("upstream stream broken")

// ErrClientGone means the caller went away; the upstream request was cancelled.
var ErrClientGone = errors.New("client disconnected")

// ErrProviderNotSupported means the model's provider is of a type this gateway has no
// adapter for yet; nothing was sent upstream. It comes inside a
// *ProviderNotSupportedError.
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

// Speaks reports whether the gateway has an adapter for providers of type t. Models of
// other types compile and are listed, but calling them fails with
// ErrProviderNotSupported.
func Speaks(t gatehousev1.ProviderType) bool {
	return t == gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE
}

// ProviderTypeName is the short name of a provider type, as callers see it in errors
// ("openai_compatible", "anthropic", "azure_openai", "gemini").
func ProviderTypeName(t gatehousev1.ProviderType) string {
	return strings.ToLower(strings.TrimPrefix(t.String(), "PROVIDER_TYPE_"))
}

// Config configures a Client. Zero values take the defaults.
type Config struct {
	// Timeout bounds a whole upstream exchange, streams included (default 10m).
	Timeout time.Duration
	// MaxResponseBytes bounds a non-streamed upstream body (default 64 MiB).
	MaxResponseBytes int64
	Logger           *slog.Logger
	Registerer       prometheus.Registerer
}

// Client sends requests to providers over one shared, tuned transport.
type Client struct {
	http    *http.Client
	timeout time.Duration
	maxResp int64
	log     *slog.Logger
	metrics *metrics
}

// NewClient returns a Client with its own connection pool.
func NewClient(cfg Config) (*Client, error) {
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}
	transport := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          2048,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ReadBufferSize:        32 << 10,
		WriteBufferSize:       32 << 10,
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	maxResp := cfg.MaxResponseBytes
	if maxResp <= 0 {
		maxResp = 64 << 20
	}
	return &Client{
		// Redirects are not followed: a provider answers or fails.
		http: &http.Client{
			Transport: transport,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		timeout: timeout,
		maxResp: maxResp,
		log:     cfg.Logger.With("component", "llm"),
		metrics: m,
	}, nil
}

// Close releases idle upstream connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Usage is the token usage an upstream reported.
type Usage struct {
	PromptTokens     int64
	CompletionTokens int64
	CachedTokens     int64
}

// Result describes one upstream exchange.
type Result struct {
	// Status is the status written to the caller, 0 if nothing was written.
	Status   int
	Streamed bool
	Usage    Usage
	// TTFT is the time from the upstream call to the first streamed chunk, or to the
	// response headers when not streaming.
	TTFT time.Duration
	// Upstream is the duration of the whole upstream exchange.
	Upstream time.Duration
}

type usageJSON struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

func (u *usageJSON) usage() Usage {
	out := Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens}
	if u.PromptTokensDetails != nil {
		out.CachedTokens = u.PromptTokensDetails.CachedTokens
	}
	return out
}

// ChatCompletions sends req to m's provider and relays the answer to w. It returns an
// error when the exchange failed; if res.Status is 0 nothing was written and the caller
// must answer.
func (c *Client) ChatCompletions(ctx context.Context, w http.ResponseWriter, m *runtime.Model, req *ChatRequest) (*Result, error) {
	res := &Result{}
	if !Speaks(m.Provider.Type) {
		return res, fmt.Errorf("chat completions: %w", &ProviderNotSupportedError{ProviderID: m.Provider.ID, Type: m.Provider.Type})
	}
	start := time.Now()
	defer func() {
		res.Upstream = time.Since(start)
		c.metrics.upstream.WithLabelValues(streamLabel(res.Streamed)).Observe(res.Upstream.Seconds())
		c.metrics.tokens.WithLabelValues("prompt").Add(float64(res.Usage.PromptTokens))
		c.metrics.tokens.WithLabelValues("completion").Add(float64(res.Usage.CompletionTokens))
		c.metrics.tokens.WithLabelValues("cached").Add(float64(res.Usage.CachedTokens))
	}()

	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, m.Provider.ChatCompletionsURL, bytes.NewReader(req.UpstreamBody(m.UpstreamModel)))
	if err != nil {
		return res, fmt.Errorf("chat completions: %w: %w", ErrUpstreamUnreachable, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if m.Provider.Authorization != "" {
		hreq.Header.Set("Authorization", m.Provider.Authorization)
	}
	if req.Stream {
		hreq.Header.Set("Accept", "text/event-stream")
	} else {
		hreq.Header.Set("Accept", "application/json")
	}
	resp, err := c.http.Do(hreq)
	if err != nil {
		return res, fmt.Errorf("chat completions: %w", classify(parent, ctx, err, ErrUpstreamUnreachable))
	}
	defer resp.Body.Close()
	res.TTFT = time.Since(start)

	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return res, fmt.Errorf("chat completions: %w: provider %s answered %d", ErrUpstreamAuth, m.Provider.ID, resp.StatusCode)
	}
	if req.Stream && resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		res.Streamed = true
		return res, c.relayStream(parent, ctx, w, resp, req, res, start)
	}
	return res, c.relayBody(parent, ctx, w, resp, res)
}

func (c *Client) relayBody(parent, ctx context.Context, w http.ResponseWriter, resp *http.Response, res *Result) error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxResp+1))
	if err != nil {
		return fmt.Errorf("chat completions: read body: %w", classify(parent, ctx, err, ErrUpstreamBadResponse))
	}
	if int64(len(body)) > c.maxResp {
		return fmt.Errorf("chat completions: %w: body over %d bytes", ErrUpstreamBadResponse, c.maxResp)
	}
	if resp.StatusCode == http.StatusOK {
		var parsed struct {
			Usage *usageJSON `json:"usage"`
		}
		if err := json.Unmarshal(body, &parsed); err == nil && parsed.Usage != nil {
			res.Usage = parsed.Usage.usage()
		}
	}
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.StatusCode)
	res.Status = resp.StatusCode
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("chat completions: write: %w: %w", ErrClientGone, err)
	}
	return nil
}

func (c *Client) relayStream(parent, ctx context.Context, w http.ResponseWriter, resp *http.Response, req *ChatRequest, res *Result, start time.Time) error {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	res.Status = http.StatusOK
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		return fmt.Errorf("chat completions: flush: %w: %w", ErrClientGone, err)
	}

	br := bufio.NewReaderSize(resp.Body, 16<<10)
	event := make([]byte, 0, 4<<10)
	first := true
	for {
		line, err := readLine(br)
		if len(line) > 0 {
			event = append(event, line...)
		}
		end := isBlankLine(line) || (err != nil && len(event) > 0)
		if end && len(bytes.TrimSpace(event)) > 0 {
			if err != nil && !isBlankLine(line) {
				// The upstream ended without the final blank line; terminate the event
				// so the caller's parser sees it.
				event = append(event, '\n', '\n')
			}
			forward, sawData := inspectEvent(event, req.IncludeUsage, &res.Usage)
			if sawData && first {
				first = false
				res.TTFT = time.Since(start)
				c.metrics.ttft.Observe(res.TTFT.Seconds())
			}
			if forward {
				if _, werr := w.Write(event); werr != nil {
					return fmt.Errorf("chat completions: write: %w: %w", ErrClientGone, werr)
				}
				if werr := rc.Flush(); werr != nil {
					return fmt.Errorf("chat completions: flush: %w: %w", ErrClientGone, werr)
				}
			}
			event = event[:0]
		} else if end {
			event = event[:0]
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if parent.Err() != nil {
				return fmt.Errorf("chat completions: %w: %w", ErrClientGone, err)
			}
			if ctx.Err() != nil {
				return fmt.Errorf("chat completions: stream: %w: %w", ErrUpstreamTimeout, err)
			}
			return fmt.Errorf("chat completions: %w: %w", ErrUpstreamStream, err)
		}
	}
}

// readLine reads one line including its newline, however long.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return line, err
	}
	long := append([]byte(nil), line...)
	for err == bufio.ErrBufferFull {
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
	if bytes.Equal(data, doneData) || !hasUsage(data) {
		return true, true
	}
	var chunk struct {
		Choices []json.RawMessage `json:"choices"`
		Usage   *usageJSON        `json:"usage"`
	}
	if err := json.Unmarshal(data, &chunk); err != nil || chunk.Usage == nil {
		return true, true
	}
	*usage = chunk.Usage.usage()
	return includeUsage || len(chunk.Choices) > 0, true
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

func streamLabel(streamed bool) string {
	if streamed {
		return "true"
	}
	return "false"
}

type metrics struct {
	upstream *prometheus.HistogramVec
	ttft     prometheus.Histogram
	tokens   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	buckets := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	m := &metrics{
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_gateway_upstream_duration_seconds",
			Help:    "Duration of upstream exchanges, streams included.",
			Buckets: buckets,
		}, []string{"streamed"}),
		ttft: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gatehouse_gateway_time_to_first_token_seconds",
			Help:    "Time from the upstream call to the first streamed chunk.",
			Buckets: buckets,
		}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_gateway_tokens_total",
			Help: "Tokens reported by upstreams, by kind (prompt, completion, cached).",
		}, []string{"kind"}),
	}
	for _, c := range []prometheus.Collector{m.upstream, m.ttft, m.tokens} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}
