package llm

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/routing"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// wire is the format a provider speaks.
type wire uint8

const (
	wireOpenAI wire = iota // OpenAI-compatible and Azure OpenAI
	wireAnthropic
	wireGemini
)

func wireOf(t gatehousev1.ProviderType) wire {
	switch t {
	case gatehousev1.ProviderType_PROVIDER_TYPE_ANTHROPIC:
		return wireAnthropic
	case gatehousev1.ProviderType_PROVIDER_TYPE_GEMINI:
		return wireGemini
	}
	return wireOpenAI
}

// outcome says what an attempt means for the request.
type outcome uint8

const (
	// done: the request is answered (or failed in a way no other attempt can fix).
	done outcome = iota
	// retry: nothing was written and another attempt may succeed.
	retry
	// skip: this deployment cannot serve the request; try the others.
	skip
)

// failure describes a failed attempt.
type failure struct {
	err    error
	reason string // metric label
	// An upstream HTTP failure keeps its answer, to relay if nothing better comes.
	status     int
	header     http.Header
	body       []byte
	wire       wire
	retryAfter time.Duration
	model      *runtime.Model
	deployment *runtime.Deployment
}

// maxErrorBody bounds the error bodies kept for relaying.
const maxErrorBody = 64 << 10

// errTTFT is the cause of an attempt cancelled for its slow first token.
var errTTFT = errors.New("no first token within the ttft timeout")

// routingOf resolves a model's routing against the client's defaults.
func (c *Client) routingOf(m *runtime.Model) runtime.Routing {
	r := m.Routing
	if r.MaxRetries == 0 {
		r.MaxRetries = c.cfg.MaxRetries
	}
	if r.RetryBackoff == 0 {
		r.RetryBackoff = c.cfg.RetryBackoff
	}
	if r.Timeout == 0 {
		r.Timeout = c.cfg.Timeout
	}
	if r.TTFTTimeout == 0 {
		r.TTFTTimeout = c.cfg.TTFTTimeout
	}
	if r.BreakerFailures == 0 {
		r.BreakerFailures = c.cfg.BreakerFailures
	}
	if r.BreakerCooldown == 0 {
		r.BreakerCooldown = c.cfg.BreakerCooldown
	}
	return r
}

// deployments returns m's deployments, making one of its provider when a hand-built
// model has none.
func deployments(m *runtime.Model) *runtime.Model {
	if len(m.Deployments) > 0 {
		return m
	}
	cp := *m
	cp.Deployments = []*runtime.Deployment{{ID: m.ID, Provider: m.Provider, UpstreamModel: m.UpstreamModel, Weight: 1, StateKey: "/" + m.ID + "/" + m.Provider.ID}}
	return &cp
}

// Serve answers req: it tries the candidate models in order, each on its deployments
// as its routing says (retrying 429s, 5xx answers, connection failures and timeouts
// with backoff, never once the answer to the caller has begun), and relays the first
// answer to w in the caller's format. When every attempt failed it relays the last
// upstream error answer, or returns the error for the caller to render (res.Status is
// then 0).
func (c *Client) Serve(ctx context.Context, w http.ResponseWriter, req *Request) (res *Result, err error) {
	res = &Result{}
	defer func() {
		if res.Model != nil {
			c.metrics.upstream[boolIndex(res.Streamed)].Observe(res.Upstream.Seconds())
		}
		c.metrics.tokens[0].Add(float64(res.Usage.PromptTokens))
		c.metrics.tokens[1].Add(float64(res.Usage.CompletionTokens))
		c.metrics.tokens[2].Add(float64(res.Usage.CachedTokens))
		if res.UsageEstimated {
			c.metrics.estimated.Inc()
		}
	}()
	var last *failure
	attempts := 0
	for mi, cand := range req.Candidates {
		m := deployments(cand)
		rt := c.routingOf(m)
		breaker := routing.Breaker{Failures: rt.BreakerFailures, Cooldown: rt.BreakerCooldown}
		var tried, excluded []*runtime.Deployment
		for try := 0; try <= rt.MaxRetries; try++ {
			d, lease := c.router.Pick(m, rt.Strategy, breaker, tried, excluded)
			if d == nil {
				break
			}
			if !Speaks(d.Provider.Type) {
				lease.Done(routing.Neutral, 0)
				excluded = append(excluded, d)
				last = &failure{err: fmt.Errorf("chat completions: %w", &ProviderNotSupportedError{ProviderID: d.Provider.ID, Type: d.Provider.Type}), model: cand, deployment: d}
				continue
			}
			if try > 0 && last != nil && last.deployment == d {
				// Retrying the deployment that just failed: back off (exponentially, full
				// jitter, at least its Retry-After). Another deployment is tried at once.
				wait := c.jitter(min(c.cfg.MaxBackoff, rt.RetryBackoff<<min(try-1, 30)))
				wait = max(wait, last.retryAfter)
				t0 := time.Now()
				err := c.sleep(ctx, wait)
				res.UpstreamWait += time.Since(t0)
				if err != nil {
					lease.Done(routing.Neutral, 0)
					res.Retries = max(attempts-1, 0)
					return res, fmt.Errorf("retry backoff: %w: %w", ErrClientGone, err)
				}
			}
			if attempts > 0 && last != nil {
				c.metrics.retries.WithLabelValues(last.reason).Inc()
			}
			attempts++
			out, f := c.attempt(ctx, w, req, cand, d, rt, lease, res)
			if out == done {
				res.Retries = attempts - 1
				res.Model, res.Deployment, res.Fallback = cand, d, mi > 0
				if mi > 0 {
					c.metrics.fallbacks.Inc()
				}
				if f != nil {
					return res, f.err
				}
				return res, nil
			}
			f.model, f.deployment = cand, d
			last = f
			tried = append(tried, d)
			if out == skip || f.retryAfter > c.cfg.MaxBackoff {
				excluded = append(excluded, d)
			}
		}
	}
	res.Retries = max(attempts-1, 0)
	if last == nil {
		return res, fmt.Errorf("route: %w", ErrNoDeployment)
	}
	res.Model, res.Deployment = last.model, last.deployment
	if last.status != 0 && last.body != nil {
		// Relay the provider's last answer, as a single attempt would have.
		c.relayError(w, req, res, last.wire, last.status, last.header, last.body)
		return res, nil
	}
	return res, last.err
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func fullJitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// retryAfter reads Retry-After (seconds or an HTTP date) and retry-after-ms.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 && ms < 1e9 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 || s > 1e6 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// attempt makes one upstream attempt on d and, when it answers, relays the answer.
func (c *Client) attempt(ctx context.Context, w http.ResponseWriter, req *Request, m *runtime.Model, d *runtime.Deployment,
	rt runtime.Routing, lease routing.Lease, res *Result) (outcome, *failure) {
	release := lease.Done
	wk := wireOf(d.Provider.Type)
	ptype := ProviderTypeName(d.Provider.Type)
	stream := req.stream()

	start := time.Now()
	actx, cancel := context.WithTimeout(ctx, rt.Timeout)
	defer cancel()
	var ttft *time.Timer
	if stream && rt.TTFTTimeout > 0 {
		var cancelCause context.CancelCauseFunc
		actx, cancelCause = context.WithCancelCause(actx)
		defer cancelCause(nil)
		ttft = time.AfterFunc(rt.TTFTTimeout, func() { cancelCause(errTTFT) })
		defer ttft.Stop()
	}
	span := trace.SpanFromContext(actx)
	if c.tracing {
		actx, span = c.tracer.Start(actx, "llm.upstream", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
			attribute.String("gen_ai.system", ptype),
			attribute.String("gen_ai.request.model", d.UpstreamModel),
			attribute.String("gatehouse.model", m.Name),
			attribute.String("gatehouse.deployment_id", d.ID),
		))
		defer span.End()
	}
	hreq, err := c.upstreamRequest(actx, req, d, wk, stream)
	if err != nil {
		release(routing.Neutral, 0)
		if errors.Is(err, ErrOperationNotSupported) {
			return skip, &failure{err: err, reason: "unsupported"}
		}
		return done, &failure{err: err}
	}
	// The caller's trace context (or this attempt's span) travels upstream.
	c.prop.Inject(actx, propagation.HeaderCarrier(hreq.Header))

	fail := func(o routing.Outcome, out outcome, f *failure) (outcome, *failure) {
		elapsed := time.Since(start)
		res.UpstreamWait += elapsed
		release(o, 0)
		c.metrics.attempt(ptype, f.reason).Inc()
		if c.tracing {
			span.SetStatus(codes.Error, f.reason)
		}
		return out, f
	}
	transportFailure := func(err error, fallback error) (outcome, *failure) {
		switch {
		case ctx.Err() != nil:
			return fail(routing.Neutral, done, &failure{err: fmt.Errorf("upstream: %w: %w", ErrClientGone, err), reason: "client_gone"})
		case errors.Is(context.Cause(actx), errTTFT):
			return fail(routing.Failure, retry, &failure{err: fmt.Errorf("upstream: %w: %w", ErrUpstreamTimeout, errTTFT), reason: "ttft_timeout"})
		}
		e := classify(ctx, actx, err, fallback)
		reason := "unreachable"
		switch {
		case errors.Is(e, ErrUpstreamTimeout):
			reason = "timeout"
		case errors.Is(e, ErrUpstreamBadResponse):
			reason = "bad_response"
		}
		return fail(routing.Failure, retry, &failure{err: fmt.Errorf("upstream: %w", e), reason: reason})
	}

	resp, err := c.http.Do(hreq)
	if err != nil {
		return transportFailure(err, ErrUpstreamUnreachable)
	}
	defer resp.Body.Close()
	if c.tracing {
		span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	}

	switch s := resp.StatusCode; {
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return fail(routing.Failure, skip, &failure{err: fmt.Errorf("upstream: %w: provider %s answered %d", ErrUpstreamAuth, d.Provider.ID, s), reason: "auth"})
	case s == http.StatusTooManyRequests || s >= 500:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		f := &failure{err: fmt.Errorf("upstream: provider %s answered %d", d.Provider.ID, s), status: s, header: resp.Header, body: body,
			wire: wk, retryAfter: retryAfter(resp.Header, time.Now()), reason: "status_5xx"}
		o := routing.Failure
		if s == http.StatusTooManyRequests {
			f.reason, o = "status_429", routing.Neutral
		}
		return fail(o, retry, f)
	case s < 200 || s > 299:
		// The caller's request was refused: another deployment would refuse it too.
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if err != nil {
			return transportFailure(err, ErrUpstreamBadResponse)
		}
		res.UpstreamWait += time.Since(start)
		release(routing.Neutral, 0)
		c.metrics.attempt(ptype, "status_4xx").Inc()
		res.TTFT, res.Upstream = time.Since(start), time.Since(start)
		c.relayError(w, req, res, wk, s, resp.Header, body)
		return done, nil
	}

	if stream && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		rd := newSSEReader(resp.Body)
		// Hold the answer back until the first token: until then a failure (a slow
		// first token included) can still be retried elsewhere. Events before it
		// (message_start, a role-only chunk, pings) are kept and relayed first.
		var prelude []sseEvent
		for {
			raw, name, data, err := rd.next()
			if err == io.EOF && len(prelude) > 0 {
				// An answer without any token: relay what came.
				break
			}
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return transportFailure(err, ErrUpstreamBadResponse)
			}
			if data != nil && (firstToken(wk, data) || len(prelude) >= maxPrelude) {
				// The reader's buffers stay valid until its next read, which comes
				// after the relay handled this event: no copy needed.
				prelude = append(prelude, sseEvent{raw: raw, name: name, data: data})
				break
			}
			prelude = append(prelude, cloneEvent(raw, name, data))
		}
		if ttft != nil {
			ttft.Stop()
		}
		res.TTFT = time.Since(start)
		res.Streamed = true
		res.UpstreamWait += res.TTFT
		c.metrics.ttft.Observe(res.TTFT.Seconds())
		c.metrics.latency(ptype).Observe(res.TTFT.Seconds())
		if c.tracing {
			span.AddEvent("first token")
		}
		err := c.relayStream(ctx, actx, w, req, res, wk, rd, prelude)
		res.Upstream = time.Since(start)
		o, reason := routing.Success, "ok"
		switch {
		case errors.Is(err, ErrClientGone):
			o, reason = routing.Neutral, "client_gone"
		case errors.Is(err, ErrUpstreamStream) || errors.Is(err, ErrUpstreamTimeout) || errors.Is(err, ErrUpstreamBadResponse):
			o, reason = routing.Failure, "stream_broken"
			if c.tracing {
				span.SetStatus(codes.Error, reason)
			}
		}
		release(o, res.TTFT)
		c.metrics.attempt(ptype, reason).Inc()
		if err != nil {
			return done, &failure{err: err}
		}
		return done, nil
	}

	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxResp+1))
	if err != nil {
		return transportFailure(err, ErrUpstreamBadResponse)
	}
	if int64(len(body)) > c.maxResp {
		return fail(routing.Failure, retry, &failure{err: fmt.Errorf("upstream: %w: body over %d bytes", ErrUpstreamBadResponse, c.maxResp), reason: "bad_response"})
	}
	latency := time.Since(start)
	res.TTFT, res.Upstream = latency, latency
	res.UpstreamWait += latency
	if err := c.relayBody(w, req, res, wk, d, resp.Header, body); err != nil {
		if errors.Is(err, ErrUpstreamBadResponse) && res.Status == 0 {
			release(routing.Failure, 0)
			c.metrics.attempt(ptype, "bad_response").Inc()
			return retry, &failure{err: err, reason: "bad_response"}
		}
		release(routing.Success, latency)
		c.metrics.attempt(ptype, "ok").Inc()
		return done, &failure{err: err}
	}
	release(routing.Success, latency)
	c.metrics.attempt(ptype, "ok").Inc()
	c.metrics.latency(ptype).Observe(latency.Seconds())
	return done, nil
}

// upstreamRequest builds the request for d.
func (c *Client) upstreamRequest(ctx context.Context, req *Request, d *runtime.Deployment, wk wire, stream bool) (*http.Request, error) {
	p := d.Provider
	var target string
	var body []byte
	if req.Surface == SurfaceEmbeddings {
		switch wk {
		case wireAnthropic:
			return nil, fmt.Errorf("embeddings: %w", ErrOperationNotSupported)
		case wireGemini:
			gr := geminiEmbedRequest{}
			name := geminiModelPath(d.UpstreamModel)
			if req.Embeddings.Texts == nil {
				return nil, invalidf("input", "Token inputs are not supported by this model's provider; send strings.")
			}
			for _, t := range req.Embeddings.Texts {
				gr.Requests = append(gr.Requests, geminiEmbedOne{Model: name, Content: geminiContent{Parts: []geminiPart{{Text: t}}}, OutputDimensionality: req.Embeddings.Dimensions})
			}
			body, _ = json.Marshal(gr)
			target = p.Base + "/" + name + ":batchEmbedContents"
		default:
			body = req.Embeddings.upstreamBody(d.UpstreamModel)
			target = openAIURL(p, d.UpstreamModel, "embeddings")
		}
	} else {
		switch wk {
		case wireOpenAI:
			body = req.Chat.UpstreamBody(d.UpstreamModel)
			target = openAIURL(p, d.UpstreamModel, "chat/completions")
		case wireAnthropic:
			if req.Surface == SurfaceMessages {
				body = req.Messages.upstreamBody(d.UpstreamModel)
			} else {
				cb, err := req.Chat.body()
				if err != nil {
					return nil, err
				}
				ar, err := chatToAnthropic(cb, d.UpstreamModel)
				if err != nil {
					return nil, err
				}
				body, _ = json.Marshal(ar)
			}
			target = p.Base + "/messages"
		case wireGemini:
			cb, err := req.Chat.body()
			if err != nil {
				return nil, err
			}
			gr, err := chatToGemini(cb)
			if err != nil {
				return nil, err
			}
			body, _ = json.Marshal(gr)
			target = p.Base + "/" + geminiModelPath(d.UpstreamModel) + ":generateContent"
			if stream {
				target = p.Base + "/" + geminiModelPath(d.UpstreamModel) + ":streamGenerateContent?alt=sse"
			}
		}
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("upstream request: %w: %w", ErrUpstreamUnreachable, err)
	}
	h := hreq.Header
	h.Set("Content-Type", "application/json")
	if stream {
		h.Set("Accept", "text/event-stream")
	} else {
		h.Set("Accept", "application/json")
	}
	switch p.Type {
	case gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE:
		switch {
		case p.Authorization != "":
			h.Set("Authorization", p.Authorization)
		case p.APIKey != "":
			h.Set("Authorization", "Bearer "+p.APIKey)
		}
	case gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI:
		if p.APIKey != "" {
			h.Set("Api-Key", p.APIKey)
		}
	case gatehousev1.ProviderType_PROVIDER_TYPE_ANTHROPIC:
		if p.APIKey != "" {
			h.Set("X-Api-Key", p.APIKey)
		}
		version := anthropicVersion
		if req.Surface == SurfaceMessages && req.Header != nil {
			if v := req.Header.Get("Anthropic-Version"); v != "" {
				version = v
			}
			if v := req.Header.Get("Anthropic-Beta"); v != "" {
				h.Set("Anthropic-Beta", v)
			}
		}
		h.Set("Anthropic-Version", version)
	case gatehousev1.ProviderType_PROVIDER_TYPE_GEMINI:
		if p.APIKey != "" {
			h.Set("X-Goog-Api-Key", p.APIKey)
		}
	}
	return hreq, nil
}

// openAIURL is the URL of an OpenAI-style operation: under the base URL, or under the
// deployment for Azure OpenAI.
func openAIURL(p *runtime.Provider, model, op string) string {
	if p.Type == gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI {
		root := strings.TrimSuffix(p.Base, "/openai")
		version := p.APIVersion
		if version == "" {
			version = runtime.DefaultAzureAPIVersion
		}
		return root + "/openai/deployments/" + url.PathEscape(model) + "/" + op + "?api-version=" + url.QueryEscape(version)
	}
	if op == "chat/completions" && p.ChatCompletionsURL != "" {
		return p.ChatCompletionsURL
	}
	return p.Base + "/" + op
}

func geminiModelPath(model string) string {
	if strings.HasPrefix(model, "models/") || strings.HasPrefix(model, "tunedModels/") {
		return model
	}
	return "models/" + model
}

// commit sets the headers every answer carries, before its first byte.
func commit(w http.ResponseWriter, req *Request, res *Result) {
	if !req.Start.IsZero() {
		res.Overhead = max(time.Since(req.Start)-res.UpstreamWait, 0)
		w.Header()[OverheadHeader] = []string{FormatOverhead(res.Overhead)}
	}
}

// relayBody answers with a complete (not streamed) upstream answer.
func (c *Client) relayBody(w http.ResponseWriter, req *Request, res *Result, wk wire, d *runtime.Deployment, header http.Header, body []byte) error {
	if req.Surface == SurfaceEmbeddings {
		if wk == wireGemini {
			out, u, err := geminiEmbeddings(body, req.Embeddings, d.UpstreamModel)
			if err != nil {
				return err
			}
			res.Usage, res.UsageEstimated = u, true
			return c.write(w, req, res, http.StatusOK, "application/json", out)
		}
		var parsed struct {
			Usage *usageJSON `json:"usage"`
		}
		if json.Unmarshal(body, &parsed) == nil && parsed.Usage != nil {
			res.Usage = parsed.Usage.usage()
		}
		return c.write(w, req, res, http.StatusOK, contentType(header), body)
	}
	passthrough := req.Filter == nil && !req.CaptureText &&
		((req.Surface == SurfaceChat && wk == wireOpenAI) || (req.Surface == SurfaceMessages && wk == wireAnthropic))
	if passthrough {
		if wk == wireOpenAI {
			var parsed struct {
				Usage *usageJSON `json:"usage"`
			}
			if json.Unmarshal(body, &parsed) == nil && parsed.Usage != nil {
				res.Usage = parsed.Usage.usage()
			}
		} else {
			var parsed struct {
				Usage *anthropicUsage `json:"usage"`
			}
			if json.Unmarshal(body, &parsed) == nil && parsed.Usage != nil {
				res.Usage = parsed.Usage.usage()
			}
		}
		return c.write(w, req, res, http.StatusOK, contentType(header), body)
	}

	cr, err := decodeAnswer(wk, body, d.UpstreamModel, c.now().Unix())
	if err != nil {
		return err
	}
	if cr.Usage != nil {
		res.Usage = cr.Usage.usage()
	}
	if len(cr.Choices) > 0 && cr.Choices[0].Message.Content != nil {
		text := *cr.Choices[0].Message.Content
		if req.Filter != nil {
			filtered, err := req.Filter.Filter(text)
			if err == nil {
				var rest string
				rest, err = req.Filter.Flush()
				filtered += rest
			}
			if err != nil {
				return fmt.Errorf("response filter: %w", err)
			}
			text = filtered
			cr.Choices[0].Message.Content = &text
		}
		if req.CaptureText {
			res.Text = text
		}
	}
	var out any = cr
	switch req.Surface {
	case SurfaceMessages:
		out = chatToMessages(cr, cr.Model)
	case SurfaceResponses:
		out = chatToResponse(cr, req.Responses.body, cr.Model)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("render answer: %w", err)
	}
	return c.write(w, req, res, http.StatusOK, "application/json", b)
}

// decodeAnswer reads a complete upstream answer as a chat completion.
func decodeAnswer(wk wire, body []byte, upstreamModel string, now int64) (*chatResponse, error) {
	switch wk {
	case wireAnthropic:
		var ar anthropicResponse
		if err := json.Unmarshal(body, &ar); err != nil {
			return nil, fmt.Errorf("%w: anthropic answer: %w", ErrUpstreamBadResponse, err)
		}
		return anthropicToChat(&ar, now), nil
	case wireGemini:
		var gr geminiResponse
		if err := json.Unmarshal(body, &gr); err != nil {
			return nil, fmt.Errorf("%w: gemini answer: %w", ErrUpstreamBadResponse, err)
		}
		return geminiToChat(&gr, upstreamModel, now), nil
	}
	var cr chatResponse
	if err := json.Unmarshal(body, &cr); err != nil {
		return nil, fmt.Errorf("%w: chat answer: %w", ErrUpstreamBadResponse, err)
	}
	return &cr, nil
}

func geminiEmbeddings(body []byte, req *EmbeddingsRequest, model string) ([]byte, Usage, error) {
	var gr geminiEmbedResponse
	if err := json.Unmarshal(body, &gr); err != nil {
		return nil, Usage{}, fmt.Errorf("%w: gemini embeddings: %w", ErrUpstreamBadResponse, err)
	}
	type item struct {
		Object    string `json:"object"`
		Index     int    `json:"index"`
		Embedding any    `json:"embedding"`
	}
	data := make([]item, 0, len(gr.Embeddings))
	for i, e := range gr.Embeddings {
		var v any = e.Values
		if req.EncodingFormat == "base64" {
			buf := make([]byte, 4*len(e.Values))
			for j, f := range e.Values {
				binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(float32(f)))
			}
			v = base64.StdEncoding.EncodeToString(buf)
		}
		data = append(data, item{Object: "embedding", Index: i, Embedding: v})
	}
	// Gemini reports no usage for embeddings: the estimate stands in.
	u := Usage{PromptTokens: req.EstimateTokens()}
	out, err := json.Marshal(map[string]any{"object": "list", "data": data, "model": model,
		"usage": map[string]int64{"prompt_tokens": u.PromptTokens, "total_tokens": u.PromptTokens}})
	return out, u, err
}

func contentType(h http.Header) string {
	if ct := h.Get("Content-Type"); ct != "" {
		return ct
	}
	return "application/json"
}

func (c *Client) write(w http.ResponseWriter, req *Request, res *Result, status int, ct string, body []byte) error {
	commit(w, req, res)
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	res.Status = status
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("write: %w: %w", ErrClientGone, err)
	}
	return nil
}

// relayError answers with an upstream error: as it came when the provider speaks the
// caller's format, translated otherwise.
func (c *Client) relayError(w http.ResponseWriter, req *Request, res *Result, wk wire, status int, header http.Header, body []byte) {
	if ra := header.Get("Retry-After"); ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	native := (req.Surface == SurfaceMessages && wk == wireAnthropic) || (req.Surface != SurfaceMessages && wk == wireOpenAI)
	if native && json.Valid(body) {
		_ = c.write(w, req, res, status, contentType(header), body)
		return
	}
	var parsed struct {
		Error struct {
			Message string          `json:"message"`
			Type    string          `json:"type"`
			Code    json.RawMessage `json:"code"`
			Status  string          `json:"status"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &parsed)
	msg := parsed.Error.Message
	if msg == "" {
		msg = "The model provider answered " + strconv.Itoa(status) + " " + http.StatusText(status) + "."
	}
	code := ""
	_ = json.Unmarshal(parsed.Error.Code, &code)
	if code == "" {
		code = strings.ToLower(parsed.Error.Status)
	}
	commit(w, req, res)
	res.Status = status
	WriteError(w, req.Surface, status, openAIErrorType(status), code, "", msg)
}

// relayStream relays a stream whose first data event was read; it returns when the
// stream ended. Failures end the caller's stream with an error event.
func (c *Client) relayStream(ctx, actx context.Context, w http.ResponseWriter, req *Request, res *Result, wk wire, rd *sseReader, prelude []sseEvent) error {
	commit(w, req, res)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	res.Status = http.StatusOK
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		return fmt.Errorf("stream: flush: %w: %w", ErrClientGone, err)
	}
	s := &streamRelay{c: c, ctx: ctx, actx: actx, w: w, rc: rc, req: req, res: res, wk: wk, rd: rd, pending: prelude}
	var err error
	switch {
	case req.Filter == nil && !req.CaptureText && req.Surface == SurfaceChat && wk == wireOpenAI:
		err = s.raw(chatTextKeys)
	case req.Filter == nil && !req.CaptureText && req.Surface == SurfaceMessages && wk == wireAnthropic:
		err = s.raw(anthropicTextKeys)
	default:
		err = s.translate()
	}
	if !s.sawUsage {
		// The provider never reported usage (the caller left, or the stream broke):
		// charge an estimate of what was used.
		res.UsageEstimated = true
		res.Usage = Usage{PromptTokens: req.promptTokensEstimate(), CompletionTokens: int64(s.chars+3) / 4}
	}
	return err
}

// promptTokensEstimate estimates the prompt's tokens (characters divided by 4).
func (r *Request) promptTokensEstimate() int64 {
	if r.Chat == nil {
		return 0
	}
	return r.Chat.promptEstimate()
}

type streamRelay struct {
	c    *Client
	ctx  context.Context
	actx context.Context
	w    http.ResponseWriter
	rc   *http.ResponseController
	req  *Request
	res  *Result
	wk   wire
	rd   *sseReader
	// pending are events read before the answer began, relayed first.
	pending  []sseEvent
	sawUsage bool
	chars    int
	text     strings.Builder
}

var (
	chatTextKeys      = [][]byte{[]byte(`"content":"`), []byte(`"arguments":"`)}
	anthropicTextKeys = [][]byte{[]byte(`"text":"`), []byte(`"partial_json":"`)}
)

// textLen counts the bytes of the JSON string values that follow keys in data, without
// decoding it: enough to estimate the tokens of a stream cut short.
func textLen(data []byte, keys [][]byte) int {
	n := 0
	for _, k := range keys {
		rest := data
		for {
			i := bytes.Index(rest, k)
			if i < 0 {
				break
			}
			rest = rest[i+len(k):]
			j := 0
			for j < len(rest) && rest[j] != '"' {
				if rest[j] == '\\' {
					j++
				}
				j++
			}
			n += min(j, len(rest))
			rest = rest[min(j, len(rest)):]
		}
	}
	return n
}

func (s *streamRelay) send(b []byte) error {
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("stream: write: %w: %w", ErrClientGone, err)
	}
	if err := s.rc.Flush(); err != nil {
		return fmt.Errorf("stream: flush: %w: %w", ErrClientGone, err)
	}
	return nil
}

// readErr classifies an error reading the upstream stream.
func (s *streamRelay) readErr(err error) error {
	switch {
	case s.ctx.Err() != nil:
		return fmt.Errorf("stream: %w: %w", ErrClientGone, err)
	case s.actx.Err() != nil:
		return fmt.Errorf("stream: %w: %w", ErrUpstreamTimeout, err)
	}
	return fmt.Errorf("stream: %w: %w", ErrUpstreamStream, err)
}

// raw relays events unchanged (the caller speaks the provider's format), reading the
// usage they carry.
func (s *streamRelay) raw(keys [][]byte) error {
	for {
		raw, _, data, err := s.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			err = s.readErr(err)
			if !errors.Is(err, ErrClientGone) {
				_ = s.send(s.failEvent("upstream_stream_broken", "The model provider broke off the stream."))
			}
			return err
		}
		forward := true
		if data != nil {
			s.chars += textLen(data, keys)
			if s.wk == wireOpenAI {
				before := s.res.Usage
				forward = inspectData(data, s.req.Chat.IncludeUsage, &s.res.Usage)
				if s.res.Usage != before {
					s.sawUsage = true
				}
			} else {
				s.anthropicUsage(data)
			}
		}
		if forward {
			if err := s.send(raw); err != nil {
				return err
			}
		}
	}
}

// next returns the next upstream event: the held-back ones first.
func (s *streamRelay) next() (raw, name, data []byte, err error) {
	if len(s.pending) > 0 {
		ev := s.pending[0]
		s.pending = s.pending[1:]
		return ev.raw, ev.name, ev.data, nil
	}
	return s.rd.next()
}

// sseEvent is an upstream event held back until the answer began.
type sseEvent struct{ raw, name, data []byte }

// maxPrelude bounds the events held back waiting for the first token.
const maxPrelude = 64

func cloneEvent(raw, name, data []byte) sseEvent {
	buf := make([]byte, 0, len(raw)+len(name)+len(data))
	buf = append(buf, raw...)
	buf = append(buf, name...)
	buf = append(buf, data...)
	ev := sseEvent{raw: buf[:len(raw):len(raw)], name: buf[len(raw) : len(raw)+len(name) : len(raw)+len(name)], data: buf[len(raw)+len(name):]}
	if data == nil {
		ev.data = nil
	}
	return ev
}

var (
	toolCallsKey    = []byte(`"tool_calls"`)
	finishReasonKey = []byte(`"finish_reason":"`)
	errorKey        = []byte(`"error"`)
)

// firstToken reports whether an event carries the answer's first token (or ends or
// fails the answer): the time to it is the time to first token.
func firstToken(wk wire, data []byte) bool {
	switch wk {
	case wireAnthropic:
		var ev struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(data, &ev) != nil {
			return true
		}
		switch ev.Type {
		case "message_start", "content_block_start", "ping":
			return false
		}
		return true
	case wireGemini:
		return true
	}
	return textLen(data, chatTextKeys) > 0 || bytes.Contains(data, toolCallsKey) || bytes.Equal(data, doneData) ||
		hasUsage(data) || bytes.Contains(data, finishReasonKey) || bytes.Contains(data, errorKey)
}

var (
	messageStartType = []byte(`"message_start"`)
	messageDeltaType = []byte(`"message_delta"`)
)

// anthropicUsage reads usage from message_start and message_delta events.
func (s *streamRelay) anthropicUsage(data []byte) {
	if !bytes.Contains(data, messageStartType) && !bytes.Contains(data, messageDeltaType) {
		return
	}
	var ev struct {
		Type    string `json:"type"`
		Message struct {
			Usage *anthropicUsage `json:"usage"`
		} `json:"message"`
		Usage *anthropicUsage `json:"usage"`
	}
	if json.Unmarshal(data, &ev) != nil {
		return
	}
	switch {
	case ev.Type == "message_start" && ev.Message.Usage != nil:
		s.res.Usage = ev.Message.Usage.usage()
	case ev.Type == "message_delta" && ev.Usage != nil:
		u := s.res.Usage
		u.CompletionTokens = ev.Usage.OutputTokens
		if ev.Usage.InputTokens > 0 {
			u = ev.Usage.usage()
		}
		s.res.Usage = u
		s.sawUsage = true
	}
}

// failEvent renders an in-stream error in the caller's format.
func (s *streamRelay) failEvent(code, msg string) []byte {
	switch s.req.Surface {
	case SurfaceMessages:
		e := &messagesEncoder{}
		return append([]byte(nil), e.fail(code, msg)...)
	case SurfaceResponses:
		e := &responsesEncoder{req: s.req.Responses.body, model: s.req.Chat.Model}
		return append([]byte(nil), e.fail(code, msg)...)
	}
	return (&chatEncoder{}).fail(code, msg)
}

// streamDecoder turns an upstream's stream events into chat chunks.
type streamDecoder interface {
	decode(name, data []byte) (chunks []chatChunk, done bool, err error)
	// usage returns the usage the stream reported, if it did.
	usage() (Usage, bool)
}

// streamEncoder renders chat chunks in the caller's format.
type streamEncoder interface {
	chunk(c *chatChunk) []byte
	end(id string, u Usage) []byte
	fail(code, msg string) []byte
}

// translate relays a stream through chat chunks: decoded from the provider's format,
// filtered, encoded in the caller's.
func (s *streamRelay) translate() error {
	var dec streamDecoder
	created := s.c.now().Unix()
	switch s.wk {
	case wireAnthropic:
		dec = &anthropicDecoder{d: anthropicStreamDecoder{created: created}}
	case wireGemini:
		dec = &geminiDecoder{d: geminiStreamDecoder{created: created, model: s.res.modelName()}}
	default:
		dec = &openAIDecoder{}
	}
	var enc streamEncoder
	switch s.req.Surface {
	case SurfaceMessages:
		enc = &messagesEncoder{model: s.req.Messages.Model}
	case SurfaceResponses:
		enc = &responsesEncoder{req: s.req.Responses.body, model: s.req.Responses.Model}
	default:
		enc = &chatEncoder{includeUsage: s.req.Chat.IncludeUsage}
	}
	id := ""
	cut := func(err error) error {
		code, msg := "upstream_stream_broken", "The model provider broke off the stream."
		var ref *Refusal
		var se *streamError
		switch {
		case errors.As(err, &ref):
			code, msg = ref.Code, ref.Message
		case errors.As(err, &se):
			msg = se.msg
		case errors.Is(err, ErrUpstreamTimeout):
			code, msg = "upstream_timeout", "The model provider did not finish in time."
		}
		if !errors.Is(err, ErrClientGone) {
			_ = s.send(enc.fail(code, msg))
		}
		return err
	}
	flushed := false
	flush := func(c *chatChunk) (*chatChunk, error) {
		if s.req.Filter == nil || flushed {
			return c, nil
		}
		flushed = true
		rest, err := s.req.Filter.Flush()
		if err != nil || rest == "" {
			return c, err
		}
		return &chatChunk{ID: c.ID, Object: "chat.completion.chunk", Created: c.Created, Model: c.Model,
			Choices: []chunkChoice{{Delta: chunkDelta{Content: &rest}}}}, nil
	}
	emit := func(c *chatChunk) error {
		if c.ID != "" {
			id = c.ID
		}
		for i := range c.Choices {
			ch := &c.Choices[i]
			if ch.Index != 0 {
				continue
			}
			if ch.FinishReason != nil && *ch.FinishReason != "" {
				extra, err := flush(c)
				if err != nil {
					return err
				}
				if extra != c {
					if err := s.send(enc.chunk(extra)); err != nil {
						return err
					}
					s.capture(*extra.Choices[0].Delta.Content)
				}
			}
			if t := ch.Delta.Content; t != nil && *t != "" {
				s.chars += len(*t)
				if s.req.Filter != nil {
					out, err := s.req.Filter.Filter(*t)
					if err != nil {
						return err
					}
					ch.Delta.Content = &out
				}
				s.capture(*ch.Delta.Content)
			}
			for _, tc := range ch.Delta.ToolCalls {
				s.chars += len(tc.Function.Arguments)
			}
		}
		if b := enc.chunk(c); len(b) > 0 {
			return s.send(b)
		}
		return nil
	}
	for {
		_, name, data, err := s.next()
		if err == io.EOF {
			if s.wk != wireGemini && !s.sawAny(dec) {
				return cut(fmt.Errorf("stream: %w: %w", ErrUpstreamStream, io.ErrUnexpectedEOF))
			}
			break
		}
		if err != nil {
			return cut(s.readErr(err))
		}
		if data != nil {
			chunks, end, err := dec.decode(name, data)
			if err != nil {
				return cut(err)
			}
			for i := range chunks {
				if chunks[i].Usage != nil && len(chunks[i].Choices) == 0 {
					continue
				}
				if err := emit(&chunks[i]); err != nil {
					return cut(err)
				}
			}
			if end {
				break
			}
		}
	}
	if extra, err := flush(&chatChunk{ID: id, Object: "chat.completion.chunk"}); err != nil {
		return cut(err)
	} else if extra.Choices != nil {
		if err := s.send(enc.chunk(extra)); err != nil {
			return err
		}
		s.capture(*extra.Choices[0].Delta.Content)
	}
	if u, ok := dec.usage(); ok {
		s.res.Usage, s.sawUsage = u, true
	} else {
		s.res.Usage = Usage{PromptTokens: s.req.promptTokensEstimate(), CompletionTokens: int64(s.chars+3) / 4}
		s.res.UsageEstimated = true
		s.sawUsage = true
	}
	return s.send(enc.end(id, s.res.Usage))
}

// sawAny reports whether an OpenAI or Anthropic stream ended properly: OpenAI streams
// end with [DONE] or at EOF after usage; Anthropic ones with message_stop.
func (s *streamRelay) sawAny(dec streamDecoder) bool {
	if d, ok := dec.(*openAIDecoder); ok {
		return d.sawUsage || d.sawDone || d.sawFinish
	}
	return false
}

func (s *streamRelay) capture(t string) {
	if s.req.CaptureText {
		s.text.WriteString(t)
		s.res.Text = s.text.String()
	}
}

func (r *Result) modelName() string {
	if r.Deployment != nil {
		return r.Deployment.UpstreamModel
	}
	return ""
}

type openAIDecoder struct {
	u                            Usage
	sawUsage, sawDone, sawFinish bool
}

func (d *openAIDecoder) decode(_, data []byte) ([]chatChunk, bool, error) {
	if bytes.Equal(data, doneData) {
		d.sawDone = true
		return nil, true, nil
	}
	var c chatChunk
	if err := json.Unmarshal(data, &c); err != nil {
		var e struct {
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != nil {
			return nil, false, &streamError{msg: e.Error.Message}
		}
		return nil, false, fmt.Errorf("stream: %w: chunk: %w", ErrUpstreamBadResponse, err)
	}
	if c.Usage != nil {
		d.u, d.sawUsage = c.Usage.usage(), true
	}
	for _, ch := range c.Choices {
		if ch.FinishReason != nil {
			d.sawFinish = true
		}
	}
	return []chatChunk{c}, false, nil
}

func (d *openAIDecoder) usage() (Usage, bool) { return d.u, d.sawUsage }

type anthropicDecoder struct {
	d    anthropicStreamDecoder
	seen bool
}

func (a *anthropicDecoder) decode(_, data []byte) ([]chatChunk, bool, error) {
	chunks, end, err := a.d.decode(data)
	if end {
		a.seen = true
	}
	return chunks, end, err
}

func (a *anthropicDecoder) usage() (Usage, bool) {
	if !a.seen {
		return Usage{}, false
	}
	return a.d.usage.usage(), true
}

type geminiDecoder struct{ d geminiStreamDecoder }

func (g *geminiDecoder) decode(_, data []byte) ([]chatChunk, bool, error) {
	chunks, err := g.d.decode(data)
	return chunks, false, err
}

func (g *geminiDecoder) usage() (Usage, bool) {
	if g.d.usage == nil {
		return Usage{}, false
	}
	return g.d.usage.usage(), true
}

// chatEncoder renders chat chunks as a chat completions stream.
type chatEncoder struct {
	includeUsage bool
	id, model    string
	created      int64
	buf          []byte
}

func (e *chatEncoder) chunk(c *chatChunk) []byte {
	e.id, e.model, e.created = c.ID, c.Model, c.Created
	c.Object = "chat.completion.chunk"
	c.Usage = nil
	data, _ := json.Marshal(c)
	e.buf = appendEvent(e.buf[:0], "", data)
	return e.buf
}

func (e *chatEncoder) end(id string, u Usage) []byte {
	e.buf = e.buf[:0]
	if e.includeUsage {
		data, _ := json.Marshal(chatChunk{ID: e.id, Object: "chat.completion.chunk", Created: e.created, Model: e.model, Choices: []chunkChoice{}, Usage: u.json()})
		e.buf = appendEvent(e.buf, "", data)
	}
	return appendEvent(e.buf, "", doneData)
}

func (e *chatEncoder) fail(code, msg string) []byte {
	data, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": "server_error", "param": nil, "code": code}})
	return appendEvent(nil, "", data)
}

// openAIErrorType is the OpenAI error type of an HTTP status.
func openAIErrorType(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

// AnthropicErrorType is the Anthropic error type of an HTTP status.
func AnthropicErrorType(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid_request_error"
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case 529, http.StatusServiceUnavailable:
		return "overloaded_error"
	case http.StatusGatewayTimeout:
		return "timeout_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

// ErrorBody renders an error in the format of surface: OpenAI's
// {"error":{"message","type","param","code"}} for the OpenAI surfaces, Anthropic's
// {"type":"error","error":{"type","message"}} for Messages (whose type follows the
// status, as Anthropic's does).
func ErrorBody(s Surface, status int, typ, code, param, msg string) []byte {
	var v any
	if s == SurfaceMessages {
		v = anthropicErrorOf(AnthropicErrorType(status), msg)
	} else {
		e := map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}
		if param != "" {
			e["param"] = param
		}
		if code != "" {
			e["code"] = code
		}
		v = map[string]any{"error": e}
	}
	b, _ := json.Marshal(v)
	return append(b, '\n')
}

// WriteError writes an error answer in the format of surface.
func WriteError(w http.ResponseWriter, s Surface, status int, typ, code, param, msg string) {
	body := ErrorBody(s, status, typ, code, param, msg)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
