package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/routing"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"go.opentelemetry.io/otel/propagation"
)

// TokenCountHeader (x-gatehouse-token-count, canonical) says how a count_tokens
// answer was made: "provider" (an Anthropic upstream counted) or "estimated" (the
// gateway's estimate: no deployment of the model could count, or none answered).
const TokenCountHeader = "X-Gatehouse-Token-Count"

// countTokensTimeout bounds the upstream count: past it the estimate answers.
const countTokensTimeout = 3 * time.Second

// CountTokens answers an Anthropic count_tokens request (req.Surface is
// SurfaceMessages, req.Messages set). One Anthropic deployment of the asked model,
// picked as for a message (weights, and not one whose breaker is open), counts it:
// its count is relayed, and so is its refusal of the request itself (400, 413, 422).
// Without one, or when it fails otherwise (no count_tokens there, a bad credential,
// 429, 5xx, an answer without a count, none within countTokensTimeout), the gateway
// estimates (the characters of the prompt and the tool definitions divided by 4): a
// count is advice for the caller's context management, not worth failing for. A
// count says nothing about the deployment's health, so the breaker is not told.
func (c *Client) CountTokens(ctx context.Context, w http.ResponseWriter, req *Request) (*Result, error) {
	m := deployments(req.Candidates[0])
	res := &Result{Model: req.Candidates[0]}
	var others []*runtime.Deployment
	for _, d := range m.Deployments {
		if d.Provider.Type != gatehousev1.ProviderType_PROVIDER_TYPE_ANTHROPIC {
			others = append(others, d)
		}
	}
	rt := c.routingOf(m)
	if d, lease := c.router.Pick(m, rt.Strategy, routing.Breaker{Failures: rt.BreakerFailures, Cooldown: rt.BreakerCooldown}, nil, others); d != nil {
		start := time.Now()
		status, header, body, err := c.countUpstream(ctx, req, d)
		res.UpstreamWait += time.Since(start)
		lease.Done(routing.Neutral, 0)
		switch {
		case err != nil && ctx.Err() != nil:
			return res, fmt.Errorf("count tokens: %w: %w", ErrClientGone, err)
		case err != nil:
			c.log.Warn("count tokens: upstream failed; estimating", "deployment", d.ID, "err", err)
		case status == http.StatusOK:
			if countAnswer(body) {
				// As it came (it may say more than the count), as JSON whatever the
				// upstream called it.
				res.Deployment = d
				w.Header().Set(TokenCountHeader, "provider")
				return res, c.write(w, req, res, status, "application/json", body)
			}
			c.log.Warn("count tokens: upstream answered without a count; estimating", "deployment", d.ID)
		case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge || status == http.StatusUnprocessableEntity:
			// The request itself is refused: the caller's to see and fix.
			res.Deployment = d
			c.relayError(w, req, res, wireAnthropic, status, header, body)
			return res, nil
		default:
			c.log.Warn("count tokens: upstream answered; estimating", "deployment", d.ID, "status", status)
		}
	}
	res.Local = true
	w.Header().Set(TokenCountHeader, "estimated")
	// The prompt's text and media, and the tool definitions as the JSON they are sent
	// as (in their chat form: promptEstimate).
	n := req.Chat.promptEstimate()
	return res, c.write(w, req, res, http.StatusOK, "application/json", []byte(`{"input_tokens":`+strconv.FormatInt(n, 10)+"}"))
}

// countAnswer reports a count_tokens answer: a JSON object with a non-negative
// integer input_tokens.
func countAnswer(body []byte) bool {
	var out struct {
		InputTokens *int64 `json:"input_tokens"`
	}
	return json.Unmarshal(body, &out) == nil && out.InputTokens != nil && *out.InputTokens >= 0
}

// countUpstream posts the caller's body (model replaced) to d's count_tokens.
func (c *Client) countUpstream(ctx context.Context, req *Request, d *runtime.Deployment) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, countTokensTimeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Provider.Base+"/messages/count_tokens",
		bytes.NewReader(req.Messages.upstreamBody(d.UpstreamModel)))
	if err != nil {
		return 0, nil, nil, err
	}
	hreq.Header["Content-Type"], hreq.Header["Accept"] = jsonHeader, jsonHeader
	setAnthropicHeaders(hreq.Header, d.Provider, req)
	c.prop.Inject(ctx, propagation.HeaderCarrier(hreq.Header))
	resp, err := c.rt.RoundTrip(hreq)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, body, nil
}
