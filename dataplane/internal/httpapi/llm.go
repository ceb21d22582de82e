package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"net/http"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/llm"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// serveLLM serves an LLM endpoint of the given surface.
func (s *Server) serveLLM(surface llm.Surface) handler {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		body, err := s.readBody(w, r)
		if err != nil {
			return s.counted(w, r, c, err)
		}
		c.body = body
		req, err := parseLLM(surface, body)
		if err != nil {
			return s.counted(w, r, c, err)
		}
		c.modelName = req.model
		m, err := c.key.Model(req.model)
		if err != nil {
			return s.counted(w, r, c, err)
		}
		c.model = m
		ctx := r.Context()

		// Hook: limits admission, with the request's estimated tokens.
		ticket, settle, err := s.admit(ctx, w, c, Admission{Key: c.key, Model: m, Endpoint: c.endpoint, Stream: req.stream, EstimatedTokens: req.estimateTokens()})
		if err != nil {
			return err
		}
		defer settle()

		// Hook: request guardrails (block or rewrite), then the response filters.
		var filter llm.ContentFilter
		var newFilter func(llm.TextKind) llm.ContentFilter
		if s.guard != nil {
			in := GuardInput{Key: c.key, Model: m, Surface: surface, Endpoint: c.endpoint, Body: body}
			next, err := s.guardRequest(ctx, c, in)
			if err != nil {
				return err
			}
			if next != nil {
				if req, err = parseLLM(surface, next); err != nil {
					return fmt.Errorf("request guardrail rewrite: %w", err)
				}
			}
			if surface != llm.SurfaceEmbeddings {
				if rg := s.guard.Response(ctx, in); rg != nil {
					filter = rg
					guards := []ResponseGuard{rg}
					newFilter = func(t llm.TextKind) llm.ContentFilter {
						in := in
						in.Text = t
						g := s.guard.Response(ctx, in)
						if g == nil {
							return nil
						}
						guards = append(guards, g)
						return g
					}
					defer func() {
						for _, g := range guards {
							c.guardEvents = append(c.guardEvents, g.Events()...)
						}
						c.guardEvents = mergeEvents(c.guardEvents)
					}()
				}
			}
		}

		req.Candidates = c.key.Candidates(m)
		if ticket != nil {
			// Set on the request as served: a guardrail's rewrite parsed it anew.
			req.Fallback = ticket.Fallback
		}
		req.Filter, req.NewFilter = filter, newFilter
		req.Header = r.Header
		req.Start = c.start
		req.CaptureText = c.key.Team.LogContents
		req.Tenant = tenant(c.key)
		res, err := s.llm.Serve(ctx, w, &req.Request)
		c.result = res
		return err
	}
}

// admit runs limits admission (when there are limits) and returns the request's
// ticket (nil when there is none) and what settles it with the usage of c's result,
// once it is served.
func (s *Server) admit(ctx context.Context, w http.ResponseWriter, c *call, a Admission) (ticket Ticket, settle func(), err error) {
	if s.admitter == nil {
		return nil, func() {}, nil
	}
	ticket, err = s.admitter.Admit(ctx, a)
	if err != nil {
		return nil, nil, fmt.Errorf("admission: %w", err)
	}
	if ticket == nil {
		return nil, func() {}, nil
	}
	for k, v := range ticket.Header() {
		w.Header()[k] = v
	}
	return ticket, func() {
		var u llm.Usage
		if c.result != nil {
			u = c.result.Usage
			if c.result.ClientLeft && u.PromptTokens+u.CompletionTokens < a.EstimatedTokens {
				// The provider may have generated the whole answer for nobody: the
				// limits keep the admission's estimate (the usage event still prices
				// only the prompt), or leaving early would refund what was spent.
				u = llm.Usage{PromptTokens: a.EstimatedTokens}
			}
		}
		ticket.Settle(u)
	}, nil
}

// counted answers a request refused before admission (a malformed or oversized body,
// a model the key may not use) with err, once it has counted against the key's and
// team's request limits: a client sending bad requests in a loop is held to its
// limits like any other, and gets their 429 once over them.
func (s *Server) counted(w http.ResponseWriter, r *http.Request, c *call, err error) error {
	_, settle, aerr := s.admit(r.Context(), w, c, Admission{Key: c.key, Endpoint: c.endpoint})
	if aerr != nil {
		return aerr
	}
	settle()
	return err
}

// tenant names the org and team whose native Responses ids a key's requests see.
func tenant(k *runtime.Key) string { return k.Org.ID + "/" + k.Team.ID }

// storedResponse serves the operations on a response a provider keeps (a native
// Responses answer): retrieve or delete it (sub ""), list its input items (sub
// "input_items"), cancel it while it runs in the background (sub "cancel").
func (s *Server) storedResponse(sub string) handler {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		// The key's and team's request limits hold here too (no tokens): these calls
		// spend the provider account's rate limits, which other teams share.
		_, settle, err := s.admit(r.Context(), w, c, Admission{Key: c.key, Endpoint: c.endpoint})
		if err != nil {
			return err
		}
		defer settle()
		res, err := s.llm.Stored(r.Context(), w, &llm.StoredResponse{
			Method: r.Method, ID: r.PathValue("id"), Sub: sub, Query: r.URL.Query(),
			Tenant: tenant(c.key), Start: c.start,
			Provider: func(id string) *runtime.Provider { return keyProvider(c.key, id) },
		})
		c.result = res
		return err
	}
}

// keyProvider is the provider of that id if a model k may use (or one of its
// fallbacks) has a deployment on it.
func keyProvider(k *runtime.Key, id string) *runtime.Provider {
	models := k.Models()
	for _, a := range k.Aliases() {
		models = append(models, a.Model)
	}
	for _, m := range models {
		for _, cand := range k.Candidates(m) {
			if cand.Provider != nil && cand.Provider.ID == id {
				return cand.Provider
			}
			for _, d := range cand.Deployments {
				if d.Provider != nil && d.Provider.ID == id {
					return d.Provider
				}
			}
		}
	}
	return nil
}

// llmRequest is a parsed LLM request and what the handler needs of it.
type llmRequest struct {
	llm.Request
	model  string
	stream bool
}

func (r *llmRequest) estimateTokens() int64 {
	if r.Embeddings != nil {
		return r.Embeddings.EstimateTokens()
	}
	return r.Chat.EstimateTokens()
}

// parseLLM parses a body of the surface's format.
func parseLLM(surface llm.Surface, body []byte) (*llmRequest, error) {
	out := &llmRequest{Request: llm.Request{Surface: surface}}
	switch surface {
	case llm.SurfaceEmbeddings:
		req, err := llm.ParseEmbeddingsRequest(body)
		if err != nil {
			return nil, err
		}
		out.Embeddings, out.model = req, req.Model
	case llm.SurfaceMessages:
		req, err := llm.ParseMessagesRequest(body)
		if err != nil {
			return nil, err
		}
		out.Messages, out.Chat, out.model, out.stream = req, req.Chat, req.Model, req.Stream
	case llm.SurfaceResponses:
		req, err := llm.ParseResponsesRequest(body)
		if err != nil {
			return nil, err
		}
		out.Responses, out.Chat, out.model, out.stream = req, req.Chat, req.Model, req.Stream
	default:
		req, err := llm.ParseChatRequest(body)
		if err != nil {
			return nil, err
		}
		out.Chat, out.model, out.stream = req, req.Model, req.Stream
	}
	return out, nil
}

// maxLoggedContent bounds the prompt and completion logged for a team with
// log_contents.
const maxLoggedContent = 64 << 10

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// countTokens serves /v1/messages/count_tokens: authorised like /v1/messages (the
// key must be allowed the model), the request guardrails applied (the prompt goes to
// an Anthropic upstream to be counted), the request limits (not tokens) and no cost:
// nothing is generated.
func (s *Server) countTokens(w http.ResponseWriter, r *http.Request, c *call) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return s.counted(w, r, c, err)
	}
	c.body = body
	mr, err := llm.ParseCountTokensRequest(body)
	if err != nil {
		return s.counted(w, r, c, err)
	}
	c.modelName = mr.Model
	m, err := c.key.Model(mr.Model)
	if err != nil {
		return s.counted(w, r, c, err)
	}
	c.model = m
	ctx := r.Context()
	// The request limits hold (no tokens: nothing is generated): counting spends the
	// provider account's rate limits, which other teams share.
	_, settle, err := s.admit(ctx, w, c, Admission{Key: c.key, Model: m, Endpoint: c.endpoint})
	if err != nil {
		return err
	}
	defer settle()
	if s.guard != nil {
		next, err := s.guardRequest(ctx, c, GuardInput{Key: c.key, Model: m, Surface: llm.SurfaceMessages, Endpoint: c.endpoint, Body: body})
		if err != nil {
			return err
		}
		if next != nil {
			if mr, err = llm.ParseCountTokensRequest(next); err != nil {
				return fmt.Errorf("request guardrail rewrite: %w", err)
			}
		}
	}
	req := &llm.Request{Surface: llm.SurfaceMessages, Messages: mr, Chat: mr.Chat,
		Candidates: []*runtime.Model{m}, Header: r.Header, Start: c.start}
	res, err := s.llm.CountTokens(ctx, w, req)
	c.result = res
	return err
}

// guardRequest runs the team's request rules on in.Body and records what they
// found. It returns the rewritten body (also kept as the call's body), or nil when
// the rules left it as it was; a block is an error.
func (s *Server) guardRequest(ctx context.Context, c *call, in GuardInput) ([]byte, error) {
	next, events, err := s.guard.Request(ctx, in)
	c.guardEvents = append(c.guardEvents, events...)
	if err != nil {
		return nil, fmt.Errorf("request guardrail: %w", err)
	}
	if next == nil || bytes.Equal(next, in.Body) {
		return nil, nil
	}
	c.body = next
	return next, nil
}
