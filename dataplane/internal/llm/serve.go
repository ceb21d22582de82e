package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
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
	// wireResponses is the Responses API of an OpenAI-compatible or Azure OpenAI
	// provider (Provider.ResponsesURL), spoken for Responses requests the chat form
	// cannot carry, and for every one to a provider flagged native (see wireFor).
	wireResponses
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
	// local: the attempt was refused before any upstream call (the provider cannot
	// carry the request); it is not counted as an attempt or a retry.
	local bool
}

// maxErrorBody bounds the error bodies kept for relaying.
const maxErrorBody = 64 << 10

// errTTFT is the cause of an attempt cancelled for its slow first token.
var errTTFT = errors.New("no first token within the ttft timeout")

// errStreamIdle is the cause of a stream cancelled for its silence after the first token.
var errStreamIdle = errors.New("no stream event within the stream idle timeout")

// azureOperationNotSupported reports whether an Azure OpenAI error body says the
// deployment does not serve the operation (error code OperationNotSupported).
func azureOperationNotSupported(body []byte) bool {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	return json.Unmarshal(body, &e) == nil && strings.EqualFold(e.Error.Code, "OperationNotSupported")
}

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
	if r.StreamIdleTimeout == 0 {
		r.StreamIdleTimeout = c.cfg.StreamIdleTimeout
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
		if res.abandoned != (Usage{}) {
			res.Usage = res.Usage.add(res.abandoned)
			res.UsageEstimated = true
		}
		// What a provider reported is held within bounds before anyone prices it.
		res.Usage = res.Usage.clamped()
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
	if err := c.openPrevious(req); err != nil {
		return res, err
	}
	var last *failure
	attempts := 0
	for mi, cand := range req.Candidates {
		m := deployments(cand)
		rt := c.routingOf(m)
		breaker := routing.Breaker{Failures: rt.BreakerFailures, Cooldown: rt.BreakerCooldown}
		var tried, excluded []*runtime.Deployment
		admitted := mi == 0 || req.Fallback == nil
		for try := 0; try <= rt.MaxRetries; try++ {
			d, lease := c.router.Pick(m, rt.Strategy, breaker, tried, excluded)
			if d == nil {
				break
			}
			if !Speaks(d.Provider.Type) {
				lease.Done(routing.Neutral, 0)
				excluded = append(excluded, d)
				if last == nil || last.local {
					last = &failure{err: fmt.Errorf("chat completions: %w", &ProviderNotSupportedError{ProviderID: d.Provider.ID, Type: d.Provider.Type}), model: cand, deployment: d, local: true}
				}
				continue
			}
			if !admitted {
				// A fallback is admitted under its own limits only once it is about
				// to be called: one whose deployments are all cooling down costs none.
				if err := req.Fallback(cand); err != nil {
					lease.Done(routing.Neutral, 0)
					if last == nil || last.local {
						last = &failure{err: err, model: cand, local: true}
					}
					break
				}
				admitted = true
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
			retryOf := ""
			retry := attempts > 0 && last != nil
			if retry {
				retryOf = last.reason
			}
			attempts++
			out, f := c.attempt(ctx, w, req, cand, d, rt, lease, res)
			if retry && (f == nil || !f.local) {
				// Only what reached the deployment is a retry: a request it cannot
				// carry was skipped, not tried.
				c.metrics.retries.WithLabelValues(retryOf).Inc()
			}
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
			if f.local {
				attempts--
				try--
			}
			// What a deployment could not carry is the answer only if no upstream
			// answered: a provider's own failure says more.
			if !f.local || last == nil || last.local {
				last = f
			}
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
	wk := wireFor(req, d)
	ptype := ProviderTypeName(d.Provider.Type)
	stream := req.stream()
	res.ServiceTier = "" // what an earlier attempt's answer said is not this one's

	start := time.Now()
	actx, cancel := context.WithTimeout(ctx, rt.Timeout)
	defer cancel()
	var ttft *time.Timer
	var cancelCause context.CancelCauseFunc
	if stream && (rt.TTFTTimeout > 0 || rt.StreamIdleTimeout > 0) {
		actx, cancelCause = context.WithCancelCause(actx)
		defer cancelCause(nil)
	}
	if stream && rt.TTFTTimeout > 0 {
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
			// The caller left before the answer began: the provider has read the
			// prompt, so it is charged (an estimate; nothing was relayed).
			res.Usage, res.UsageEstimated = Usage{PromptTokens: req.promptTokensEstimate()}, true
			res.ClientLeft = true
			return fail(routing.Neutral, done, &failure{err: fmt.Errorf("upstream: %w: %w", ErrClientGone, err), reason: "client_gone"})
		case errors.Is(context.Cause(actx), errTTFT):
			return fail(routing.Failure, retry, &failure{err: fmt.Errorf("upstream: %w: %w", ErrUpstreamTimeout, errTTFT), reason: "ttft_timeout"})
		case errors.Is(err, ErrUpstreamAddrRefused):
			// Asking again cannot help; another deployment may live elsewhere.
			return fail(routing.Neutral, skip, &failure{err: fmt.Errorf("upstream: %w: %w", ErrUpstreamUnreachable, err), reason: "address_refused"})
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

	hreq, err := c.upstreamRequest(actx, req, d, wk, stream)
	if err != nil {
		switch {
		case errors.Is(err, ErrOperationNotSupported) || errors.Is(err, errCannotCarry):
			release(routing.Neutral, 0)
			return skip, &failure{err: err, reason: "unsupported", local: true}
		// A provider authenticated by Entra ID had no token: nothing reached it, so its
		// breaker is not charged (a directory outage must not open the breakers of
		// every deployment sharing the registration), and the caller who left is not
		// charged either.
		case errors.Is(err, ErrUpstreamToken):
			// The directory refused the provider's app registration or could not be
			// reached: asking again at once cannot help; another deployment may
			// authenticate otherwise.
			return fail(routing.Neutral, skip, &failure{err: fmt.Errorf("upstream: %w", err), reason: "token"})
		case ctx.Err() != nil:
			return fail(routing.Neutral, done, &failure{err: fmt.Errorf("upstream: %w: waiting for an entra id token: %w", ErrClientGone, err), reason: "client_gone"})
		case actx.Err() != nil:
			return fail(routing.Neutral, retry, &failure{err: fmt.Errorf("upstream: %w: waiting for an entra id token: %w", ErrUpstreamTimeout, err), reason: "token"})
		}
		release(routing.Neutral, 0)
		return done, &failure{err: err}
	}
	// The caller's trace context (or this attempt's span) travels upstream.
	c.prop.Inject(actx, propagation.HeaderCarrier(hreq.Header))

	resp, err := c.rt.RoundTrip(hreq)
	if err != nil {
		return transportFailure(err, ErrUpstreamUnreachable)
	}
	defer resp.Body.Close()
	if c.tracing {
		span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	}

	unsupported := false
	if wk == wireResponses && resp.StatusCode == http.StatusBadRequest && d.Provider.Type == gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI {
		// Azure refuses an operation a deployment does not serve (the Responses API
		// for a model or region without it) with a 400 OperationNotSupported: another
		// deployment may serve it. Any other 400 is the caller's, relayed below.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		unsupported = azureOperationNotSupported(body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
	switch s := resp.StatusCode; {
	case wk == wireResponses && (s == http.StatusNotFound || s == http.StatusMethodNotAllowed || s == http.StatusNotImplemented || unsupported):
		// The provider may have no Responses API: another deployment may. Neutral:
		// the deployment's breaker also guards its chat traffic, which this says
		// nothing about.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		f := &failure{err: fmt.Errorf("upstream: provider %s answered %d at its Responses API", d.Provider.ID, s),
			status: s, header: resp.Header, body: body, wire: wk, reason: "responses_unavailable"}
		if !req.Responses.Native() && !req.Responses.translate {
			// Native only because the provider is registered as serving the API: the
			// request is translated from now on, this deployment included (once: a
			// local failure does not use up a try).
			req.Responses.translate, f.local = true, true
			return fail(routing.Neutral, retry, f)
		}
		return fail(routing.Neutral, skip, f)
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		o := routing.Failure
		if wk == wireResponses {
			o = routing.Neutral // a key that may not use the Responses API may still chat
		}
		return fail(o, skip, &failure{err: fmt.Errorf("upstream: %w: provider %s answered %d", ErrUpstreamAuth, d.Provider.ID, s), reason: "auth"})
	case s == http.StatusTooManyRequests || s >= 500:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		f := &failure{err: fmt.Errorf("upstream: provider %s answered %d", d.Provider.ID, s), status: s, header: resp.Header, body: body,
			wire: wk, retryAfter: retryAfter(resp.Header, time.Now()), reason: "status_5xx"}
		o := routing.Failure
		if s == http.StatusTooManyRequests {
			f.reason, o = "status_429", routing.Neutral
		}
		return fail(o, retry, f)
	case s < 200 || (s > 299 && s < 400):
		// Neither an answer nor a refusal (a redirect, an informational status): not
		// relayed, where it would send the caller elsewhere.
		return fail(routing.Failure, retry, &failure{err: fmt.Errorf("upstream: %w: provider %s answered %d", ErrUpstreamBadResponse, d.Provider.ID, s),
			reason: "bad_response"})
	case s > 299:
		// The caller's request was refused: another deployment would refuse it too.
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if err != nil {
			return transportFailure(err, ErrUpstreamBadResponse)
		}
		if wk == wireGemini && geminiKeyRefused(s, body) {
			return fail(routing.Failure, skip, &failure{err: fmt.Errorf("upstream: %w: provider %s refused its API key", ErrUpstreamAuth, d.Provider.ID), reason: "auth"})
		}
		res.UpstreamWait += time.Since(start)
		release(routing.Neutral, 0)
		c.metrics.attempt(ptype, "status_4xx").Inc()
		res.TTFT, res.Upstream = time.Since(start), time.Since(start)
		c.relayError(w, req, res, wk, s, resp.Header, body)
		return done, nil
	}

	if stream && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		rd := getSSEReader(resp.Body)
		defer putSSEReader(rd) // after the relay: the events alias its buffers
		// With a time-to-first-token bound, the answer is held back until the first
		// token: until then a slow first token (or a failure) can still move to
		// another deployment. Events before it (message_start, a role-only chunk,
		// pings) are kept and relayed first. Without the bound the answer is relayed
		// from its first event, which is then the caller's first byte too.
		holdBack := rt.TTFTTimeout > 0
		var prelude []sseEvent
		tokenSeen := false
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
			token := data != nil && firstToken(wk, data)
			if token || !holdBack || data != nil && len(prelude) >= maxPrelude {
				// Without the hold-back the answer goes out from its first event, a
				// keep-alive comment too; with it, a data event that ends it counts
				// as the first token.
				tokenSeen = token || holdBack
				// The reader's buffers stay valid until its next read, which comes
				// after the relay handled this event: no copy needed.
				prelude = append(prelude, sseEvent{raw: raw, name: name, data: data})
				break
			}
			if data == nil && len(prelude) >= maxPrelude {
				continue // keep-alives past the bound are dropped, never the first token
			}
			prelude = append(prelude, cloneEvent(raw, name, data))
		}
		if ttft != nil {
			ttft.Stop()
		}
		res.Streamed = true
		res.UpstreamWait += time.Since(start)
		firstTokenAt := func() {
			res.TTFT = time.Since(start)
			c.metrics.ttft.Observe(res.TTFT.Seconds())
			c.metrics.latency(ptype).Observe(res.TTFT.Seconds())
			if c.tracing {
				span.AddEvent("first token")
			}
		}
		// The idle bound applies from the first token on (a model may think for long
		// before it), and runs only while the relay waits for the upstream: a caller
		// reading slowly is not the provider's silence.
		var waiting func(bool)
		if d := rt.StreamIdleTimeout; d > 0 {
			var idle *time.Timer
			defer func() {
				if idle != nil {
					idle.Stop()
				}
			}()
			armed := tokenSeen
			waiting = func(on bool) {
				switch {
				case !armed:
				case !on:
					if idle != nil {
						idle.Stop()
					}
				case idle == nil:
					idle = time.AfterFunc(d, func() { cancelCause(errStreamIdle) })
				default:
					idle.Reset(d)
				}
			}
			if !tokenSeen {
				first := firstTokenAt
				firstTokenAt = func() { first(); armed = true }
			}
		}
		if tokenSeen {
			firstTokenAt()
			firstTokenAt = nil
		}
		err := c.relayStream(ctx, actx, w, req, res, wk, rd, prelude, firstTokenAt, waiting)
		res.Upstream = time.Since(start)
		if res.TTFT == 0 {
			res.TTFT = res.Upstream // no token came: the whole answer was the wait
		}
		o, reason := routing.Success, "ok"
		switch {
		case errors.Is(err, ErrClientGone):
			o, reason = routing.Neutral, "client_gone"
		case errors.Is(err, ErrUpstreamStream) || errors.Is(err, ErrUpstreamTimeout) || errors.Is(err, ErrUpstreamBadResponse):
			o, reason = routing.Failure, "stream_broken"
			if errors.Is(context.Cause(actx), errStreamIdle) {
				reason = "stream_idle"
			}
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

	// An answer that came (200) and is left unused — unreadable, too large, or not
	// what the provider's API answers — was generated all the same: the prompt the
	// provider read is charged, whatever attempt answers in the end.
	abandoned := func() {
		// The attempt's own usage, when it got as far as reading it, else its prompt.
		u := res.Usage
		if u == (Usage{}) {
			u.PromptTokens = req.promptTokensEstimate()
		}
		res.Usage, res.UsageEstimated = Usage{}, false
		res.abandoned = res.abandoned.add(u)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxResp+1))
	if err != nil {
		if ctx.Err() == nil {
			abandoned()
		}
		return transportFailure(err, ErrUpstreamBadResponse)
	}
	if int64(len(body)) > c.maxResp {
		abandoned()
		return fail(routing.Failure, retry, &failure{err: fmt.Errorf("upstream: %w: body over %d bytes", ErrUpstreamBadResponse, c.maxResp), reason: "bad_response"})
	}
	latency := time.Since(start)
	res.TTFT, res.Upstream = latency, latency
	res.UpstreamWait += latency
	if err := c.relayBody(w, req, res, wk, d, resp.Header, body); err != nil {
		if errors.Is(err, ErrUpstreamBadResponse) && res.Status == 0 {
			abandoned()
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
