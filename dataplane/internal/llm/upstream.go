package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// errCannotCarry marks a refusal of what one provider's API cannot carry (n > 1 for
// Anthropic, a document a target cannot read): the deployment is skipped, not
// failed, and the refusal is the answer only when no other deployment or fallback
// can serve the request.
var errCannotCarry = errors.New("the provider cannot carry the request")

// cannotCarry marks err (an *InvalidRequestError, which the caller is shown) as one
// provider's refusal (see errCannotCarry).
func cannotCarry(err *InvalidRequestError) error {
	return fmt.Errorf("%w: %w", errCannotCarry, err)
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
		if req.Surface == SurfaceMessages && wk != wireAnthropic && req.Messages.unsupported != nil {
			return nil, cannotCarry(req.Messages.unsupported)
		}
		if req.Surface == SurfaceResponses && wk != wireResponses && req.Responses.Native() {
			return nil, cannotCarry(req.Responses.unsupported)
		}
		switch wk {
		case wireResponses:
			var err error
			if target, body, err = c.responsesUpstream(req, d); err != nil {
				return nil, err
			}
		case wireOpenAI:
			body = req.Chat.UpstreamBody(d.UpstreamModel, takesCompletionTokens(p), !refusesUnknownFields(p))
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
	var parsed *url.URL
	if target == p.ChatCompletionsURL {
		parsed = p.ChatCompletions
	}
	hreq, err := newPost(ctx, target, parsed, body)
	if err != nil {
		return nil, fmt.Errorf("upstream request: %w: %w", ErrUpstreamUnreachable, err)
	}
	h := hreq.Header
	// Shared values, one slice each (Set would allocate one per request): nothing
	// downstream writes into a header's values, and an Add would copy.
	h["Content-Type"] = jsonHeader
	if stream {
		h["Accept"] = sseHeader
	} else {
		h["Accept"] = jsonHeader
	}
	switch p.Type {
	case gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE, gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI:
		if err := c.setOpenAIStyleAuth(ctx, h, p); err != nil {
			return nil, err
		}
	case gatehousev1.ProviderType_PROVIDER_TYPE_ANTHROPIC:
		setAnthropicHeaders(h, p, req)
	case gatehousev1.ProviderType_PROVIDER_TYPE_GEMINI:
		if p.APIKey != "" {
			h.Set("X-Goog-Api-Key", p.APIKey)
		}
	}
	return hreq, nil
}

// newPost is http.NewRequestWithContext for a POST of body to target, without
// parsing target again when parsed (read only, copied) is its runtime.ParseRequestURL
// form.
func newPost(ctx context.Context, target string, parsed *url.URL, body []byte) (*http.Request, error) {
	if parsed == nil {
		return http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "", nil)
	if err != nil {
		return nil, err
	}
	*req.URL = *parsed // the URL "" parsed to, overwritten: a copy of parsed
	req.Host = parsed.Host
	req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	if len(body) == 0 {
		req.Body, req.GetBody = http.NoBody, func() (io.ReadCloser, error) { return http.NoBody, nil }
	}
	return req, nil
}

// setOpenAIStyleAuth sets the credential of a request to an OpenAI-compatible provider
// (a bearer token) or to Azure OpenAI (its api-key header, or a Microsoft Entra ID
// token, which may mean waiting for one: ErrUpstreamToken, or ctx's error).
func (c *Client) setOpenAIStyleAuth(ctx context.Context, h http.Header, p *runtime.Provider) error {
	if p.Type == gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI {
		switch {
		case p.Entra != nil:
			tok, err := c.entra.token(ctx, p)
			if err != nil {
				return err
			}
			h.Set("Authorization", "Bearer "+tok)
		case p.APIKey != "":
			h.Set("Api-Key", p.APIKey)
		}
		return nil
	}
	setOpenAIAuth(h, p)
	return nil
}

// setOpenAIAuth sets the credential of a request to an OpenAI-compatible provider.
func setOpenAIAuth(h http.Header, p *runtime.Provider) {
	switch {
	case len(p.AuthorizationValues) == 1 && p.AuthorizationValues[0] == p.Authorization:
		h["Authorization"] = p.AuthorizationValues
	case p.Authorization != "":
		h.Set("Authorization", p.Authorization)
	case p.APIKey != "":
		h.Set("Authorization", "Bearer "+p.APIKey)
	}
}

var (
	jsonHeader = []string{"application/json"}
	sseHeader  = []string{"text/event-stream"}
)

// setAnthropicHeaders sets the credential and version headers of a request to an
// Anthropic upstream; a Messages caller's anthropic-version and anthropic-beta pass on.
func setAnthropicHeaders(h http.Header, p *runtime.Provider, req *Request) {
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
}

// openAIURL is the URL of an OpenAI-style operation: under the base URL, or under the
// deployment for Azure OpenAI.
func openAIURL(p *runtime.Provider, model, op string) string {
	if p.Type == gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI {
		root := runtime.AzureRoot(p.Base)
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

// withoutAnthropicThinking returns chat messages raw, bound for an upstream that is not
// Anthropic, without Anthropic's encrypted thinking: a caller's redacted_thinking
// blocks (and the `data` of any other block) in thinking_blocks are Anthropic's
// encryption, which only Anthropic reads and no request rule checks, so they go to
// Anthropic only. What is left of a turn's thinking_blocks is written as encoding/json
// reads it (see foreignThinking), under its one spelling: an upstream reads the key in
// no other case. ok is false when nothing changed.
func withoutAnthropicThinking(raw json.RawMessage) (json.RawMessage, bool) {
	if !mayHoldThinking(raw) {
		return raw, false
	}
	return rewriteMessages(raw, func(m json.RawMessage, fields map[string]json.RawMessage) bool {
		var keys []string
		for k := range fields {
			if strings.EqualFold(k, "thinking_blocks") {
				keys = append(keys, k)
			}
		}
		var turn struct {
			ThinkingBlocks []thinkingBlock `json:"thinking_blocks"`
		}
		if len(keys) == 0 || json.Unmarshal(m, &turn) != nil {
			return false
		}
		for _, k := range keys {
			delete(fields, k)
		}
		if tbs := foreignThinking(turn.ThinkingBlocks); len(tbs) > 0 {
			fields["thinking_blocks"], _ = json.Marshal(tbs)
		}
		return true
	})
}

// rewriteMessages applies change to the members of each message in raw (a JSON
// array of objects); a message change reports changing is written again, with its
// members in sorted order. ok is false when nothing changed.
func rewriteMessages(raw json.RawMessage, change func(m json.RawMessage, fields map[string]json.RawMessage) bool) (json.RawMessage, bool) {
	var msgs []json.RawMessage
	if json.Unmarshal(raw, &msgs) != nil {
		return raw, false
	}
	changed := false
	for i, m := range msgs {
		var fields map[string]json.RawMessage
		if json.Unmarshal(m, &fields) != nil || !change(m, fields) {
			continue
		}
		msgs[i] = writeObject(fields, nil)
		changed = true
	}
	if !changed {
		return raw, false
	}
	b, _ := json.Marshal(msgs)
	return b, true
}

// mayHoldThinking reports whether messages may carry thinking_blocks, in one pass: a
// member of that name in any ASCII case, or a key the scan cannot read plainly (escaped
// or beyond ASCII: encoding/json may fold it to that name). Escapes in text values —
// every non-ASCII prompt from a client that escapes it — do not count.
func mayHoldThinking(raw []byte) bool {
	if !containsASCIIFold(raw, "ing_bloc") && !bytes.Contains(raw, []byte(`\u`)) {
		// The key cannot be there: none of these letters has a spelling beyond
		// ASCII case that encoding/json would fold to it, unless escaped.
		return false
	}
	found := false
	plain := scanArray(raw, func(vs, ve int) bool {
		return scanObject(raw[vs:ve], func(key []byte, _, _ int) bool {
			found = found || asciiEqualFold(key, "thinking_blocks")
			return true
		})
	})
	return found || !plain
}

// containsASCIIFold reports whether b contains s (lower-case ASCII) in any ASCII case.
func containsASCIIFold(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		j := 0
		for ; j < len(s); j++ {
			c := b[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != s[j] {
				break
			}
		}
		if j == len(s) {
			return true
		}
	}
	return false
}

// withoutGoogleExtras removes the extra_content of the tool calls in raw messages:
// Gemini's thought signatures (see toolCall.ExtraContent), which only Google reads and
// which OpenAI's API refuses as a property it does not know. Both keys are matched as
// encoding/json matches them (any case, escapes undone), since that is how the
// gateway's own translations read them. ok is false when nothing changed.
func withoutGoogleExtras(raw json.RawMessage) (json.RawMessage, bool) {
	if !mayHoldExtras(raw) {
		return raw, false
	}
	return rewriteMessages(raw, func(m json.RawMessage, fields map[string]json.RawMessage) bool {
		stripped := false
		for k, v := range fields {
			var calls []map[string]json.RawMessage
			if !strings.EqualFold(k, "tool_calls") || json.Unmarshal(v, &calls) != nil {
				continue
			}
			changed := false
			list := make([]json.RawMessage, len(calls))
			for j, tc := range calls {
				for ck := range tc {
					if strings.EqualFold(ck, "extra_content") {
						delete(tc, ck)
						changed = true
					}
				}
				list[j] = writeObject(tc, nil)
			}
			if changed {
				fields[k], _ = json.Marshal(list)
				stripped = true
			}
		}
		return stripped
	})
}

// mayHoldExtras reports whether messages may carry a tool call's extra_content, as
// mayHoldThinking does for thinking_blocks: a key the scan cannot read plainly counts.
func mayHoldExtras(raw []byte) bool {
	if !containsASCIIFold(raw, "extra_content") && !bytes.Contains(raw, []byte(`\u`)) {
		return false
	}
	found := false
	plain := scanArray(raw, func(vs, ve int) bool {
		m := raw[vs:ve]
		return scanObject(m, func(key []byte, ks, ke int) bool {
			if !asciiEqualFold(key, "tool_calls") {
				return true
			}
			calls := m[ks:ke]
			return scanArray(calls, func(cs, ce int) bool {
				return scanObject(calls[cs:ce], func(k []byte, _, _ int) bool {
					found = found || asciiEqualFold(k, "extra_content")
					return true
				})
			})
		})
	})
	return found || !plain
}

// refusesUnknownFields reports whether a provider's API refuses a message property it
// does not know (OpenAI's own, Azure OpenAI): extra_content is left out for them.
// Other OpenAI-style servers ignore it, and some pass it on to Gemini (Google's own
// OpenAI-compatible API, or a proxy in front of it).
func refusesUnknownFields(p *runtime.Provider) bool {
	switch p.Type {
	case gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI:
		return true
	case gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE:
		return p.BaseURL != nil && strings.EqualFold(p.BaseURL.Hostname(), "api.openai.com")
	}
	return false
}

// takesCompletionTokens reports whether a provider is OpenAI's own API or Azure
// OpenAI at an API version that takes max_completion_tokens (2024-09-01 on).
func takesCompletionTokens(p *runtime.Provider) bool {
	switch p.Type {
	case gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI:
		v := p.APIVersion
		if v == "" {
			v = runtime.DefaultAzureAPIVersion
		}
		return v >= "2024-09-01"
	case gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE:
		return p.BaseURL != nil && strings.EqualFold(p.BaseURL.Hostname(), "api.openai.com")
	}
	return false
}
