package llm

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// A Responses request that the chat form cannot carry (ResponsesRequest.Native) is
// served by the own Responses API of OpenAI-compatible and Azure OpenAI providers: the body goes up as it
// came (the model replaced) and the answer, streamed or not, comes back as the
// provider sent it, its ids sealed (responseids.go) and, for a team with response
// guardrails, its texts filtered (responsesfilter.go). The gateway still
// authenticates, authorises, limits, applies the request guardrails, meters (the
// provider's `usage`) and prices it.

// wireFor is the wire an attempt speaks with d: its provider's, or wireResponses
// for a Responses request to a provider with a Responses API of its own (OpenAI-
// compatible, Azure OpenAI) when the request is
// native or the provider is registered as speaking the Responses API itself.
func wireFor(req *Request, d *runtime.Deployment) wire {
	if req.Surface == SurfaceResponses && d.Provider.ResponsesURL != "" &&
		(req.Responses.Native() || d.Provider.NativeResponses && req.Responses.nativeByChoice()) {
		return wireResponses
	}
	return wireOf(d.Provider.Type)
}

// nativeByChoice reports whether a request the chat form can carry may go to a
// provider's own Responses API (one registered as serving it): not when it asks for a
// background answer (native, it would be refused; translated, it is answered at
// once), carries this gateway's own reasoning state (Claude's thinking, which only the
// translation knows to leave out for other providers), or a first native attempt
// found no Responses API there.
func (r *ResponsesRequest) nativeByChoice() bool {
	return !r.background && !r.gatewayState && !r.translate
}

// errNativeBackground refuses background responses: the gateway meters what it
// relays, and a response answered later is fetched from the provider directly.
var errNativeBackground = invalidf("background", "`background` responses are not supported by this gateway: it could not meter them. Stream the response instead.")

// responsesUpstream is the target and body of a native Responses request.
func (c *Client) responsesUpstream(req *Request, d *runtime.Deployment) (target string, body []byte, err error) {
	if req.Responses.background {
		// The answer would come later, from the provider, unmetered.
		return "", nil, cannotCarry(errNativeBackground)
	}
	if p := req.Responses.pinProvider; p != "" && p != d.Provider.ID {
		return "", nil, cannotCarry(errPreviousResponseElsewhere)
	}
	req.Responses.sealer = newIDSealer(c.cfg.ResponseIDs, req.Tenant, d.Provider.ID, req.Responses)
	return d.Provider.ResponsesURL, req.Responses.upstreamBody(d.UpstreamModel), nil
}

// relayResponsesBody relays a complete native Responses answer, reading its usage.
func (c *Client) relayResponsesBody(w http.ResponseWriter, req *Request, res *Result, header http.Header, body []byte) error {
	var u *responsesUsage
	if decodeTopLevelUsage(body, &u) && u != nil {
		res.Usage = u.usage()
	} else {
		estimateAnswer(req, res, wireResponses, body)
	}
	if req.Filter != nil {
		var err error
		if body, err = filterResponsesBody(req, body); err != nil {
			return err
		}
	}
	req.Responses.sealer.learn(body)
	body = req.Responses.sealer.apply(body)
	if req.CaptureText {
		var r struct {
			Output []struct {
				Type    string `json:"type"`
				Content []struct {
					Type string `json:"type"`
					Text string `json:"text"`
				} `json:"content"`
			} `json:"output"`
		}
		if json.Unmarshal(body, &r) == nil {
			var b strings.Builder
			for _, it := range r.Output {
				for _, p := range it.Content {
					if it.Type == "message" && p.Type == "output_text" {
						b.WriteString(p.Text)
					}
				}
			}
			res.Text = b.String()
		}
	}
	return c.write(w, req, res, http.StatusOK, contentType(header), body)
}

func (u *responsesUsage) usage() Usage {
	return Usage{PromptTokens: u.InputTokens, CompletionTokens: u.OutputTokens, CachedTokens: u.InputTokensDetails.CachedTokens}
}

// responsesTextKeys are the members of Responses stream events that carry generated
// text: the deltas (output text, reasoning, tool arguments), for the estimate of a
// stream cut short.
var responsesTextKeys = [][]byte{[]byte(`"delta":"`)}

// responsesAnswerKeys are the members of a complete Responses answer that carry
// generated text: output text, reasoning summaries, tool call arguments.
var responsesAnswerKeys = [][]byte{[]byte(`"text":"`), []byte(`"arguments":"`)}

// responsesEventType is the type of a Responses stream event.
func responsesEventType(data []byte) string {
	v, ok := members(data, "type")
	var t string
	if !ok || v[0] == nil || !decodeString(v[0], &t) {
		return ""
	}
	return t
}

// responsesFirstToken reports whether a Responses stream event carries the first
// token (a delta) or ends the answer.
func responsesFirstToken(data []byte) bool {
	switch t := responsesEventType(data); {
	case strings.HasSuffix(t, ".delta"), t == "error", t == "response.completed", t == "response.failed", t == "response.incomplete":
		return true
	case t == "":
		return true // not an event of the API: nothing to wait for
	}
	return false
}

// learnResponseID gives the sealer the response id of the first event that carries
// the response object (response.created, normally).
func (s *streamRelay) learnResponseID(data []byte) {
	sl := s.req.Responses.sealer
	if sl == nil || sl.learned || !bytes.Contains(data, responseMember) {
		return
	}
	if v, ok := members(data, "response"); ok && v[0] != nil {
		sl.learn(v[0])
	}
}

var (
	responseMember   = []byte(`"response"`)
	responseEndTypes = [][]byte{[]byte(`"response.completed"`), []byte(`"response.incomplete"`), []byte(`"response.failed"`)}
	outputTextDelta  = []byte(`"response.output_text.delta"`)
)

// responsesEvent reads what the gateway needs of one native Responses stream event:
// the usage of the event that ends the response, the response id, and the output text
// when content is captured. Every event goes on.
func (s *streamRelay) responsesEvent(data []byte) bool {
	s.responsesUsage(data)
	if s.req.CaptureText && bytes.Contains(data, outputTextDelta) {
		var ev struct {
			Type  string `json:"type"`
			Delta string `json:"delta"`
		}
		if json.Unmarshal(data, &ev) == nil && ev.Type == "response.output_text.delta" {
			s.capture(ev.Delta)
		}
	}
	return true
}

// responsesUsage reads the usage of the event that ends the response, and the
// response id for the sealer.
func (s *streamRelay) responsesUsage(data []byte) {
	for _, t := range responseEndTypes {
		if !bytes.Contains(data, t) {
			continue
		}
		var ev struct {
			Type     string `json:"type"`
			Response struct {
				Usage *responsesUsage `json:"usage"`
			} `json:"response"`
		}
		if json.Unmarshal(data, &ev) == nil && ev.Response.Usage != nil && strings.HasPrefix(ev.Type, "response.") {
			s.res.Usage = ev.Response.Usage.usage()
			s.sawUsage = true
		}
		s.learnResponseID(data)
		return
	}
	s.learnResponseID(data)
}
