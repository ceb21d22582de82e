package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// InvalidRequestError describes why a request body was refused. Its message is written
// for the caller and safe to show.
type InvalidRequestError struct {
	Param   string
	Message string
	// Code is the error code the API names it by, if any.
	Code string
}

func (e *InvalidRequestError) Error() string { return e.Message }

func invalidf(param, format string, args ...any) *InvalidRequestError {
	return &InvalidRequestError{Param: param, Message: fmt.Sprintf(format, args...)}
}

// ChatRequest is a parsed chat completions body. Only the fields the gateway acts on are
// interpreted; every other field is passed upstream untouched.
type ChatRequest struct {
	Model  string
	Stream bool
	// IncludeUsage says the caller asked for the usage chunk of a stream.
	IncludeUsage bool

	raw           []byte
	decoded       *chatBody
	fields        map[string]json.RawMessage
	streamOptions map[string]json.RawMessage
}

// ParseChatRequest parses a chat completions body. It needs a JSON object with a
// non-empty string `model`; `stream` and `stream_options.include_usage` must be booleans
// when present.
func ParseChatRequest(body []byte) (*ChatRequest, error) {
	fields, ok := splitObject(body)
	if !ok {
		return nil, &InvalidRequestError{Message: "The request body must be a JSON object."}
	}
	if err := checkSpelling(fields); err != nil {
		return nil, err
	}
	req := &ChatRequest{raw: body, fields: fields}
	raw, ok := fields["model"]
	if !ok || !decodeString(raw, &req.Model) || req.Model == "" {
		return nil, &InvalidRequestError{Param: "model", Message: "`model` is required and must be a non-empty string."}
	}
	if raw, ok := fields["stream"]; ok && !isNull(raw) {
		if err := decodeBool(raw, &req.Stream); err != nil {
			return nil, &InvalidRequestError{Param: "stream", Message: "`stream` must be a boolean."}
		}
	}
	if raw, ok := fields["stream_options"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &req.streamOptions); err != nil || req.streamOptions == nil {
			return nil, &InvalidRequestError{Param: "stream_options", Message: "`stream_options` must be an object."}
		}
		if raw, ok := req.streamOptions["include_usage"]; ok && !isNull(raw) {
			if err := json.Unmarshal(raw, &req.IncludeUsage); err != nil {
				return nil, &InvalidRequestError{Param: "stream_options.include_usage", Message: "`stream_options.include_usage` must be a boolean."}
			}
		}
	}
	return req, nil
}

// decodeString decodes the JSON string raw (a value splitObject found) into dst,
// without encoding/json for a plain ASCII string.
func decodeString(raw []byte, dst *string) bool {
	if end, plain := scanString(raw, 0); len(raw) > 0 && raw[0] == '"' && end == len(raw) && plain {
		*dst = string(raw[1 : len(raw)-1])
		return true
	}
	return json.Unmarshal(raw, dst) == nil
}

// decodeBool decodes the JSON boolean raw into dst as json.Unmarshal does.
func decodeBool(raw []byte, dst *bool) error {
	switch string(raw) {
	case "true":
		*dst = true
		return nil
	case "false":
		*dst = false
		return nil
	}
	return json.Unmarshal(raw, dst)
}

// splitObject splits a JSON object into its members. The values alias body, which
// must not change afterwards. A repeated key keeps its last value, as json.Unmarshal
// into a map does.
func splitObject(body []byte) (map[string]json.RawMessage, bool) {
	fields := make(map[string]json.RawMessage, 8)
	if scanObject(body, func(key []byte, vs, ve int) bool {
		fields[string(key)] = body[vs:ve:ve]
		return true
	}) {
		return fields, true
	}
	// Keys with escapes or beyond ASCII, or invalid JSON: the full decoder decides
	// (JSON null decodes to a nil map: not an object either).
	var decoded map[string]json.RawMessage
	if err := json.Unmarshal(body, &decoded); err != nil || decoded == nil {
		return nil, false
	}
	return decoded, true
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// UpstreamBody renders the body sent to the provider: `model` replaced by the upstream
// model id, for streams `stream_options.include_usage` forced on so the gateway can
// meter the request, and Anthropic's redacted thinking left out of the messages
// (withoutAnthropicThinking). Keys are written in sorted order.
//
// completionTokens asks for the output limit as max_completion_tokens, which OpenAI's
// own API and Azure's take from every model and their reasoning models require
// (they refuse max_tokens); other OpenAI-compatible servers keep max_tokens, which
// some of them read only. Without googleExtras (OpenAI's own API and Azure, which
// refuse properties they do not know) the Gemini thought signatures of the tool calls
// are left out (withoutGoogleExtras).
func (r *ChatRequest) UpstreamBody(upstreamModel string, completionTokens, googleExtras bool) []byte {
	fields := r.fields
	override := map[string]json.RawMessage{"model": mustMarshal(upstreamModel)}
	if v, ok := fields["max_tokens"]; ok && completionTokens {
		if _, both := fields["max_completion_tokens"]; !both {
			fields = maps.Clone(fields)
			delete(fields, "max_tokens")
			override["max_completion_tokens"] = v
		}
	}
	if r.Stream {
		opts := make(map[string]json.RawMessage, len(r.streamOptions)+1)
		maps.Copy(opts, r.streamOptions)
		opts["include_usage"] = json.RawMessage("true")
		override["stream_options"] = writeObject(opts, nil)
	}
	msgs, changed := withoutAnthropicThinking(fields["messages"])
	if !googleExtras {
		var stripped bool
		if msgs, stripped = withoutGoogleExtras(msgs); stripped {
			changed = true
		}
	}
	if changed {
		override["messages"] = msgs
	}
	return writeObject(fields, override)
}

// writeObject writes a JSON object from raw members, with override taking precedence.
// Raw values came from json.Unmarshal, so they are valid JSON and are copied as they are.
func writeObject(fields, override map[string]json.RawMessage) []byte {
	size := 2
	keys := make([]string, 0, len(fields)+len(override))
	for k, v := range fields {
		keys = append(keys, k)
		size += len(k) + len(v) + 4
	}
	for k, v := range override {
		if _, ok := fields[k]; !ok {
			keys = append(keys, k)
		}
		size += len(k) + len(v) + 4
	}
	slices.Sort(keys)
	buf := make([]byte, 0, size)
	buf = append(buf, '{')
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = AppendJSONString(buf, k)
		buf = append(buf, ':')
		if v, ok := override[k]; ok {
			buf = append(buf, v...)
		} else {
			buf = append(buf, fields[k]...)
		}
	}
	return append(buf, '}')
}

func mustMarshal(s string) json.RawMessage {
	return AppendJSONString(nil, s)
}

// AppendJSONString appends s as json.Marshal renders it. Strings of printable ASCII
// that json.Marshal leaves unescaped are copied directly; any other string is
// marshalled (which also replaces invalid UTF-8 with U+FFFD).
func AppendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&':
			// Marshalling a string cannot fail.
			b, _ := json.Marshal(s)
			return append(buf, b...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

// body decodes the request for translation into another provider's format.
func (r *ChatRequest) body() (*chatBody, error) {
	if r.decoded != nil {
		return r.decoded, nil
	}
	var b chatBody
	if err := json.Unmarshal(r.raw, &b); err != nil {
		return nil, invalidf("messages", "The request does not match the chat completions schema: %s.", schemaError(err))
	}
	r.decoded = &b
	return &b, nil
}

// schemaError describes a decoding error without echoing the caller's data.
func schemaError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("`%s` must be %s", te.Field, jsonKind(te.Type.Kind().String()))
	}
	return "malformed JSON"
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	case "bool":
		return "a boolean"
	case "ptr", "interface":
		return "of another type"
	default:
		return "a number"
	}
}

// DefaultCompletionEstimate is the completion size assumed by EstimateTokens when a
// request sets no output limit.
const DefaultCompletionEstimate = 1024

// EstimateTokens estimates the tokens a chat request will use, before it is sent: the
// characters of its message texts and tool definitions divided by 4, mediaEstimate
// tokens for each other part (an image, a file, audio), plus its output limit
// (max_tokens, max_completion_tokens) or DefaultCompletionEstimate for each of its n
// choices.
// Limits admission uses it; it is only an estimate, settled against the real usage
// afterwards.
func (r *ChatRequest) EstimateTokens() int64 {
	prompt, out := r.estimate()
	return prompt + out
}

func (r *ChatRequest) promptEstimate() int64 {
	prompt, _ := r.estimate()
	return prompt
}

func (r *ChatRequest) estimate() (prompt, completion int64) {
	// The body was split into its members by ParseChatRequest: read only those the
	// estimate needs, not the whole body again.
	var chars int
	if raw, ok := r.fields["messages"]; ok {
		chars = messagesTextLen(raw)
	}
	// Tool definitions go to the model as the JSON they are.
	chars += len(r.fields["tools"])
	out := int64(DefaultCompletionEstimate)
	for _, name := range [...]string{"max_completion_tokens", "max_tokens"} {
		if n, ok := r.intMember(name); ok {
			out = n
			break
		}
	}
	out = min(max(out, 0), maxCompletionEstimate)
	if choices, _ := r.intMember("n"); choices > 1 {
		out *= min(choices, maxChoicesEstimate)
	}
	return int64(chars+3) / 4, out
}

// An estimate assumes at most maxCompletionEstimate tokens a choice (more than any
// model writes; a max_tokens of 10^15 would otherwise put every limit of the key, its
// team and the model in debt for as long as limits reach, and one near 2^63 would
// overflow into no charge at all) and at most maxChoicesEstimate choices.
const (
	maxCompletionEstimate = 1 << 20
	maxChoicesEstimate    = 128
)

// intMember is the integer member name; ok is false when it is absent, null or not
// an integer.
func (r *ChatRequest) intMember(name string) (v int64, ok bool) {
	raw, ok := r.fields[name]
	if !ok || isNull(raw) {
		return 0, false
	}
	if fastInt(raw, &v) || json.Unmarshal(raw, &v) == nil {
		return v, true
	}
	return 0, false
}

// messagesTextLen counts the characters of a messages array that the token estimate
// reads: content texts and tool call arguments. One scan decides the common shapes;
// anything else (repeated or escaped keys, nulls or other types where an object or a
// string belongs) is decoded by encoding/json, whose answer the scan matches.
func messagesTextLen(raw []byte) int {
	n := 0
	if scanArray(raw, func(vs, ve int) bool {
		m, ok := messageTextLen(raw[vs:ve])
		n += m
		return ok
	}) {
		return n
	}
	return decodedMessagesTextLen(raw)
}

func messageTextLen(msg []byte) (int, bool) {
	v, ok := members(msg, "content", "tool_calls")
	if !ok {
		return 0, false
	}
	n := 0
	if v[0] != nil {
		n = contentEstimateLen(v[0])
	}
	if v[1] == nil {
		return n, true
	}
	return n, scanArray(v[1], func(vs, ve int) bool {
		call, ok := members(v[1][vs:ve], "function")
		if !ok || call[0] == nil {
			return ok
		}
		fn, ok := members(call[0], "arguments")
		if !ok || fn[0] == nil {
			return ok
		}
		args, ok := stringLen(fn[0])
		n += args
		return ok
	})
}

// mediaEstimate is the tokens assumed for a content part that is not text (an image,
// a file, audio): about what a provider charges for an image, and a document of a page
// or two. Its bytes would say more about its encoding than about its tokens.
const mediaEstimate = 1000

// contentEstimateLen is the characters a message content counts for in an estimate:
// its text, and 4·mediaEstimate for each part that is not text.
func contentEstimateLen(raw json.RawMessage) int {
	n := contentTextLen(raw)
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return n
	}
	scanArray(raw, func(vs, ve int) bool {
		v, ok := members(raw[vs:ve], "type")
		if !ok || v[0] == nil {
			return true
		}
		var t string
		decodeString(v[0], &t)
		switch t {
		case "text", "input_text", "output_text", "refusal":
		default:
			n += 4 * mediaEstimate
		}
		return true
	})
	return n
}

// decodedMessagesTextLen is messagesTextLen by encoding/json.
func decodedMessagesTextLen(raw []byte) int {
	var msgs []struct {
		Content   json.RawMessage `json:"content"`
		ToolCalls []toolCall      `json:"tool_calls"`
	}
	_ = json.Unmarshal(raw, &msgs)
	var chars int
	for _, m := range msgs {
		chars += contentEstimateLen(m.Content)
		for _, tc := range m.ToolCalls {
			chars += len(tc.Function.Arguments)
		}
	}
	return chars
}

// chatRequestOf renders a translated chat body and parses it back, so every surface
// reaches the upstream adapters as a ChatRequest.
func chatRequestOf(b *chatBody) (*ChatRequest, error) {
	raw, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("render chat request: %w", err)
	}
	return ParseChatRequest(raw)
}
