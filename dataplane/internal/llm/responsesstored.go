package llm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// StoredResponse is an operation on a response a provider keeps: retrieve it
// (GET /v1/responses/{id}), delete it (DELETE), list its input items
// (GET /v1/responses/{id}/input_items) or cancel it while it runs in the background
// (POST /v1/responses/{id}/cancel). The id is the sealed one the caller got.
type StoredResponse struct {
	Method string
	ID     string
	// Sub is the operation's path under the response: "" (the response itself),
	// "input_items" or "cancel".
	Sub string
	// Query is the caller's query (paging, include), passed on.
	Query url.Values
	// Tenant names the caller's org and team (see Request.Tenant).
	Tenant string
	// Provider returns the provider of that id if the caller may use it: the
	// provider of a deployment of a model the caller's key may use.
	Provider func(id string) *runtime.Provider
	Start    time.Time
}

// errResponseNotFound answers for an id the caller's team did not get from this
// gateway, or whose provider it may no longer use.
func errResponseNotFound(id string) *Refusal {
	if len(id) > 200 {
		id = id[:200] + "…"
	}
	return &Refusal{Status: http.StatusNotFound, Code: "response_not_found", Message: "Response with id '" + id + "' not found."}
}

// Stored performs op at the provider that holds the response, with the provider's
// credential and id, and relays its answer with the ids sealed again. Nothing is
// metered: no tokens are generated.
func (c *Client) Stored(ctx context.Context, w http.ResponseWriter, op *StoredResponse) (*Result, error) {
	res := &Result{}
	if c.cfg.ResponseIDs == nil {
		return res, errResponseNotFound(op.ID)
	}
	providerID, upstreamID, ok := c.cfg.ResponseIDs.open(op.Tenant, op.ID)
	if !ok {
		return res, errResponseNotFound(op.ID)
	}
	p := op.Provider(providerID)
	if p == nil || p.ResponsesURL == "" {
		return res, errResponseNotFound(op.ID)
	}
	if v := op.Query.Get("stream"); v != "" && v != "false" {
		return res, invalidf("stream", "Streaming a stored response again is not supported by this gateway; retrieve it whole.")
	}
	target := p.ResponsesURL + "/" + url.PathEscape(upstreamID)
	if op.Sub != "" {
		target += "/" + op.Sub
	}
	if len(op.Query) > 0 {
		target += "?" + op.Query.Encode()
	}
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(actx, op.Method, target, nil)
	if err != nil {
		return res, fmt.Errorf("upstream request: %w: %w", ErrUpstreamUnreachable, err)
	}
	hreq.Header["Accept"] = jsonHeader
	if err := c.setOpenAIStyleAuth(actx, hreq.Header, p); err != nil {
		if errors.Is(err, ErrUpstreamToken) {
			return res, fmt.Errorf("upstream: %w", err)
		}
		return res, fmt.Errorf("upstream: %w", classify(ctx, actx, err, ErrUpstreamUnreachable))
	}
	c.prop.Inject(actx, propagation.HeaderCarrier(hreq.Header))
	start := time.Now()
	resp, err := c.rt.RoundTrip(hreq)
	if err != nil {
		if ctx.Err() != nil {
			return res, fmt.Errorf("upstream: %w: %w", ErrClientGone, err)
		}
		return res, fmt.Errorf("upstream: %w", classify(ctx, actx, err, ErrUpstreamUnreachable))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxResp+1))
	res.UpstreamWait = time.Since(start)
	res.Upstream, res.TTFT = res.UpstreamWait, res.UpstreamWait
	switch {
	case err != nil:
		return res, fmt.Errorf("upstream: %w", classify(ctx, actx, err, ErrUpstreamBadResponse))
	case int64(len(body)) > c.maxResp:
		return res, fmt.Errorf("upstream: %w: body over %d bytes", ErrUpstreamBadResponse, c.maxResp)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return res, fmt.Errorf("upstream: %w: provider %s answered %d", ErrUpstreamAuth, p.ID, resp.StatusCode)
	}
	// The provider's id becomes the caller's everywhere, a previous response's gets
	// sealed too, and an error's message names the id the caller knows.
	s := &idSealer{ids: c.cfg.ResponseIDs, tenant: op.Tenant, provider: providerID, learned: true}
	s.add(upstreamID, op.ID)
	if v, ok := members(body, "previous_response_id"); ok && v[0] != nil {
		var prev string
		if decodeString(v[0], &prev) && prev != "" && prev != upstreamID {
			if sealed, ok := c.cfg.ResponseIDs.seal(op.Tenant, providerID, prev); ok {
				s.add(prev, sealed)
			}
		}
	}
	body = s.apply(body)
	req := &Request{Surface: SurfaceResponses, Start: op.Start}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Relayed as it came when it is error JSON, in the API's error form otherwise.
		c.relayError(w, req, res, wireOpenAI, resp.StatusCode, resp.Header, bytes.ReplaceAll(body, []byte(upstreamID), []byte(op.ID)))
		return res, nil
	}
	if err := c.write(w, req, res, resp.StatusCode, contentType(resp.Header), body); err != nil {
		return res, err
	}
	return res, nil
}
