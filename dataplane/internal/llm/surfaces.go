package llm

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Surface is the API a caller speaks.
type Surface uint8

const (
	// SurfaceChat is OpenAI chat completions (/v1/chat/completions).
	SurfaceChat Surface = iota
	// SurfaceMessages is the Anthropic Messages API (/v1/messages).
	SurfaceMessages
	// SurfaceResponses is the OpenAI Responses API (/v1/responses).
	SurfaceResponses
	// SurfaceEmbeddings is OpenAI embeddings (/v1/embeddings).
	SurfaceEmbeddings
)

// TextKind names a text of an answer that response filters see on its own.
type TextKind uint8

const (
	// TextContent is the assistant's content: message text, text deltas, output text.
	TextContent TextKind = iota
	// TextReasoning is one block of the model's reasoning: reasoning_content (chat),
	// an Anthropic thinking block, Gemini thought parts, a Responses reasoning summary.
	// Reasoning reaches callers as text even when the model signed it.
	TextReasoning
	// TextToolArguments is the JSON arguments of one tool call. A filter must not
	// change them except to cut the answer: they stay the JSON the model wrote.
	TextToolArguments
	// TextRefusal is the model's refusal (chat message.refusal, an OpenAI refusal
	// part): filtered as content is, but recorded apart.
	TextRefusal
)

// String names the kind as guardrail events record where a rule matched.
func (k TextKind) String() string {
	switch k {
	case TextContent:
		return "content"
	case TextReasoning:
		return "reasoning"
	case TextToolArguments:
		return "arguments"
	case TextRefusal:
		return "refusal"
	}
	return "unknown"
}

// MessagesRequest is a parsed Anthropic Messages body: kept as fields, to be relayed
// to Anthropic upstreams as it came (model replaced), and translated into Chat for the
// others.
type MessagesRequest struct {
	Model  string
	Stream bool
	// Chat is the request in chat completions form.
	Chat *ChatRequest

	fields map[string]json.RawMessage
	// unsupported, when set, refuses the request to upstreams that need the chat form:
	// it holds what that form cannot carry (see messagesToChat).
	unsupported *InvalidRequestError
}

// ParseMessagesRequest parses a Messages body. It needs a JSON object with a non-empty
// string `model`, a positive integer `max_tokens` and a `messages` array whose entries
// are user or assistant turns; `stream` must be a boolean when present.
func ParseMessagesRequest(body []byte) (*MessagesRequest, error) {
	return parseMessages(body, true)
}

// ParseCountTokensRequest parses a body of /v1/messages/count_tokens: a Messages body
// without max_tokens (any it has is not checked).
func ParseCountTokensRequest(body []byte) (*MessagesRequest, error) {
	return parseMessages(body, false)
}

func parseMessages(body []byte, needMaxTokens bool) (*MessagesRequest, error) {
	fields, ok := splitObject(body)
	if !ok {
		return nil, &InvalidRequestError{Message: "The request body must be a JSON object."}
	}
	if err := checkSpelling(fields); err != nil {
		return nil, err
	}
	req := &MessagesRequest{fields: fields}
	if raw, ok := fields["model"]; !ok || json.Unmarshal(raw, &req.Model) != nil || req.Model == "" {
		return nil, invalidf("model", "model: Field required (a non-empty string).")
	}
	var maxTokens int64
	if raw, ok := fields["max_tokens"]; needMaxTokens && (!ok || json.Unmarshal(raw, &maxTokens) != nil || maxTokens < 1) {
		return nil, invalidf("max_tokens", "max_tokens: Field required (a positive integer).")
	}
	if raw, ok := fields["messages"]; !ok || !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
		return nil, invalidf("messages", "messages: Field required (an array).")
	}
	if raw, ok := fields["stream"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &req.Stream); err != nil {
			return nil, invalidf("stream", "stream: Input should be a valid boolean.")
		}
	}
	var mb messagesBody
	if err := json.Unmarshal(body, &mb); err != nil {
		return nil, invalidf("messages", "The request does not match the Messages schema: %s.", schemaError(err))
	}
	cb, unsupported, err := messagesToChat(&mb)
	if err != nil {
		return nil, err
	}
	req.unsupported = unsupported
	if req.Chat, err = chatRequestOf(cb); err != nil {
		return nil, err
	}
	return req, nil
}

// upstreamBody renders the body relayed to an Anthropic upstream: as it came, but for
// the model and the unsigned thinking blocks of assistant turns (see
// anthropicBlock.unsigned), which Anthropic would refuse. A caller that sends back a
// thinking block a guardrail redacted (and so unsigned) continues the conversation.
func (r *MessagesRequest) upstreamBody(upstreamModel string) []byte {
	override := map[string]json.RawMessage{"model": mustMarshal(upstreamModel)}
	if msgs, ok := withoutUnsignedThinking(r.fields["messages"]); ok {
		override["messages"] = msgs
	}
	return writeObject(r.fields, override)
}

// ResponsesRequest is a parsed OpenAI Responses body, translated into chat completions
// for every upstream — unless the chat form cannot carry it (unsupported): then only
// OpenAI-compatible and Azure OpenAI providers serve it, through their own Responses
// API, the body relayed as it came (the model replaced).
type ResponsesRequest struct {
	Model  string
	Stream bool
	// Chat is the request in chat completions form; when the request is unsupported
	// there, what it could carry, for the estimate and the guardrails.
	Chat *ChatRequest

	body        *responsesBody
	fields      map[string]json.RawMessage
	unsupported *InvalidRequestError
	// background: the caller asked the provider to answer later (native only).
	background bool
	// pinProvider and upstreamPrevious are the provider holding the previous
	// response and its id there (see openPrevious); sealer seals the answer's ids in
	// the current attempt.
	pinProvider, upstreamPrevious string
	sealer                        *idSealer
	// gatewayState: the input carries reasoning items with this gateway's own
	// encrypted_content (thinkingStatePrefix), which only Anthropic reads.
	gatewayState bool
	// translate: a native attempt found no Responses API; the chat form serves it.
	translate bool
}

// Native reports whether the request is served only by providers' own Responses
// APIs: it holds something the chat form cannot carry.
func (r *ResponsesRequest) Native() bool { return r.unsupported != nil }

// upstreamBody renders the body relayed to a provider's Responses API: as it came,
// the model replaced, and the previous response named by the provider's own id.
func (r *ResponsesRequest) upstreamBody(upstreamModel string) []byte {
	set := map[string]json.RawMessage{"model": mustMarshal(upstreamModel)}
	if r.upstreamPrevious != "" {
		set["previous_response_id"] = mustMarshal(r.upstreamPrevious)
	}
	if r.gatewayState {
		if in, ok := withoutGatewayState(r.fields["input"]); ok {
			set["input"] = in
		}
	}
	return writeObject(r.fields, set)
}

// withoutGatewayState returns the input items but the reasoning items that carry this
// gateway's own state (Claude's thinking blocks, see thinkingStatePrefix): another
// provider cannot read them, as the translation for other providers leaves them out.
func withoutGatewayState(raw json.RawMessage) (json.RawMessage, bool) {
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return nil, false
	}
	kept := items[:0]
	for _, it := range items {
		var item struct {
			Type             string `json:"type"`
			EncryptedContent string `json:"encrypted_content"`
		}
		if json.Unmarshal(it, &item) == nil && item.Type == "reasoning" && strings.HasPrefix(item.EncryptedContent, thinkingStatePrefix) {
			continue
		}
		kept = append(kept, it)
	}
	out, err := json.Marshal(kept)
	return out, err == nil
}

// statefulFields reads the fields that name state a provider keeps from the member
// that goes upstream as it is: json.Unmarshal matches keys in any case and keeps the
// last, the relayed body keeps every spelling, so a second spelling could carry an id
// past the gateway's check (see openPrevious); checkSpelling has refused other
// spellings already. `conversation` is refused too: conversations are created at the
// provider, never through the gateway, so their ids could only come from outside it.
func statefulFields(fields map[string]json.RawMessage, rb *responsesBody) error {
	rb.PreviousResponseID = ""
	for k, raw := range fields {
		switch {
		case k == "previous_response_id":
			if !isNull(raw) && !decodeString(raw, &rb.PreviousResponseID) && json.Unmarshal(raw, &rb.PreviousResponseID) != nil {
				return invalidf("previous_response_id", "`previous_response_id` must be a string.")
			}
		case strings.EqualFold(k, "conversation") && !isNull(raw):
			return invalidf(k, "`conversation` is not supported by this gateway: continue a response with `previous_response_id`, or send the conversation in `input`.")
		}
	}
	return nil
}

// ParseResponsesRequest parses a Responses body: a JSON object with a non-empty string
// `model` and an `input` (a string or an array of items).
func ParseResponsesRequest(body []byte) (*ResponsesRequest, error) {
	fields, ok := splitObject(body)
	if !ok {
		return nil, &InvalidRequestError{Message: "The request body must be a JSON object."}
	}
	if err := checkSpelling(fields); err != nil {
		return nil, err
	}
	var rb responsesBody
	if raw, ok := fields["model"]; !ok || json.Unmarshal(raw, &rb.Model) != nil || rb.Model == "" {
		return nil, invalidf("model", "`model` is required and must be a non-empty string.")
	}
	if raw, ok := fields["stream"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &rb.Stream); err != nil {
			return nil, invalidf("stream", "`stream` must be a boolean.")
		}
	}
	if raw, ok := fields["input"]; !ok || isNull(raw) {
		return nil, invalidf("input", "`input` is required.")
	}
	if err := json.Unmarshal(body, &rb); err != nil {
		return nil, invalidf("input", "The request does not match the Responses schema: %s.", schemaError(err))
	}
	if err := statefulFields(fields, &rb); err != nil {
		return nil, err
	}
	cb, unsupported, err := responsesToChat(&rb)
	if err != nil {
		return nil, err
	}
	req := &ResponsesRequest{Model: rb.Model, Stream: rb.Stream, body: &rb, fields: fields, unsupported: unsupported,
		gatewayState: bytes.Contains(fields["input"], []byte(thinkingStatePrefix))}
	if raw, ok := fields["background"]; ok && !isNull(raw) && decodeBool(raw, &req.background) != nil {
		return nil, invalidf("background", "`background` must be a boolean.")
	}
	if req.Chat, err = responsesChatRequest(cb); err != nil {
		return nil, err
	}
	return req, nil
}

// responsesChatRequest renders the chat form of a Responses request. The Anthropic
// thinking blocks its reasoning items restored stay out of the rendered body, which
// OpenAI-style upstreams get as it is and could not use; only the decoded form the
// translations read (ChatRequest.body, decoded once and kept) carries them, for
// chatToAnthropic (chatToGemini leaves them out).
func responsesChatRequest(cb *chatBody) (*ChatRequest, error) {
	thinking := map[int][]thinkingBlock{}
	for i := range cb.Messages {
		if tbs := cb.Messages[i].ThinkingBlocks; len(tbs) > 0 {
			thinking[i] = tbs
		}
		cb.Messages[i].ThinkingBlocks = nil
	}
	cr, err := chatRequestOf(cb)
	if err != nil || len(thinking) == 0 {
		return cr, err
	}
	decoded, err := cr.body()
	if err != nil {
		return nil, err
	}
	for i, tbs := range thinking {
		decoded.Messages[i].ThinkingBlocks = tbs
	}
	return cr, nil
}

// EmbeddingsRequest is a parsed embeddings body.
type EmbeddingsRequest struct {
	Model string
	// Texts are the inputs when they are strings; nil when the input is tokens.
	Texts          []string
	EncodingFormat string
	Dimensions     *int64

	fields map[string]json.RawMessage
}

// ParseEmbeddingsRequest parses an embeddings body: a JSON object with a non-empty
// string `model` and an `input` that is a string, an array of strings, an array of
// tokens or an array of token arrays.
func ParseEmbeddingsRequest(body []byte) (*EmbeddingsRequest, error) {
	fields, ok := splitObject(body)
	if !ok {
		return nil, &InvalidRequestError{Message: "The request body must be a JSON object."}
	}
	req := &EmbeddingsRequest{fields: fields}
	if raw, ok := fields["model"]; !ok || json.Unmarshal(raw, &req.Model) != nil || req.Model == "" {
		return nil, invalidf("model", "`model` is required and must be a non-empty string.")
	}
	raw, ok := fields["input"]
	if !ok || isNull(raw) {
		return nil, invalidf("input", "`input` is required.")
	}
	var one string
	var many []string
	var tokens []int64
	var tokenLists [][]int64
	switch {
	case json.Unmarshal(raw, &one) == nil:
		req.Texts = []string{one}
	case json.Unmarshal(raw, &many) == nil && len(many) > 0:
		req.Texts = many
	case json.Unmarshal(raw, &tokens) == nil && len(tokens) > 0:
	case json.Unmarshal(raw, &tokenLists) == nil && len(tokenLists) > 0:
	default:
		return nil, invalidf("input", "`input` must be a string, an array of strings, or an array of token arrays, and not empty.")
	}
	for _, t := range req.Texts {
		if t == "" {
			return nil, invalidf("input", "`input` must not contain empty strings.")
		}
	}
	if raw, ok := fields["encoding_format"]; ok && !isNull(raw) {
		if json.Unmarshal(raw, &req.EncodingFormat) != nil || (req.EncodingFormat != "float" && req.EncodingFormat != "base64") {
			return nil, invalidf("encoding_format", "`encoding_format` must be \"float\" or \"base64\".")
		}
	}
	if raw, ok := fields["dimensions"]; ok && !isNull(raw) {
		var d int64
		if json.Unmarshal(raw, &d) != nil || d < 1 {
			return nil, invalidf("dimensions", "`dimensions` must be a positive integer.")
		}
		req.Dimensions = &d
	}
	return req, nil
}

// EstimateTokens estimates the tokens of the inputs (characters divided by 4; token
// inputs count as they are).
func (r *EmbeddingsRequest) EstimateTokens() int64 {
	if r.Texts == nil {
		return int64(len(r.fields["input"]) / 2)
	}
	var chars int
	for _, t := range r.Texts {
		chars += len(t)
	}
	return int64(chars+3) / 4
}

func (r *EmbeddingsRequest) upstreamBody(upstreamModel string) []byte {
	return writeObject(r.fields, map[string]json.RawMessage{"model": mustMarshal(upstreamModel)})
}
