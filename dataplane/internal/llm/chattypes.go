package llm

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// The OpenAI chat completions wire types the translations work on. Requests and
// answers that need no translation never go through them: they are relayed as bytes.

type chatBody struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	MaxTokens           *int64          `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	TopP                *float64        `json:"top_p,omitempty"`
	Stop                json.RawMessage `json:"stop,omitempty"`
	Stream              bool            `json:"stream,omitempty"`
	StreamOptions       *streamOptions  `json:"stream_options,omitempty"`
	Tools               []chatTool      `json:"tools,omitempty"`
	ToolChoice          json.RawMessage `json:"tool_choice,omitempty"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls,omitempty"`
	ResponseFormat      json.RawMessage `json:"response_format,omitempty"`
	User                string          `json:"user,omitempty"`
	N                   *int64          `json:"n,omitempty"`
	// ReasoningEffort (OpenAI) or Thinking (Anthropic's own object, passed as it is)
	// ask a model that can think to do so.
	ReasoningEffort string          `json:"reasoning_effort,omitempty"`
	Thinking        json.RawMessage `json:"thinking,omitempty"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content,omitempty"`
	Name       string          `json:"name,omitempty"`
	ToolCalls  []toolCall      `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
	// ThinkingBlocks of an assistant turn, as an answer gave them: Anthropic wants
	// them back (signed) when a conversation with thinking continues after tool calls.
	ThinkingBlocks []thinkingBlock `json:"thinking_blocks,omitempty"`
}

// thinkingBlock is a model's reasoning as Anthropic returns it: "thinking" (text and
// signature) or "redacted_thinking" (encrypted data). In chat form it travels in
// thinking_blocks, the text also in reasoning_content, as other gateways do.
type thinkingBlock struct {
	Type      string `json:"type"`
	Thinking  string `json:"thinking,omitempty"`
	Signature string `json:"signature,omitempty"`
	Data      string `json:"data,omitempty"`
}

type contentPart struct {
	Type     string    `json:"type"`
	Text     string    `json:"text,omitempty"`
	ImageURL *imageURL `json:"image_url,omitempty"`
	File     *fileRef  `json:"file,omitempty"`
}

type imageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

type toolCall struct {
	Index    *int         `json:"index,omitempty"`
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Function toolFunction `json:"function"`
	// ExtraContent carries a Gemini thought signature as Google's own
	// OpenAI-compatible API does (extra_content.google.thought_signature): Gemini 3
	// refuses a conversation whose function calls come back without theirs. Kept
	// raw: a value of another shape is no error, it just carries no signature.
	ExtraContent json.RawMessage `json:"extra_content,omitempty"`
}

// thoughtSignature is the Gemini thought signature the call carries, if any.
func (tc *toolCall) thoughtSignature() string {
	var extra struct {
		Google struct {
			ThoughtSignature string `json:"thought_signature"`
		} `json:"google"`
	}
	if len(tc.ExtraContent) == 0 || json.Unmarshal(tc.ExtraContent, &extra) != nil {
		return ""
	}
	return extra.Google.ThoughtSignature
}

// withThoughtSignature returns extra content carrying sig, nil for none.
func withThoughtSignature(sig string) json.RawMessage {
	if sig == "" {
		return nil
	}
	return json.RawMessage(`{"google":{"thought_signature":` + string(AppendJSONString(nil, sig)) + `}}`)
}

type toolFunction struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

type chatTool struct {
	Type     string          `json:"type"`
	Function toolFunctionDef `json:"function"`
}

type toolFunctionDef struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// chatResponse is a chat completion.
type chatResponse struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *usageJSON   `json:"usage,omitempty"`
	// native is the usage as the provider reported it, when translated: it can say
	// more than chat's form (Anthropic's cache writes).
	native *Usage
}

// usage is the answer's usage; ok is false when it has none.
func (r *chatResponse) usage() (u Usage, ok bool) {
	switch {
	case r.native != nil:
		return *r.native, true
	case r.Usage != nil:
		return r.Usage.usage(), true
	}
	return Usage{}, false
}

type chatChoice struct {
	Index        int             `json:"index"`
	Message      responseMessage `json:"message"`
	FinishReason string          `json:"finish_reason"`
}

type responseMessage struct {
	Role             string          `json:"role"`
	Content          *string         `json:"content"`
	ReasoningContent *string         `json:"reasoning_content,omitempty"`
	ThinkingBlocks   []thinkingBlock `json:"thinking_blocks,omitempty"`
	ToolCalls        []toolCall      `json:"tool_calls,omitempty"`
	Refusal          *string         `json:"refusal,omitempty"`
}

// chatChunk is one chat.completion.chunk of a stream.
type chatChunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []chunkChoice `json:"choices"`
	Usage   *usageJSON    `json:"usage,omitempty"`
}

type chunkChoice struct {
	Index        int        `json:"index"`
	Delta        chunkDelta `json:"delta"`
	FinishReason *string    `json:"finish_reason"`
}

type chunkDelta struct {
	Role             string          `json:"role,omitempty"`
	Content          *string         `json:"content,omitempty"`
	ReasoningContent *string         `json:"reasoning_content,omitempty"`
	ThinkingBlocks   []thinkingBlock `json:"thinking_blocks,omitempty"`
	ToolCalls        []toolCall      `json:"tool_calls,omitempty"`
	Refusal          *string         `json:"refusal,omitempty"`
}

type usageJSON struct {
	PromptTokens        int64         `json:"prompt_tokens"`
	CompletionTokens    int64         `json:"completion_tokens"`
	TotalTokens         int64         `json:"total_tokens"`
	PromptTokensDetails *tokenDetails `json:"prompt_tokens_details,omitempty"`
}

type tokenDetails struct {
	CachedTokens int64 `json:"cached_tokens"`
}

func (u *usageJSON) usage() Usage {
	out := Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens}
	if u.PromptTokensDetails != nil {
		out.CachedTokens = u.PromptTokensDetails.CachedTokens
	}
	return out
}

func (u Usage) json() *usageJSON {
	out := &usageJSON{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.PromptTokens + u.CompletionTokens}
	if u.CachedTokens > 0 {
		out.PromptTokensDetails = &tokenDetails{CachedTokens: u.CachedTokens}
	}
	return out
}

// text returns the text of a message content: a string, or the text parts of an array.
func contentText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || isNull(raw) {
		return ""
	}
	if raw[0] == '"' {
		var s string
		_ = json.Unmarshal(raw, &s)
		return s
	}
	var parts []contentPart
	if json.Unmarshal(raw, &parts) != nil {
		return ""
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "text" || p.Type == "input_text" || p.Type == "output_text" {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// contentTextLen is len(contentText(raw)), without decoding a plain string: one with no
// escapes, control characters or invalid UTF-8 decodes to its own bytes.
func contentTextLen(raw json.RawMessage) int {
	raw = bytes.TrimSpace(raw)
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' {
		inner := raw[1 : n-1]
		plain := utf8.Valid(inner)
		for _, c := range inner {
			if c < 0x20 || c == '"' || c == '\\' {
				plain = false
				break
			}
		}
		if plain {
			return len(inner)
		}
	}
	return len(contentText(raw))
}

// contentParts returns a message content as parts: a string becomes one text part.
func contentParts(raw json.RawMessage) ([]contentPart, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || isNull(raw) {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return []contentPart{{Type: "text", Text: s}}, nil
	}
	var parts []contentPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, err
	}
	return parts, nil
}

func stringContent(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

func ptr[T any](v T) *T { return &v }

// deref is *p, or the zero value when p is nil.
func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// stopList reads `stop`: a string or a list of strings.
func stopList(raw json.RawMessage) []string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || isNull(raw) {
		return nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(raw, &many)
	return many
}

// responseFormat reads response_format: its type (json_object, json_schema, text;
// "" when absent or unreadable) and, for json_schema, the schema and whether it is
// strict.
func (b *chatBody) responseFormat() (kind string, schema json.RawMessage, strict bool) {
	rf := bytes.TrimSpace(b.ResponseFormat)
	if len(rf) == 0 || isNull(rf) {
		return "", nil, false
	}
	var f struct {
		Type       string `json:"type"`
		JSONSchema struct {
			Schema json.RawMessage `json:"schema"`
			Strict *bool           `json:"strict"`
		} `json:"json_schema"`
	}
	if json.Unmarshal(rf, &f) != nil {
		return "", nil, false
	}
	return f.Type, f.JSONSchema.Schema, f.JSONSchema.Strict != nil && *f.JSONSchema.Strict
}
