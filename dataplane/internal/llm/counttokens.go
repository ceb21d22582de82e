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

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"go.opentelemetry.io/otel/propagation"
)

// TokenCountHeader (x-gatehouse-token-count, canonical) says how a count_tokens
// answer was made: "provider" (an Anthropic upstream counted) or "estimated" (the
// gateway's estimate: no deployment of the model could count, or none answered).
const TokenCountHeader = "X-Gatehouse-Token-Count"

// countTokensTimeout bounds one upstream count.
const countTokensTimeout = 10 * time.Second

// CountTokens answers an Anthropic count_tokens request (req.Surface is
// SurfaceMessages, req.Messages set). The asked model's first Anthropic deployment
// counts it: its answer is relayed, and so is its refusal of the request itself (400,
// 413, 422). Without one, or when it fails otherwise (no count_tokens there, a bad
// credential, 429, 5xx, no answer), the gateway estimates (the
// characters of the prompt and the tool definitions divided by 4): a count is advice
// for the caller's context management, not worth failing for.
func (c *Client) CountTokens(ctx context.Context, w http.ResponseWriter, req *Request) (*Result, error) {
	m := req.Candidates[0]
	res := &Result{Model: m}
	for _, d := range m.Deployments {
		if d.Provider.Type != gatehousev1.ProviderType_PROVIDER_TYPE_ANTHROPIC {
			continue
		}
		start := time.Now()
		status, header, body, err := c.countUpstream(ctx, req, d)
		res.UpstreamWait += time.Since(start)
		switch {
		case err != nil && ctx.Err() != nil:
			return res, fmt.Errorf("count tokens: %w: %w", ErrClientGone, err)
		case err != nil:
			c.log.Warn("count tokens: upstream failed; estimating", "deployment", d.ID, "err", err)
		case status == http.StatusOK && json.Valid(body):
			res.Deployment = d
			w.Header().Set(TokenCountHeader, "provider")
			return res, c.write(w, req, res, status, contentType(header), body)
		case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge || status == http.StatusUnprocessableEntity:
			// The request itself is refused: the caller's to see and fix.
			res.Deployment = d
			c.relayError(w, req, res, wireAnthropic, status, header, body)
			return res, nil
		default:
			c.log.Warn("count tokens: upstream answered; estimating", "deployment", d.ID, "status", status)
		}
		break // one try: the estimate is good enough when it fails
	}
	w.Header().Set(TokenCountHeader, "estimated")
	// The prompt's text, and the tool definitions as the JSON they are sent as.
	n := req.Chat.promptEstimate() + int64(len(req.Messages.fields["tools"])+3)/4
	body := []byte(`{"input_tokens":` + strconv.FormatInt(n, 10) + "}")
	return res, c.write(w, req, res, http.StatusOK, "application/json", body)
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
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
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
