// Package httpapi is the gateway's HTTP surface: the routes, the middleware every
// request goes through (request id, trace context, panic recovery, key
// authentication, metrics, one usage event per authenticated request, the access log)
// and the adapter that turns handler errors into error JSON in the caller's format
// (OpenAI's, or Anthropic's on /v1/messages). Handlers parse input and call the domain
// packages; the proxying itself lives in llm, the config in runtime. Limits and
// guardrails plug in through the hooks of hooks.go.
package httpapi

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/llm"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/usage"
)

// Config configures a Server.
type Config struct {
	Store        *runtime.Store
	LLM          *llm.Client
	Usage        *usage.Recorder
	MaxBodyBytes int64
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
	// Gatherer is served on /metrics: by Handler, or, when MetricsApart, only by
	// MetricsHandler (the operator's own port, off the public one).
	Gatherer     prometheus.Gatherer
	MetricsApart bool
	// Tracer traces requests (default: no tracing; the W3C trace context of requests is
	// still propagated upstream).
	Tracer trace.Tracer
	// AccessLog logs one line per LLM request at info level. Prompts and completions
	// are logged only for teams with log_contents, and then always.
	AccessLog bool
	// AccessLogOut receives the access log lines (default os.Stderr, where the
	// gateway's logger writes too).
	AccessLogOut io.Writer
	// Admitter and Guard are the limits and guardrails hooks (see hooks.go); nil means
	// none.
	Admitter Admitter
	Guard    Guard
}

// Server serves the gateway's HTTP API.
type Server struct {
	store        *runtime.Store
	llm          *llm.Client
	usage        *usage.Recorder
	maxBody      int64
	log          *slog.Logger
	gatherer     prometheus.Gatherer
	metricsApart bool
	metrics      *metrics
	tracer       trace.Tracer
	tracing      bool
	prop         propagation.TextMapPropagator
	accessLog    bool
	accessOut    io.Writer
	admitter     Admitter
	guard        Guard
	inFlight     atomic.Int64
	// draining is set when the gateway shuts down: /readyz says not ready (on the
	// operator's port, which stays open through the drain).
	draining atomic.Bool
}

// New returns a Server.
func New(cfg Config) (*Server, error) {
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("httpapi: %w", err)
	}
	tracer := cfg.Tracer
	if tracer == nil {
		tracer = noop.NewTracerProvider().Tracer("")
	}
	accessOut := cfg.AccessLogOut
	if accessOut == nil {
		accessOut = os.Stderr
	}
	return &Server{
		store:    cfg.Store,
		llm:      cfg.LLM,
		usage:    cfg.Usage,
		maxBody:  cfg.MaxBodyBytes,
		log:      cfg.Logger.With("component", "http"),
		gatherer: cfg.Gatherer, metricsApart: cfg.MetricsApart,
		metrics:   m,
		tracer:    tracer,
		tracing:   cfg.Tracer != nil,
		prop:      propagation.TraceContext{},
		accessLog: cfg.AccessLog,
		accessOut: accessOut,
		admitter:  cfg.Admitter,
		guard:     cfg.Guard,
	}, nil
}

// Drain makes /readyz answer not ready from now on: the gateway is shutting down.
func (s *Server) Drain() { s.draining.Store(true) }

// InFlight returns the number of requests being served.
func (s *Server) InFlight() int64 { return s.inFlight.Load() }

// MetricsHandler serves /metrics, /healthz and /readyz: the operator's port when
// Config.MetricsApart keeps the metrics off the public one.
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metricsHandler())
	mux.Handle("GET /healthz", s.api("healthz", s.healthz))
	mux.Handle("GET /readyz", s.api("readyz", s.readyz))
	return s.base(mux)
}

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{})
}

// Handler returns every route of the gateway.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", s.api("healthz", s.healthz))
	mux.Handle("GET /readyz", s.api("readyz", s.readyz))
	if !s.metricsApart {
		mux.Handle("GET /metrics", s.metricsHandler())
	}
	mux.Handle("GET /v1/models", s.api("models", anthropicAware(s.requireKey(s.listModels))))
	mux.Handle("GET /v1/models/{model...}", s.api("models", anthropicAware(s.requireKey(s.retrieveModel))))
	mux.Handle("POST /v1/chat/completions", s.api("chat.completions", s.requireKey(s.serveLLM(llm.SurfaceChat))))
	mux.Handle("POST /v1/embeddings", s.api("embeddings", s.requireKey(s.serveLLM(llm.SurfaceEmbeddings))))
	mux.Handle("POST /v1/responses", s.api("responses", s.requireKey(s.serveLLM(llm.SurfaceResponses))))
	mux.Handle("GET /v1/responses/{id}", s.api("responses.retrieve", s.requireKey(s.storedResponse(""))))
	mux.Handle("DELETE /v1/responses/{id}", s.api("responses.delete", s.requireKey(s.storedResponse(""))))
	mux.Handle("GET /v1/responses/{id}/input_items", s.api("responses.input_items", s.requireKey(s.storedResponse("input_items"))))
	mux.Handle("POST /v1/responses/{id}/cancel", s.api("responses.cancel", s.requireKey(s.storedResponse("cancel"))))
	mux.Handle("POST /v1/messages", s.api("messages", s.requireKey(s.serveLLM(llm.SurfaceMessages))))
	mux.Handle("POST /v1/messages/count_tokens", s.api("messages.count_tokens", s.requireKey(s.countTokens)))
	mux.Handle("/", s.api("unknown", s.notFound))
	return s.base(mux)
}

// call is the state of one request shared by the middleware and its handler.
type call struct {
	requestID string
	endpoint  string
	// surface is the API the caller speaks; errors are rendered in its format.
	surface   llm.Surface
	start     time.Time
	key       *runtime.Key
	modelName string
	model     *runtime.Model
	result    *llm.Result
	// body is the request body, kept for content logging.
	body        []byte
	guardEvents []*gatehousev1.GuardrailEvent
}

// handler is an API handler: it answers, or returns an error for the adapter to render.
type handler func(w http.ResponseWriter, r *http.Request, c *call) error

// base gives every request an id, counts it in flight and turns a panic outside an API
// handler into a 500 answer.
func (s *Server) base(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := newRequestID()
		w.Header()["X-Request-Id"] = []string{id}
		rw := &responseWriter{ResponseWriter: w, start: time.Now(), requestID: id}
		s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("panic", "request_id", id, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if !rw.wrote {
					surface := llm.SurfaceChat
					if strings.HasPrefix(r.URL.Path, "/v1/messages") {
						surface = llm.SurfaceMessages
					}
					writeAPIError(rw, surface, errInternal)
				}
			}
		}()
		next.ServeHTTP(rw, r)
	})
}

// api adapts a handler: it renders returned errors (and panics) as OpenAI error JSON,
// records metrics and emits the usage event of authenticated requests.
func (s *Server) api(endpoint string, h handler) http.Handler {
	surface := surfaceOf(endpoint)
	spanName := "gatehouse " + endpoint
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{endpoint: endpoint, surface: surface, start: time.Now()}
		rw, ok := w.(*responseWriter)
		if !ok {
			rw = &responseWriter{ResponseWriter: w, start: c.start}
		}
		id := rw.requestID
		c.requestID = id
		// The caller's trace context continues upstream; with tracing on, the request
		// also gets its own span.
		span := trace.SpanFromContext(r.Context())
		if s.tracing || len(r.Header["Traceparent"]) > 0 {
			ctx := s.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			if s.tracing {
				ctx, span = s.tracer.Start(ctx, spanName, trace.WithSpanKind(trace.SpanKindServer))
				defer span.End()
				span.SetAttributes(attribute.String("gatehouse.request_id", id), attribute.String("http.route", r.URL.Path))
			}
			r = r.WithContext(ctx)
		}
		err := s.serve(rw, r, c, h)
		var ae *apiError
		if err != nil {
			ae = toAPIError(err, c.modelName)
			s.logError(c, ae)
			if !rw.wrote && ae.status != statusClientClosed {
				var wait time.Duration
				if c.result != nil {
					wait = c.result.UpstreamWait
				}
				rw.Header().Set(llm.OverheadHeader, llm.FormatOverhead(time.Since(c.start)-wait))
				for k, v := range ae.header {
					rw.Header()[k] = v
				}
				writeAPIError(rw, c.surface, ae)
			}
		}
		status := rw.status
		switch {
		case !rw.wrote && ae != nil:
			status = ae.status
		case !rw.wrote:
			status = http.StatusOK
		}
		elapsed := time.Since(c.start)
		s.metrics.requests.WithLabelValues(endpoint, statusClass(status)).Inc()
		s.metrics.duration.WithLabelValues(endpoint).Observe(elapsed.Seconds())
		if span.IsRecording() {
			span.SetAttributes(attribute.Int("http.response.status_code", status))
			if ae != nil {
				span.SetStatus(codes.Error, ae.code)
			}
		}
		if c.key != nil {
			ev := c.usageEvent(status, ae, elapsed)
			if ev.ErrorClass != "" {
				s.metrics.errors.WithLabelValues(ev.ErrorClass).Inc()
			}
			if ev.CostMicros > 0 {
				s.metrics.cost.Add(float64(ev.CostMicros))
			}
			if c.result != nil && c.result.Status != 0 {
				s.metrics.overhead.Observe(c.result.Overhead.Seconds())
			}
			if c.model != nil && (s.accessLog || c.key.Team.LogContents) {
				s.logAccess(c, ev)
			}
			s.usage.Emit(ev)
		} else if ae != nil && ae.code != "" {
			s.metrics.errors.WithLabelValues(ae.code).Inc()
		}
	})
}

// surfaceOf is the API an endpoint speaks, which decides the error format.
func surfaceOf(endpoint string) llm.Surface {
	switch endpoint {
	case "messages", "messages.count_tokens":
		return llm.SurfaceMessages
	case "responses", "responses.retrieve", "responses.delete", "responses.input_items", "responses.cancel":
		return llm.SurfaceResponses
	case "embeddings":
		return llm.SurfaceEmbeddings
	}
	return llm.SurfaceChat
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, c *call, h handler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic", "request_id", c.requestID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = errInternal
		}
	}()
	return h(w, r, c)
}

func (s *Server) logError(c *call, e *apiError) {
	attrs := []any{"request_id", c.requestID, "endpoint", c.endpoint, "status", e.status, "code", e.code}
	if c.key != nil {
		attrs = append(attrs, "org_id", c.key.Org.ID, "team_id", c.key.Team.ID, "key_id", c.key.ID)
	}
	if e.err != nil {
		attrs = append(attrs, "err", e.err)
	}
	// 501 is a refusal by design (a provider type without an adapter), not a failure.
	if e.status >= 500 && e.status != http.StatusNotImplemented && e != errNotReady {
		s.log.Warn("request failed", attrs...)
		return
	}
	s.log.Debug("request refused", attrs...)
}

// maxRecordedName bounds a model name as usage records it. The name is the caller's
// (a model that does not exist is recorded too), and one of megabytes would make its
// batch too large to publish.
const maxRecordedName = 256

// recordedName is a requested model name as usage records it: at most
// maxRecordedName bytes and valid UTF-8 (a protobuf string must be, or the whole
// batch fails to encode; a name from a URL path, GET /v1/models/{model}, need not be).
func recordedName(name string) string {
	if len(name) > maxRecordedName {
		name = name[:maxRecordedName]
	}
	return strings.ToValidUTF8(name, "\uFFFD")
}

func (c *call) usageEvent(status int, ae *apiError, elapsed time.Duration) *gatehousev1.UsageEvent {
	ev := &gatehousev1.UsageEvent{
		RequestId:       c.requestID,
		OrgId:           c.key.Org.ID,
		TeamId:          c.key.Team.ID,
		KeyId:           c.key.ID,
		AgentIdentity:   c.key.AgentIdentity,
		Model:           recordedName(c.modelName),
		Endpoint:        c.endpoint,
		StartedAtUnixMs: c.start.UnixMilli(),
		LatencyMs:       elapsed.Milliseconds(),
		StatusCode:      int32(status),
	}
	switch {
	case ae != nil:
		ev.ErrorClass = ae.code
	case status >= 400:
		ev.ErrorClass = "upstream_status"
	}
	ev.GuardrailEvents = c.guardEvents
	if m := c.model; m != nil {
		ev.UpstreamModel = m.UpstreamModel
		ev.ProviderId = m.Provider.ID
		if res := c.result; res != nil {
			// The model and deployment that answered (a fallback's prices apply).
			if res.Model != nil {
				m = res.Model
			}
			if d := res.Deployment; d != nil {
				ev.DeploymentId = d.ID
				ev.UpstreamModel = d.UpstreamModel
				ev.ProviderId = d.Provider.ID
			} else if res.Local {
				ev.UpstreamModel, ev.ProviderId = "", ""
			}
			if res.Fallback {
				ev.FallbackModel = m.Name
			}
			ev.Retries = int32(res.Retries)
			ev.OverheadUs = res.Overhead.Microseconds()
			ev.TimeToFirstTokenMs = res.TTFT.Milliseconds()
			ev.Streamed = res.Streamed
			ev.PromptTokens = res.Usage.PromptTokens
			ev.CompletionTokens = res.Usage.CompletionTokens
			ev.CachedTokens = res.Usage.CachedTokens
			ev.CacheWriteTokens = res.Usage.CacheWriteTokens
			ev.CacheWriteHourTokens = res.Usage.CacheWrite1hTokens
			ev.ServiceTier = res.ServiceTier
			var p *runtime.Provider
			if res.Deployment != nil {
				p = res.Deployment.Provider
			}
			ev.CostMicros = llm.TierCost(p, res.ServiceTier, m.Cost(res.Usage.Tokens()))
		}
	}
	return ev
}

// requireKey authenticates the request's key; the key is kept on the call even when
// its team or org is suspended, so the refusal is attributed.
func (s *Server) requireKey(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		rt := s.store.Load()
		if rt == nil {
			return errNotReady
		}
		token, err := presentedKey(r)
		if err != nil {
			return err
		}
		if token == "" {
			return errMissingKey
		}
		key, err := rt.Authenticate(token, time.Now())
		c.key = key
		if err != nil {
			return fmt.Errorf("authenticate: %w", err)
		}
		return h(w, r, c)
	}
}

// presentedKey is the key of the request: `Authorization: Bearer <key>` or
// `x-api-key: <key>`. Several keys — a header given twice, or both headers with
// different keys — are refused: a proxy in front may have checked another one than
// the gateway would use.
func presentedKey(r *http.Request) (string, error) {
	auth, xKey := presented(r.Header.Values("Authorization")), presented(r.Header.Values("x-api-key"))
	if len(auth) > 1 || len(xKey) > 1 {
		return "", errAmbiguousKey
	}
	var bearer, apiKey string
	if len(auth) == 1 {
		scheme, token, ok := strings.Cut(auth[0], " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", nil
		}
		bearer = strings.TrimSpace(token)
	}
	if len(xKey) == 1 {
		apiKey = strings.TrimSpace(xKey[0])
	}
	if bearer != "" && apiKey != "" && bearer != apiKey {
		return "", errAmbiguousKey
	}
	if bearer != "" || len(auth) == 1 {
		return bearer, nil
	}
	return apiKey, nil
}

// presented is the header values that say something (an empty header is none).
func presented(vs []string) []string {
	out := vs[:0:0]
	for _, v := range vs {
		if strings.TrimSpace(v) != "" {
			out = append(out, v)
		}
	}
	return out
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request, _ *call) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request, _ *call) error {
	if s.store.Load() == nil || s.draining.Load() {
		return errNotReady
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}

// notFound refuses unknown paths, in Anthropic's format under /v1/messages (e.g.
// /v1/messages/batches, which the gateway does not serve).
func (s *Server) notFound(_ http.ResponseWriter, r *http.Request, c *call) error {
	if strings.HasPrefix(r.URL.Path, "/v1/messages") {
		c.surface = llm.SurfaceMessages
	}
	return errNotFound
}

type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

type modelList struct {
	Object string        `json:"object"`
	Data   []modelObject `json:"data"`
}

// anthropicModel and anthropicModelList are Anthropic's shapes of the same (one page).
type anthropicModel struct {
	Type        string `json:"type"`
	ID          string `json:"id"`
	DisplayName string `json:"display_name"`
	CreatedAt   string `json:"created_at"`
}

type anthropicModelList struct {
	Data    []anthropicModel `json:"data"`
	HasMore bool             `json:"has_more"`
	FirstID *string          `json:"first_id"`
	LastID  *string          `json:"last_id"`
}

func (m modelObject) anthropic() anthropicModel {
	return anthropicModel{Type: "model", ID: m.ID, DisplayName: m.ID, CreatedAt: time.Unix(m.Created, 0).UTC().Format(time.RFC3339)}
}

// aliasOwner is the owned_by of a team alias in the model list.
const aliasOwner = "alias"

// listModels lists the org models the key may call in this region, then the team's
// aliases it may call (owned_by "alias").
func (s *Server) listModels(w http.ResponseWriter, r *http.Request, c *call) error {
	all := keyModels(c)
	if isAnthropic(r) {
		page, more, err := anthropicPage(all, r.URL.Query())
		if err != nil {
			return err
		}
		out := anthropicModelList{Data: make([]anthropicModel, 0, len(page)), HasMore: more}
		for _, m := range page {
			out.Data = append(out.Data, m.anthropic())
		}
		if len(page) > 0 {
			out.FirstID, out.LastID = &page[0].ID, &page[len(page)-1].ID
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	writeJSON(w, http.StatusOK, modelList{Object: "list", Data: all})
	return nil
}

// anthropicPage is the page of all that Anthropic's list parameters ask for: at most
// limit (1 to 1,000, default 20) models right after after_id or right before
// before_id (the first ones without either), and whether more lie that way. An id no
// longer in the list gives an empty page, so that a client paging through a list that
// changed stops rather than fails.
func anthropicPage(all []modelObject, q url.Values) ([]modelObject, bool, error) {
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return nil, false, &llm.InvalidRequestError{Param: "limit", Message: "limit: must be an integer between 1 and 1000."}
		}
		limit = n
	}
	after, before := q.Get("after_id"), q.Get("before_id")
	if after != "" && before != "" {
		return nil, false, &llm.InvalidRequestError{Param: "before_id", Message: "before_id and after_id cannot both be set."}
	}
	index := func(id string) int {
		return slices.IndexFunc(all, func(m modelObject) bool { return m.ID == id })
	}
	switch {
	case after != "":
		i := index(after)
		if i < 0 {
			return nil, false, nil
		}
		rest := all[i+1:]
		return rest[:min(limit, len(rest))], len(rest) > limit, nil
	case before != "":
		i := index(before)
		if i < 0 {
			return nil, false, nil
		}
		return all[max(i-limit, 0):i], i > limit, nil
	}
	return all[:min(limit, len(all))], len(all) > limit, nil
}

// keyModels are the models a key may use, as /v1/models lists them: the org's models
// by their own name, then the team's aliases.
func keyModels(c *call) []modelObject {
	models, aliases := c.key.Models(), c.key.Aliases()
	created := c.key.Org.BuiltAt.Unix()
	out := make([]modelObject, 0, len(models)+len(aliases))
	for _, m := range models {
		out = append(out, modelObject{ID: m.Name, Object: "model", Created: created, OwnedBy: c.key.Org.Slug})
	}
	for _, a := range aliases {
		out = append(out, modelObject{ID: a.Name, Object: "model", Created: created, OwnedBy: aliasOwner})
	}
	return out
}

// isAnthropic reports a request from an Anthropic client (it sends anthropic-version),
// answered in Anthropic's format on the routes both APIs share.
func isAnthropic(r *http.Request) bool { return r.Header.Get("Anthropic-Version") != "" }

// anthropicAware makes h's errors, its key's included, Anthropic's for Anthropic clients.
func anthropicAware(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		if isAnthropic(r) {
			c.surface = llm.SurfaceMessages
		}
		return h(w, r, c)
	}
}

// retrieveModel answers GET /v1/models/{model} (a name may hold slashes) as the list
// would show it; a model the key may not use does not exist for it.
func (s *Server) retrieveModel(w http.ResponseWriter, r *http.Request, c *call) error {
	name := r.PathValue("model")
	for _, m := range keyModels(c) {
		if m.ID != name {
			continue
		}
		if isAnthropic(r) {
			writeJSON(w, http.StatusOK, m.anthropic())
		} else {
			writeJSON(w, http.StatusOK, m)
		}
		return nil
	}
	c.modelName = name // the caller's raw path: usageEvent makes it valid UTF-8
	return runtime.ErrModelNotFound
}

func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > s.maxBody {
		return nil, fmt.Errorf("read body: %w", &http.MaxBytesError{Limit: s.maxBody})
	}
	size := int64(bytes.MinRead)
	if r.ContentLength > 0 {
		size = r.ContentLength + 1
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	// Bound the body upload (the server has no overall read timeout, which would also
	// cut long streams), then lift the deadline for the rest of the exchange.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(bodyReadTimeout))
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.maxBody))
	_ = rc.SetReadDeadline(time.Time{})
	if err != nil {
		if r.Context().Err() != nil {
			return nil, fmt.Errorf("read body: %w: %w", llm.ErrClientGone, err)
		}
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, fmt.Errorf("read body: %w", err)
		}
		return nil, fmt.Errorf("read body: %w", &llm.InvalidRequestError{Message: "The request body could not be read."})
	}
	return buf.Bytes(), nil
}

// bodyReadTimeout bounds how long a client may take to upload a request body.
const bodyReadTimeout = time.Minute

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "req_" + hex.EncodeToString(b[:])
}

func statusClass(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status/100) + "xx"
}

// responseWriter remembers whether and what the handler wrote, and stamps the
// gateway's overhead on answers that did not set it (those that waited on no
// upstream).
type responseWriter struct {
	http.ResponseWriter
	start time.Time
	// requestID is the id base gave the request (carried here, not in the request's
	// context: that would copy the request).
	requestID string
	status    int
	wrote     bool
}

func (w *responseWriter) WriteHeader(status int) {
	if !w.wrote {
		w.status = status
		w.wrote = true
		if h := w.Header(); len(h[llm.OverheadHeader]) == 0 {
			h[llm.OverheadHeader] = []string{llm.FormatOverhead(time.Since(w.start))}
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush on the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
	cost     prometheus.Counter
	overhead prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_gateway_requests_total",
			Help: "Requests served, by endpoint and status class.",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_gateway_request_duration_seconds",
			Help:    "Duration of requests, streams included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"endpoint"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_gateway_errors_total",
			Help: "Failed requests, by error class (the usage event's error_class).",
		}, []string{"class"}),
		cost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_gateway_cost_micros_total",
			Help: "Cost of the requests served, in micro-USD, from the price catalog.",
		}),
		overhead: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gatehouse_gateway_overhead_seconds",
			Help:    "Time the gateway added before the first byte of an LLM answer, upstream waits excluded.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1},
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.errors, m.cost, m.overhead} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}
