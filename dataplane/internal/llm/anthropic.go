package llm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// The Anthropic Messages wire types, and the translations between them and chat
// completions, in both directions: chat callers served by Anthropic upstreams, and
// Messages callers (/v1/messages) served by OpenAI-style upstreams.

// anthropicVersion is sent upstream when the caller named none.
const anthropicVersion = "2023-06-01"

// defaultAnthropicMaxTokens is sent when a chat caller set no limit: the Messages API
// requires one.
const defaultAnthropicMaxTokens = 4096

type anthropicRequest struct {
	Model         string               `json:"model"`
	MaxTokens     int64                `json:"max_tokens"`
	System        json.RawMessage      `json:"system,omitempty"`
	Messages      []anthropicMessage   `json:"messages"`
	Tools         []anthropicTool      `json:"tools,omitempty"`
	ToolChoice    *anthropicToolChoice `json:"tool_choice,omitempty"`
	StopSequences []string             `json:"stop_sequences,omitempty"`
	Temperature   *float64             `json:"temperature,omitempty"`
	TopP          *float64             `json:"top_p,omitempty"`
	TopK          *int64               `json:"top_k,omitempty"`
	Stream        bool                 `json:"stream,omitempty"`
	Metadata      *anthropicMetadata   `json:"metadata,omitempty"`
	Thinking      json.RawMessage      `json:"thinking,omitempty"`
	OutputConfig  *anthropicOutput     `json:"output_config,omitempty"`
}

// anthropicOutput is the Messages API's output_config: a structured output's JSON
// schema (chat's response_format json_schema).
type anthropicOutput struct {
	Format *anthropicOutputFormat `json:"format,omitempty"`
}

type anthropicOutputFormat struct {
	Type   string          `json:"type"`
	Schema json.RawMessage `json:"schema,omitempty"`
}

type anthropicMetadata struct {
	UserID string `json:"user_id,omitempty"`
}

type anthropicMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type anthropicBlock struct {
	Type      string           `json:"type"`
	Text      string           `json:"text,omitempty"`
	Source    *anthropicSource `json:"source,omitempty"`
	ID        string           `json:"id,omitempty"`
	Name      string           `json:"name,omitempty"`
	Input     json.RawMessage  `json:"input,omitempty"`
	ToolUseID string           `json:"tool_use_id,omitempty"`
	Content   json.RawMessage  `json:"content,omitempty"`
	IsError   bool             `json:"is_error,omitempty"`
	// Title names a "document" block.
	Title string `json:"title,omitempty"`
	// Thinking and Signature make a "thinking" block, Data a "redacted_thinking" one.
	Thinking  string `json:"thinking,omitempty"`
	Signature string `json:"signature,omitempty"`
	Data      string `json:"data,omitempty"`
}

type anthropicSource struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
	// Content is a document's own content blocks (type "content").
	Content json.RawMessage `json:"content,omitempty"`
}

type anthropicTool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
}

type anthropicToolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse *bool  `json:"disable_parallel_tool_use,omitempty"`
}

type anthropicResponse struct {
	ID           string           `json:"id"`
	Type         string           `json:"type"`
	Role         string           `json:"role"`
	Model        string           `json:"model"`
	Content      []anthropicBlock `json:"content"`
	StopReason   *string          `json:"stop_reason"`
	StopSequence *string          `json:"stop_sequence"`
	// Usage is nil when a provider's answer left it out (then estimated).
	Usage *anthropicUsage `json:"usage"`
}

type anthropicUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	// CacheCreation splits the cache writes by how long they are kept.
	CacheCreation *anthropicCacheCreation `json:"cache_creation,omitempty"`
}

type anthropicCacheCreation struct {
	Ephemeral5m int64 `json:"ephemeral_5m_input_tokens"`
	Ephemeral1h int64 `json:"ephemeral_1h_input_tokens"`
}

// usage converts Anthropic usage: its input tokens exclude cache reads and writes, the
// gateway's prompt tokens include them, cache reads are the cached tokens and cache
// writes are priced as such.
func (u *anthropicUsage) usage() Usage {
	out := Usage{
		PromptTokens:     tokenCount(u.InputTokens) + tokenCount(u.CacheReadInputTokens) + tokenCount(u.CacheCreationInputTokens),
		CompletionTokens: tokenCount(u.OutputTokens),
		CachedTokens:     tokenCount(u.CacheReadInputTokens),
		CacheWriteTokens: tokenCount(u.CacheCreationInputTokens),
	}
	if c := u.CacheCreation; c != nil {
		out.CacheWrite1hTokens = tokenCount(c.Ephemeral1h)
	}
	return out.clamped()
}

// merge takes in the usage of a message_delta: its counts are cumulative, and the
// input counts replace message_start's only when given (some servers send the cache
// counts only there).
func (u *anthropicUsage) merge(delta *anthropicUsage) {
	u.OutputTokens = delta.OutputTokens
	if delta.InputTokens > 0 {
		u.InputTokens = delta.InputTokens
	}
	if delta.CacheReadInputTokens > 0 {
		u.CacheReadInputTokens = delta.CacheReadInputTokens
	}
	if delta.CacheCreationInputTokens > 0 {
		u.CacheCreationInputTokens = delta.CacheCreationInputTokens
	}
	if delta.CacheCreation != nil {
		u.CacheCreation = delta.CacheCreation
	}
}

func anthropicUsageOf(u Usage) anthropicUsage {
	u = u.clamped()
	return anthropicUsage{InputTokens: u.PromptTokens - u.CachedTokens - u.CacheWriteTokens, OutputTokens: u.CompletionTokens,
		CacheReadInputTokens: u.CachedTokens, CacheCreationInputTokens: u.CacheWriteTokens}
}

// chatToAnthropic translates a chat completions request into a Messages request.
func chatToAnthropic(b *chatBody, upstreamModel string) (*anthropicRequest, error) {
	out := &anthropicRequest{
		Model: upstreamModel, MaxTokens: defaultAnthropicMaxTokens, Stream: b.Stream,
		Temperature: b.Temperature, TopP: b.TopP, StopSequences: stopList(b.Stop),
	}
	switch {
	case b.MaxCompletionTokens != nil:
		out.MaxTokens = *b.MaxCompletionTokens
	case b.MaxTokens != nil:
		out.MaxTokens = *b.MaxTokens
	}
	if b.N != nil && *b.N > 1 {
		// The Messages API makes one answer per request. Answering n > 1 with one
		// choice would leave the caller to find out; several calls would bill n times
		// the prompt without the caller knowing.
		return nil, cannotCarry(invalidf("n", "This model's provider (Anthropic) returns one choice per request: `n` must be 1. Send several requests for several answers."))
	}
	if b.User != "" {
		out.Metadata = &anthropicMetadata{UserID: b.User}
	}
	// A strict JSON schema constrains Claude's answer as it constrains OpenAI's (its
	// structured outputs always hold to the schema). A schema that is not strict is
	// guidance only for OpenAI too, and would have Claude refuse what it cannot
	// enforce; it stays in the prompt's hands, as does json_object (any JSON), which
	// has no Messages counterpart.
	if kind, schema, strict := b.responseFormat(); kind == "json_schema" && strict && len(schema) > 0 && !isNull(schema) {
		out.OutputConfig = &anthropicOutput{Format: &anthropicOutputFormat{Type: "json_schema", Schema: anthropicSchema(schema)}}
	}
	if err := anthropicThinking(b, out, b.MaxCompletionTokens != nil || b.MaxTokens != nil); err != nil {
		return nil, err
	}
	anthropicSampling(out)
	var system []anthropicBlock
	var msgs []anthropicMessage
	// add appends blocks to the conversation, merging consecutive turns of one role:
	// the Messages API wants user and assistant turns to alternate.
	var pending []anthropicBlock
	pendingRole := ""
	flush := func() error {
		if pendingRole == "" {
			return nil
		}
		content, err := json.Marshal(pending)
		if err != nil {
			return err
		}
		msgs = append(msgs, anthropicMessage{Role: pendingRole, Content: content})
		pending, pendingRole = nil, ""
		return nil
	}
	add := func(role string, blocks ...anthropicBlock) error {
		if role != pendingRole {
			if err := flush(); err != nil {
				return err
			}
			pendingRole = role
		}
		pending = append(pending, blocks...)
		return nil
	}
	for i, m := range b.Messages {
		switch m.Role {
		case "system", "developer":
			if t := contentText(m.Content); t != "" {
				system = append(system, anthropicBlock{Type: "text", Text: t})
			}
		case "user":
			parts, err := contentParts(m.Content)
			if err != nil {
				return nil, invalidf(fmt.Sprintf("messages[%d].content", i), "`messages[%d].content` must be a string or an array of content parts.", i)
			}
			var blocks []anthropicBlock
			for j, p := range parts {
				switch p.Type {
				case "text":
					// Anthropic refuses text blocks that are empty or only white space.
					if strings.TrimSpace(p.Text) != "" {
						blocks = append(blocks, anthropicBlock{Type: "text", Text: p.Text})
					}
				case "file":
					doc, err := anthropicDocument(p.File, documentParam(i, j))
					if err != nil {
						return nil, err
					}
					blocks = append(blocks, doc)
				case "image_url":
					if p.ImageURL == nil {
						return nil, invalidf(fmt.Sprintf("messages[%d].content", i), "An `image_url` part needs `image_url.url`.")
					}
					src, err := anthropicImageSource(p.ImageURL.URL, i)
					if err != nil {
						return nil, err
					}
					blocks = append(blocks, anthropicBlock{Type: "image", Source: src})
				}
			}
			if len(blocks) == 0 {
				// Nothing to say (chat takes an empty user message, Anthropic no empty
				// or blank text): the turn is left out — unless it is the last one,
				// whose place an assistant turn would take, continuing its answer.
				if i == len(b.Messages)-1 {
					return nil, invalidf(fmt.Sprintf("messages[%d].content", i), "`messages[%d]` is empty: this model's provider needs the last user message to say something.", i)
				}
				continue
			}
			if err := add("user", blocks...); err != nil {
				return nil, err
			}
		case "assistant":
			var blocks []anthropicBlock
			for _, tb := range m.ThinkingBlocks {
				b := anthropicBlock{Type: tb.Type, Thinking: tb.Thinking, Signature: tb.Signature, Data: tb.Data}
				if (b.Type == "thinking" || b.Type == "redacted_thinking") && !b.unsigned() {
					blocks = append(blocks, b)
				}
			}
			if t := contentText(m.Content); t != "" {
				blocks = append(blocks, anthropicBlock{Type: "text", Text: t})
			}
			for _, tc := range m.ToolCalls {
				blocks = append(blocks, anthropicBlock{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: argumentsObject(tc.Function.Arguments)})
			}
			if len(blocks) == 0 {
				continue
			}
			if err := add("assistant", blocks...); err != nil {
				return nil, err
			}
		case "tool", "function":
			if err := add("user", anthropicBlock{Type: "tool_result", ToolUseID: m.ToolCallID, Content: stringContent(contentText(m.Content))}); err != nil {
				return nil, err
			}
		default:
			return nil, invalidf(fmt.Sprintf("messages[%d].role", i), "Unknown message role %q.", m.Role)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return nil, invalidf("messages", "`messages` must contain at least one user or assistant message.")
	}
	out.Messages = msgs
	if len(system) > 0 {
		out.System, _ = json.Marshal(system)
	}
	for _, t := range b.Tools {
		if t.Type != "" && t.Type != "function" {
			continue
		}
		schema := t.Function.Parameters
		if len(bytes.TrimSpace(schema)) == 0 || isNull(schema) {
			schema = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out.Tools = append(out.Tools, anthropicTool{Name: t.Function.Name, Description: t.Function.Description, InputSchema: schema})
	}
	if len(out.Tools) > 0 {
		if tc := anthropicToolChoiceOf(b.ToolChoice); tc != nil {
			out.ToolChoice = tc
		}
		if b.ParallelToolCalls != nil && !*b.ParallelToolCalls {
			if out.ToolChoice == nil {
				out.ToolChoice = &anthropicToolChoice{Type: "auto"}
			}
			if out.ToolChoice.Type != "none" {
				out.ToolChoice.DisableParallelToolUse = ptr(true)
			}
		}
	}
	return out, nil
}

// unsigned reports whether b is a thinking block without a signature: one a guardrail
// redacted (see answerFilters), or the reasoning of an OpenAI-style server. Anthropic
// refuses such a block in a request, and needs none but the signed blocks of a tool
// call being continued: on their way to Anthropic they are dropped, from chat
// requests (chatToAnthropic) and Messages requests (MessagesRequest.upstreamBody)
// alike.
func (b *anthropicBlock) unsigned() bool { return b.Type == "thinking" && b.Signature == "" }

// omittedThinking stands for an assistant turn that held nothing but unsigned
// thinking: Anthropic refuses an empty turn but a final one, and a text block that is
// empty or only whitespace.
var omittedThinking = json.RawMessage(`[{"type":"text","text":"[thinking omitted]"}]`)

// withoutUnsignedThinking returns a Messages `messages` array without the unsigned
// thinking blocks of its assistant turns, and whether it dropped any; everything else
// (other blocks, unknown fields) stays as the caller wrote it. A turn left empty is
// dropped when the turns around it still alternate (it was first or last, say), and
// otherwise says omittedThinking.
func withoutUnsignedThinking(raw json.RawMessage) (json.RawMessage, bool) {
	if !bytes.Contains(raw, []byte(`"thinking"`)) {
		return raw, false
	}
	var msgs []json.RawMessage
	if json.Unmarshal(raw, &msgs) != nil {
		return raw, false
	}
	roles := make([]string, len(msgs))
	for i, m := range msgs {
		var head struct{ Role string }
		if json.Unmarshal(m, &head) == nil {
			roles[i] = head.Role
		}
	}
	dropped := false
	out := msgs[:0:0]
	prev := "" // the role of the last turn in out
	for i, m := range msgs {
		if content, changed := withoutUnsigned(m, roles[i]); changed {
			dropped = true
			if content == nil {
				next := ""
				if i+1 < len(msgs) {
					next = roles[i+1]
				}
				if prev == "" || next == "" || prev != next {
					continue
				}
				content = omittedThinking
			}
			var fields map[string]json.RawMessage
			_ = json.Unmarshal(m, &fields) // withoutUnsigned read it
			m = writeObject(fields, map[string]json.RawMessage{"content": content})
		}
		out = append(out, m)
		prev = roles[i]
	}
	if !dropped {
		return raw, false
	}
	b, _ := json.Marshal(out)
	return b, true
}

// withoutUnsigned returns the content of turn m (of role) without its unsigned
// thinking blocks (nil when none is left), and whether it dropped any.
func withoutUnsigned(m json.RawMessage, role string) (json.RawMessage, bool) {
	if role != "assistant" {
		return nil, false
	}
	var turn struct {
		Content json.RawMessage `json:"content"`
	}
	var blocks []json.RawMessage
	if json.Unmarshal(m, &turn) != nil || json.Unmarshal(turn.Content, &blocks) != nil {
		return nil, false // a string, or what Anthropic will refuse anyway
	}
	kept := blocks[:0:0]
	for _, b := range blocks {
		// Only what decides: a block's other fields can be large (images).
		var head struct{ Type, Signature string }
		if json.Unmarshal(b, &head) == nil && (&anthropicBlock{Type: head.Type, Signature: head.Signature}).unsigned() {
			continue
		}
		kept = append(kept, b)
	}
	switch {
	case len(kept) == len(blocks):
		return nil, false
	case len(kept) == 0:
		return nil, true
	}
	content, _ := json.Marshal(kept)
	return content, true
}

// thinkingBudgets are the thinking budgets (tokens) of the OpenAI reasoning efforts.
var thinkingBudgets = map[string]int64{"low": 1024, "medium": 4096, "high": 16384}

// thinkingBudget maps a chat reasoning_effort to a thinking budget for providers
// that take one (Anthropic, Gemini): none, minimal and no effort at all ask for no
// thinking (the provider's default); an unknown effort is refused.
func thinkingBudget(effort string) (budget int64, think bool, err error) {
	switch effort {
	case "", "none", "minimal":
		return 0, false, nil
	}
	budget, ok := thinkingBudgets[effort]
	if !ok {
		return 0, false, invalidf("reasoning_effort", "`reasoning_effort` must be one of none, minimal, low, medium or high.")
	}
	return budget, true, nil
}

// anthropicSampling fits chat's sampling parameters to what the Messages API takes:
// temperature within [0, 1] (chat's runs to 2: above 1 is sent as 1); temperature or
// top_p, not both (recent Claude models refuse the pair: temperature is kept); and
// with thinking on, no temperature and a top_p of at least 0.95, or none.
func anthropicSampling(out *anthropicRequest) {
	if t := out.Temperature; t != nil && *t > 1 {
		one := 1.0
		out.Temperature = &one
	}
	if out.Temperature != nil && out.TopP != nil {
		out.TopP = nil
	}
	if len(out.Thinking) > 0 && !bytes.Contains(out.Thinking, []byte(`"disabled"`)) {
		out.Temperature = nil
		if out.TopP != nil && *out.TopP < 0.95 {
			out.TopP = nil
		}
	}
}

// minThinkingBudget is the smallest budget Anthropic accepts.
const minThinkingBudget = 1024

// anthropicThinking turns a chat request's reasoning settings into Anthropic's
// thinking parameter: an Anthropic-style thinking object as it is, or
// reasoning_effort as a budget (low 1024, medium 4096, high 16384 tokens; none and
// minimal think not). The budget must stay below max_tokens: without a max_tokens
// from the caller the default answer size is added on top of it; with one, the
// budget is at most half of it (but at least Anthropic's minimum of 1024), and a
// max_tokens that leaves no room for that is refused.
func anthropicThinking(b *chatBody, out *anthropicRequest, maxSet bool) error {
	if len(b.Thinking) > 0 && !isNull(b.Thinking) {
		if !bytes.HasPrefix(bytes.TrimSpace(b.Thinking), []byte("{")) {
			return invalidf("thinking", "`thinking` must be an object, e.g. {\"type\":\"enabled\",\"budget_tokens\":2048}.")
		}
		out.Thinking = b.Thinking
		var t struct {
			BudgetTokens int64 `json:"budget_tokens"`
		}
		if !maxSet && json.Unmarshal(b.Thinking, &t) == nil && t.BudgetTokens >= out.MaxTokens {
			// The budget must stay below max_tokens: the default answer size on top.
			out.MaxTokens = t.BudgetTokens + defaultAnthropicMaxTokens
		}
		return nil
	}
	budget, think, err := thinkingBudget(b.ReasoningEffort)
	if err != nil || !think {
		return err
	}
	if !maxSet {
		out.MaxTokens = budget + defaultAnthropicMaxTokens
	} else if budget = min(budget, max(out.MaxTokens/2, minThinkingBudget)); budget >= out.MaxTokens {
		return invalidf("max_tokens", "This model's provider needs `max_tokens` above %d to think (`reasoning_effort`).", minThinkingBudget)
	}
	out.Thinking, _ = json.Marshal(map[string]any{"type": "enabled", "budget_tokens": budget})
	return nil
}

func anthropicToolChoiceOf(raw json.RawMessage) *anthropicToolChoice {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || isNull(raw) {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "required":
			return &anthropicToolChoice{Type: "any"}
		case "none":
			return &anthropicToolChoice{Type: "none"}
		default:
			return &anthropicToolChoice{Type: "auto"}
		}
	}
	var obj struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(raw, &obj) == nil && obj.Function.Name != "" {
		return &anthropicToolChoice{Type: "tool", Name: obj.Function.Name}
	}
	return nil
}

// argumentsObject turns a tool call's JSON arguments string into the object Anthropic
// wants as input; anything else is wrapped so nothing is lost.
func argumentsObject(args string) json.RawMessage {
	trimmed := bytes.TrimSpace([]byte(args))
	if len(trimmed) == 0 {
		return json.RawMessage(`{}`)
	}
	if trimmed[0] == '{' && json.Valid(trimmed) {
		return trimmed
	}
	b, _ := json.Marshal(map[string]string{"arguments": args})
	return b
}

// anthropicImageSource converts an image URL (a base64 data URL or an http(s) URL)
// into an image source; an error names the offending message.
func anthropicImageSource(u string, i int) (*anthropicSource, error) {
	param := fmt.Sprintf("messages[%d].content", i)
	if strings.HasPrefix(u, "data:") {
		mediaType, data, ok := parseDataURL(u)
		if !ok {
			return nil, invalidf(param, "Image data URLs must look like data:<media type>;base64,<data>.")
		}
		return &anthropicSource{Type: "base64", MediaType: mediaType, Data: data}, nil
	}
	if strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://") {
		return &anthropicSource{Type: "url", URL: u}, nil
	}
	return nil, invalidf(param, "Image URLs must be http(s) URLs or base64 data URLs.")
}

// imageURLOf is the reverse of anthropicImageSource.
func imageURLOf(src *anthropicSource) string {
	if src == nil {
		return ""
	}
	if src.Type == "base64" {
		return "data:" + src.MediaType + ";base64," + src.Data
	}
	return src.URL
}

// finishReasonOfAnthropic maps a Messages stop reason to a chat finish reason.
func finishReasonOfAnthropic(stop string) string {
	switch stop {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	default:
		return "stop"
	}
}

// stopReasonOfChat maps a chat finish reason to a Messages stop reason.
func stopReasonOfChat(finish string) string {
	switch finish {
	case "length":
		return "max_tokens"
	case "tool_calls", "function_call":
		return "tool_use"
	case "content_filter":
		return "refusal"
	default:
		return "end_turn"
	}
}

// anthropicToChat translates a Messages response into a chat completion.
func anthropicToChat(r *anthropicResponse, created int64) *chatResponse {
	msg := responseMessage{Role: "assistant"}
	var text strings.Builder
	hasText := false
	var reasoning strings.Builder
	for _, b := range r.Content {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
			hasText = true
		case "thinking":
			reasoning.WriteString(b.Thinking)
			msg.ThinkingBlocks = append(msg.ThinkingBlocks, thinkingBlock{Type: "thinking", Thinking: b.Thinking, Signature: b.Signature})
		case "redacted_thinking":
			msg.ThinkingBlocks = append(msg.ThinkingBlocks, thinkingBlock{Type: "redacted_thinking", Data: b.Data})
		case "tool_use":
			input := b.Input
			if len(input) == 0 {
				input = json.RawMessage(`{}`)
			}
			msg.ToolCalls = append(msg.ToolCalls, toolCall{ID: b.ID, Type: "function", Function: toolFunction{Name: b.Name, Arguments: string(input)}})
		}
	}
	if hasText || len(msg.ToolCalls) == 0 {
		msg.Content = ptr(text.String())
	}
	if reasoning.Len() > 0 {
		msg.ReasoningContent = ptr(reasoning.String())
	}
	stop := ""
	if r.StopReason != nil {
		stop = *r.StopReason
	}
	out := &chatResponse{
		ID: chatID(r.ID), Object: "chat.completion", Created: created, Model: r.Model,
		Choices: []chatChoice{{Index: 0, Message: msg, FinishReason: finishReasonOfAnthropic(stop)}},
	}
	if r.Usage != nil {
		u := r.Usage.usage()
		out.Usage, out.native = u.json(), &u
	}
	return out
}

func chatID(id string) string {
	if strings.HasPrefix(id, "chatcmpl-") {
		return id
	}
	return "chatcmpl-" + strings.TrimPrefix(strings.TrimPrefix(id, "msg_"), "resp_")
}

// anthropicStreamDecoder turns Messages stream events into chat chunks.
type anthropicStreamDecoder struct {
	id      string
	model   string
	created int64
	usage   anthropicUsage
	// toolIndex maps a content block index to its tool call index; -1 for other blocks.
	toolIndex map[int]int
	// toolArgs: the tool blocks whose input JSON began.
	toolArgs map[int]bool
	tools    int
	finish   string
	// thinking is the text of the thinking block being streamed, sent again with
	// its signature as a thinking block when that arrives.
	thinking strings.Builder
}

type anthropicEvent struct {
	Type    string            `json:"type"`
	Message anthropicResponse `json:"message"`
	Index   int               `json:"index"`
	Block   anthropicBlock    `json:"content_block"`
	Delta   struct {
		Type        string  `json:"type"`
		Text        string  `json:"text"`
		PartialJSON string  `json:"partial_json"`
		Thinking    string  `json:"thinking"`
		Signature   string  `json:"signature"`
		StopReason  *string `json:"stop_reason"`
	} `json:"delta"`
	Usage *anthropicUsage `json:"usage"`
	Error *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// decode handles one event. It returns the chunks to emit, whether the message ended,
// and an error when the upstream reported one in the stream.
func (d *anthropicStreamDecoder) decode(data []byte) (chunks []chatChunk, done bool, err error) {
	var ev anthropicEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		return nil, false, fmt.Errorf("%w: anthropic event: %w", ErrUpstreamBadResponse, err)
	}
	switch ev.Type {
	case "message_start":
		d.id, d.model = chatID(ev.Message.ID), ev.Message.Model
		if ev.Message.Usage != nil {
			d.usage = *ev.Message.Usage
		}
		d.toolIndex = map[int]int{}
		return []chatChunk{d.chunk(chunkDelta{Role: "assistant", Content: ptr("")}, nil)}, false, nil
	case "content_block_start":
		switch ev.Block.Type {
		case "thinking":
			d.thinking.Reset()
			return nil, false, nil
		case "redacted_thinking":
			return []chatChunk{d.chunk(chunkDelta{ThinkingBlocks: []thinkingBlock{{Type: "redacted_thinking", Data: ev.Block.Data}}}, nil)}, false, nil
		case "tool_use":
		default:
			return nil, false, nil
		}
		i := d.tools
		d.tools++
		if d.toolIndex == nil {
			d.toolIndex = map[int]int{}
		}
		d.toolIndex[ev.Index] = i
		return []chatChunk{d.chunk(chunkDelta{ToolCalls: []toolCall{{Index: ptr(i), ID: ev.Block.ID, Type: "function",
			Function: toolFunction{Name: ev.Block.Name}}}}, nil)}, false, nil
	case "content_block_delta":
		switch ev.Delta.Type {
		case "text_delta":
			return []chatChunk{d.chunk(chunkDelta{Content: ptr(ev.Delta.Text)}, nil)}, false, nil
		case "thinking_delta":
			d.thinking.WriteString(ev.Delta.Thinking)
			return []chatChunk{d.chunk(chunkDelta{ReasoningContent: ptr(ev.Delta.Thinking)}, nil)}, false, nil
		case "signature_delta":
			tb := thinkingBlock{Type: "thinking", Thinking: d.thinking.String(), Signature: ev.Delta.Signature}
			d.thinking.Reset()
			return []chatChunk{d.chunk(chunkDelta{ThinkingBlocks: []thinkingBlock{tb}}, nil)}, false, nil
		case "input_json_delta":
			i, ok := d.toolIndex[ev.Index]
			if !ok || ev.Delta.PartialJSON == "" {
				return nil, false, nil
			}
			if d.toolArgs == nil {
				d.toolArgs = map[int]bool{}
			}
			d.toolArgs[ev.Index] = true
			return []chatChunk{d.chunk(chunkDelta{ToolCalls: []toolCall{{Index: ptr(i), Function: toolFunction{Arguments: ev.Delta.PartialJSON}}}}, nil)}, false, nil
		}
	case "content_block_stop":
		// A tool called without input streams no JSON: its arguments are "{}", as
		// when not streamed, never "" (which no JSON parser takes).
		if i, ok := d.toolIndex[ev.Index]; ok && !d.toolArgs[ev.Index] {
			return []chatChunk{d.chunk(chunkDelta{ToolCalls: []toolCall{{Index: ptr(i), Function: toolFunction{Arguments: "{}"}}}}, nil)}, false, nil
		}
	case "message_delta":
		if ev.Usage != nil {
			d.usage.merge(ev.Usage)
		}
		if ev.Delta.StopReason != nil {
			d.finish = finishReasonOfAnthropic(*ev.Delta.StopReason)
			return []chatChunk{d.chunk(chunkDelta{}, ptr(d.finish))}, false, nil
		}
	case "message_stop":
		u := d.usage.usage()
		c := chatChunk{ID: d.id, Object: "chat.completion.chunk", Created: d.created, Model: d.model, Choices: []chunkChoice{}, Usage: u.json()}
		return []chatChunk{c}, true, nil
	case "error":
		msg := "The model provider reported an error in the stream."
		if ev.Error != nil && ev.Error.Message != "" {
			msg = ev.Error.Message
		}
		return nil, false, &streamError{msg: msg}
	}
	return nil, false, nil
}

func (d *anthropicStreamDecoder) chunk(delta chunkDelta, finish *string) chatChunk {
	return chatChunk{ID: d.id, Object: "chat.completion.chunk", Created: d.created, Model: d.model,
		Choices: []chunkChoice{{Index: 0, Delta: delta, FinishReason: finish}}}
}

// streamError is an error an upstream reported inside a stream; its message is the
// provider's and is shown to the caller like a relayed error body.
type streamError struct{ msg string }

func (e *streamError) Error() string { return "upstream stream error: " + e.msg }
func (e *streamError) Unwrap() error { return ErrUpstreamStream }

// ---- Messages callers (/v1/messages) served by OpenAI-style upstreams ----

// messagesBody is the part of a Messages request the translation reads.
type messagesBody struct {
	Model         string             `json:"model"`
	MaxTokens     *int64             `json:"max_tokens"`
	System        json.RawMessage    `json:"system"`
	Messages      []anthropicMessage `json:"messages"`
	Tools         []anthropicTool    `json:"tools"`
	ToolChoice    json.RawMessage    `json:"tool_choice"`
	StopSequences []string           `json:"stop_sequences"`
	Temperature   *float64           `json:"temperature"`
	TopP          *float64           `json:"top_p"`
	Stream        bool               `json:"stream"`
	Metadata      *anthropicMetadata `json:"metadata"`
	OutputConfig  *anthropicOutput   `json:"output_config"`
}

// anthropicBlocks reads Messages content: a string or an array of blocks.
func anthropicBlocks(raw json.RawMessage) ([]anthropicBlock, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || isNull(raw) {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return []anthropicBlock{{Type: "text", Text: s}}, nil
	}
	var blocks []anthropicBlock
	err := json.Unmarshal(raw, &blocks)
	return blocks, err
}

// blocksText joins the text blocks' texts with sep between them.
func blocksText(blocks []anthropicBlock, sep string) string {
	var b strings.Builder
	for _, bl := range blocks {
		if bl.Type == "text" {
			if b.Len() > 0 {
				b.WriteString(sep)
			}
			b.WriteString(bl.Text)
		}
	}
	return b.String()
}

// messagesToChat translates a Messages request into a chat completions request. What
// the chat form cannot carry (documents by URL or uploaded to Anthropic) is left out
// and described by unsupported, for the upstreams that need the chat form to refuse:
// Anthropic upstreams get the request as it came.
func messagesToChat(m *messagesBody) (out *chatBody, unsupported *InvalidRequestError, err error) {
	out = &chatBody{Model: m.Model, MaxTokens: m.MaxTokens, Temperature: m.Temperature, TopP: m.TopP, Stream: m.Stream}
	if m.Stream {
		out.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	if len(m.StopSequences) > 0 {
		out.Stop, _ = json.Marshal(m.StopSequences)
	}
	if m.Metadata != nil {
		out.User = m.Metadata.UserID
	}
	if f := m.OutputConfig; f != nil && f.Format != nil && f.Format.Type == "json_schema" && len(f.Format.Schema) > 0 {
		// Claude's structured outputs always hold to the schema: OpenAI's strict mode,
		// when the schema is one strict mode takes (every property required, no
		// others allowed); else the schema guides.
		out.ResponseFormat, _ = json.Marshal(map[string]any{"type": "json_schema",
			"json_schema": map[string]any{"name": "output", "schema": f.Format.Schema, "strict": strictReady(f.Format.Schema)}})
	}
	if sys, err := anthropicBlocks(m.System); err != nil {
		return nil, nil, invalidf("system", "`system` must be a string or an array of text blocks.")
	} else if t := blocksText(sys, "\n"); t != "" {
		// Several system blocks are separate texts: a line between them, not one
		// sentence run into the next.
		out.Messages = append(out.Messages, chatMessage{Role: "system", Content: stringContent(t)})
	}
	for i, msg := range m.Messages {
		blocks, err := anthropicBlocks(msg.Content)
		if err != nil {
			return nil, nil, invalidf(fmt.Sprintf("messages.%d.content", i), "messages.%d.content: must be a string or an array of content blocks.", i)
		}
		switch msg.Role {
		case "user":
			var parts []contentPart
			for j, b := range blocks {
				switch b.Type {
				case "text":
					parts = append(parts, contentPart{Type: "text", Text: b.Text})
				case "image":
					if b.Source == nil {
						return nil, nil, invalidf(fmt.Sprintf("messages.%d.content", i), "messages.%d.content: image blocks need a source.", i)
					}
					parts = append(parts, contentPart{Type: "image_url", ImageURL: &imageURL{URL: imageURLOf(b.Source)}})
				case "document":
					param := fmt.Sprintf("messages.%d.content.%d.source", i, j)
					if b.Source == nil {
						return nil, nil, invalidf(param, "%s: document blocks need a source.", param)
					}
					part, refused := chatDocument(&b, param)
					if refused != nil {
						if unsupported == nil {
							unsupported = refused
						}
						continue
					}
					parts = append(parts, part)
				case "tool_result":
					text := ""
					if inner, err := anthropicBlocks(b.Content); err == nil {
						text = blocksText(inner, "")
						for k, ib := range inner {
							if ib.Type != "text" && unsupported == nil {
								// A chat tool message is text: an image the tool
								// returned cannot go with it.
								unsupported = invalidf(fmt.Sprintf("messages.%d.content.%d.content.%d", i, j, k),
									"messages.%d.content.%d.content.%d: this model's provider takes tool results as text only (%s).", i, j, k, ib.Type)
							}
						}
					}
					if b.IsError {
						// Chat has no error flag on tool results: the text says it.
						text = "Error: " + text
					}
					out.Messages = append(out.Messages, chatMessage{Role: "tool", ToolCallID: b.ToolUseID, Content: stringContent(text)})
				}
			}
			if len(parts) == 0 {
				continue
			}
			content, _ := json.Marshal(parts)
			if len(parts) == 1 && parts[0].Type == "text" {
				content = stringContent(parts[0].Text)
			}
			out.Messages = append(out.Messages, chatMessage{Role: "user", Content: content})
		case "assistant":
			cm := chatMessage{Role: "assistant"}
			text := blocksText(blocks, "")
			for _, b := range blocks {
				if b.Type == "tool_use" {
					args := string(b.Input)
					if args == "" {
						args = "{}"
					}
					cm.ToolCalls = append(cm.ToolCalls, toolCall{ID: b.ID, Type: "function", Function: toolFunction{Name: b.Name, Arguments: args}})
				}
			}
			if text != "" || len(cm.ToolCalls) == 0 {
				cm.Content = stringContent(text)
			}
			out.Messages = append(out.Messages, cm)
		default:
			return nil, nil, invalidf(fmt.Sprintf("messages.%d.role", i), "messages.%d.role: must be \"user\" or \"assistant\".", i)
		}
	}
	for _, t := range m.Tools {
		out.Tools = append(out.Tools, chatTool{Type: "function", Function: toolFunctionDef{Name: t.Name, Description: t.Description, Parameters: t.InputSchema}})
	}
	if raw := bytes.TrimSpace(m.ToolChoice); len(raw) > 0 && !isNull(raw) {
		var tc anthropicToolChoice
		if json.Unmarshal(raw, &tc) != nil {
			return nil, nil, invalidf("tool_choice", "`tool_choice` must be an object.")
		}
		switch tc.Type {
		case "any":
			out.ToolChoice = json.RawMessage(`"required"`)
		case "none":
			out.ToolChoice = json.RawMessage(`"none"`)
		case "tool":
			out.ToolChoice, _ = json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}})
		default:
			out.ToolChoice = json.RawMessage(`"auto"`)
		}
		if tc.DisableParallelToolUse != nil && *tc.DisableParallelToolUse && len(out.Tools) > 0 {
			out.ParallelToolCalls = ptr(false)
		}
	}
	return out, unsupported, nil
}

// chatToMessages translates a chat completion into a Messages response.
func chatToMessages(c *chatResponse, model string) *anthropicResponse {
	out := &anthropicResponse{ID: messageID(c.ID), Type: "message", Role: "assistant", Model: model, Content: []anthropicBlock{}}
	finish := ""
	if len(c.Choices) > 0 {
		ch := c.Choices[0]
		finish = ch.FinishReason
		switch r := ch.Message.ReasoningContent; {
		case len(ch.Message.ThinkingBlocks) > 0:
			// Anthropic's own blocks, signed (unless a guardrail changed their text)
			// or encrypted.
			for _, tb := range ch.Message.ThinkingBlocks {
				out.Content = append(out.Content, anthropicBlock{Type: tb.Type, Thinking: tb.Thinking, Signature: tb.Signature, Data: tb.Data})
			}
		case r != nil && *r != "":
			// An OpenAI-style server's reasoning (vLLM, DeepSeek): a thinking block,
			// without the signature only Anthropic can make.
			out.Content = append(out.Content, anthropicBlock{Type: "thinking", Thinking: *r})
		}
		if ch.Message.Content != nil && *ch.Message.Content != "" {
			out.Content = append(out.Content, anthropicBlock{Type: "text", Text: *ch.Message.Content})
		}
		if r := ch.Message.Refusal; r != nil && *r != "" {
			// Messages has no refusal block: the model's refusal is a text block of its
			// own, and the stop reason says it refused.
			out.Content = append(out.Content, anthropicBlock{Type: "text", Text: *r})
			finish = "content_filter"
		}
		for _, tc := range ch.Message.ToolCalls {
			out.Content = append(out.Content, anthropicBlock{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: argumentsObject(tc.Function.Arguments)})
		}
	}
	out.StopReason = ptr(stopReasonOfChat(finish))
	au := anthropicUsage{}
	if u, ok := c.usage(); ok {
		au = anthropicUsageOf(u)
	}
	out.Usage = &au // Messages answers always carry usage
	return out
}

func messageID(id string) string {
	if strings.HasPrefix(id, "msg_") {
		return id
	}
	return "msg_" + strings.TrimPrefix(id, "chatcmpl-")
}

// blockDelta is a content_block_delta event, the most frequent one: a struct, not a
// map, to keep allocations down.
type blockDelta struct {
	Type  string    `json:"type"`
	Index int       `json:"index"`
	Delta deltaBody `json:"delta"`
}

type deltaBody struct {
	Type        string `json:"type"`
	Text        string `json:"text,omitempty"`
	Thinking    string `json:"thinking,omitempty"`
	PartialJSON string `json:"partial_json,omitempty"`
	Signature   string `json:"signature,omitempty"`
}

// messagesEncoder renders chat chunks as a Messages event stream.
type messagesEncoder struct {
	model string
	// input is the prompt's estimated tokens, for message_start (the real counts come
	// with message_delta): clients that read input tokens only from message_start
	// would see none.
	input   int64
	started bool
	// open is the kind of the content block being written ("" when none), index its
	// index; tools maps a chat tool call index to its content block.
	open   string
	index  int
	next   int
	tools  map[int]int
	finish string
	// refused: the model refused (a refusal came), which the stop reason says.
	refused bool
	buf     []byte
}

func (e *messagesEncoder) event(name string, v any) {
	data, _ := json.Marshal(v)
	e.buf = appendEvent(e.buf, name, data)
}

func (e *messagesEncoder) start(id string) {
	if e.started {
		return
	}
	e.started = true
	e.tools = map[int]int{}
	e.event("message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": messageID(id), "type": "message", "role": "assistant", "model": e.model, "content": []any{},
		"stop_reason": nil, "stop_sequence": nil, "usage": anthropicUsage{InputTokens: e.input},
	}})
}

// openBlock starts a content block of the kind (what open says), after the one
// being written.
func (e *messagesEncoder) openBlock(kind string, block map[string]any) {
	e.closeBlock()
	e.open, e.index = kind, e.next
	e.next++
	e.event("content_block_start", map[string]any{"type": "content_block_start", "index": e.index, "content_block": block})
}

func (e *messagesEncoder) closeBlock() {
	if e.open == "" {
		return
	}
	e.event("content_block_stop", map[string]any{"type": "content_block_stop", "index": e.index})
	e.open = ""
}

// chunk renders one chat chunk and returns the bytes to write.
func (e *messagesEncoder) chunk(c *chatChunk) []byte {
	e.buf = e.buf[:0]
	if !e.started && c.Model != "" {
		// Like the answer that is not streamed, name the model that answered.
		e.model = c.Model
	}
	e.start(c.ID)
	for _, ch := range c.Choices {
		if ch.Index != 0 {
			continue
		}
		if t := ch.Delta.ReasoningContent; t != nil && *t != "" {
			if e.open != "thinking" {
				e.openBlock("thinking", map[string]any{"type": "thinking", "thinking": ""})
			}
			e.event("content_block_delta", blockDelta{Type: "content_block_delta", Index: e.index, Delta: deltaBody{Type: "thinking_delta", Thinking: *t}})
		}
		for _, tb := range ch.Delta.ThinkingBlocks {
			e.thinkingBlock(tb)
		}
		if t := ch.Delta.Content; t != nil && *t != "" {
			if e.open != "text" {
				e.openBlock("text", map[string]any{"type": "text", "text": ""})
			}
			e.event("content_block_delta", blockDelta{Type: "content_block_delta", Index: e.index, Delta: deltaBody{Type: "text_delta", Text: *t}})
		}
		if t := ch.Delta.Refusal; t != nil && *t != "" {
			// The model's refusal: a text block of its own (see chatToMessages).
			if e.open != "refusal" {
				e.openBlock("refusal", map[string]any{"type": "text", "text": ""})
			}
			e.refused = true
			e.event("content_block_delta", blockDelta{Type: "content_block_delta", Index: e.index, Delta: deltaBody{Type: "text_delta", Text: *t}})
		}
		for _, tc := range ch.Delta.ToolCalls {
			ti := 0
			if tc.Index != nil {
				ti = *tc.Index
			}
			block, known := e.tools[ti]
			if !known {
				e.closeBlock()
				block = e.next
				e.next++
				e.tools[ti] = block
				e.open, e.index = "tool_use", block
				e.event("content_block_start", map[string]any{"type": "content_block_start", "index": block,
					"content_block": map[string]any{"type": "tool_use", "id": tc.ID, "name": tc.Function.Name, "input": map[string]any{}}})
			}
			if tc.Function.Arguments != "" && block == e.index && e.open == "tool_use" {
				e.event("content_block_delta", blockDelta{Type: "content_block_delta", Index: block, Delta: deltaBody{Type: "input_json_delta", PartialJSON: tc.Function.Arguments}})
			}
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			e.finish = *ch.FinishReason
		}
	}
	return e.buf
}

// thinkingBlock ends a thinking block streamed as reasoning deltas with its signature,
// writes one that came whole, or writes a redacted_thinking block. A thinking block without a signature (none
// was made, or a guardrail changed its text) ends unsigned when the next block
// starts.
func (e *messagesEncoder) thinkingBlock(tb thinkingBlock) {
	switch {
	case tb.Type == "thinking" && tb.Signature != "" && e.open == "thinking":
		e.event("content_block_delta", blockDelta{Type: "content_block_delta", Index: e.index, Delta: deltaBody{Type: "signature_delta", Signature: tb.Signature}})
		e.closeBlock()
	case tb.Type == "thinking" && e.open != "thinking" && tb.Thinking != "":
		// A block that came whole (an OpenAI-style upstream's thinking_blocks), not
		// as reasoning deltas.
		e.openBlock("thinking", map[string]any{"type": "thinking", "thinking": ""})
		e.event("content_block_delta", blockDelta{Type: "content_block_delta", Index: e.index, Delta: deltaBody{Type: "thinking_delta", Thinking: tb.Thinking}})
		if tb.Signature != "" {
			e.event("content_block_delta", blockDelta{Type: "content_block_delta", Index: e.index, Delta: deltaBody{Type: "signature_delta", Signature: tb.Signature}})
		}
		e.closeBlock()
	case tb.Type == "redacted_thinking":
		e.closeBlock()
		e.index = e.next
		e.next++
		e.event("content_block_start", map[string]any{"type": "content_block_start", "index": e.index,
			"content_block": map[string]any{"type": "redacted_thinking", "data": tb.Data}})
		e.event("content_block_stop", map[string]any{"type": "content_block_stop", "index": e.index})
	}
}

// end closes the message with the final usage.
func (e *messagesEncoder) end(id string, u Usage) []byte {
	e.buf = e.buf[:0]
	e.start(id)
	e.closeBlock()
	au := anthropicUsageOf(u)
	stop := stopReasonOfChat(e.finish)
	if e.refused {
		stop = "refusal"
	}
	e.event("message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": stop, "stop_sequence": nil},
		"usage": map[string]any{"input_tokens": au.InputTokens, "output_tokens": au.OutputTokens, "cache_read_input_tokens": au.CacheReadInputTokens}})
	e.event("message_stop", map[string]any{"type": "message_stop"})
	return e.buf
}

// fail ends the stream with an error event: an api_error when the upstream failed,
// an invalid_request_error when a guardrail (or other refusal) cut the answer.
func (e *messagesEncoder) fail(code, msg string) []byte {
	typ := "invalid_request_error"
	if strings.HasPrefix(code, "upstream_") || code == "api_error" {
		typ = "api_error"
	}
	e.buf = e.buf[:0]
	e.event("error", anthropicErrorOf(typ, msg))
	return e.buf
}

// anthropicError is Anthropic's error body, its keys in Anthropic's order.
type anthropicError struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

func anthropicErrorOf(typ, msg string) anthropicError {
	e := anthropicError{Type: "error"}
	e.Error.Type, e.Error.Message = typ, msg
	return e
}

// anthropicSchema fits a JSON schema to Claude's structured outputs, which refuse
// numeric and length constraints: each is moved into the description of its schema,
// where the model still reads it (as Anthropic's SDKs do). The schema is returned as
// it came when it has none, or cannot be read.
func anthropicSchema(raw json.RawMessage) json.RawMessage {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return raw
	}
	if !fitAnthropicSchema(v) {
		return raw
	}
	b, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return b
}

// unsupportedByClaude are the schema keywords Claude's structured outputs refuse.
var unsupportedByClaude = []string{"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
	"minLength", "maxLength", "maxItems"}

func fitAnthropicSchema(v any) (changed bool) {
	t, ok := v.(map[string]any)
	if !ok {
		return false
	}
	var notes []string
	for _, k := range unsupportedByClaude {
		if c, ok := t[k]; ok {
			b, _ := json.Marshal(c)
			notes = append(notes, k+": "+string(b))
			delete(t, k)
		}
	}
	if n, ok := t["minItems"].(float64); ok && n > 1 {
		notes = append(notes, fmt.Sprintf("minItems: %v", n))
		delete(t, "minItems")
	}
	if len(notes) > 0 {
		d, _ := t["description"].(string)
		if d != "" {
			d += " "
		}
		t["description"] = d + "{" + strings.Join(notes, ", ") + "}"
		changed = true
	}
	eachSubschema(t, func(c any) bool {
		changed = fitAnthropicSchema(c) || changed
		return true
	})
	return changed
}

// eachSubschema calls f with each schema directly inside schema t (properties,
// definitions, items, combinators), until f returns false; it reports whether f
// never did. Member names are never taken for keywords.
func eachSubschema(t map[string]any, f func(any) bool) bool {
	for _, k := range []string{"properties", "patternProperties", "$defs", "definitions"} {
		if m, ok := t[k].(map[string]any); ok {
			for _, c := range m {
				if !f(c) {
					return false
				}
			}
		}
	}
	for _, k := range []string{"items", "additionalProperties", "not", "contains", "if", "then", "else"} {
		if c, ok := t[k].(map[string]any); ok && !f(c) {
			return false
		}
	}
	for _, k := range []string{"anyOf", "allOf", "oneOf", "prefixItems"} {
		if l, ok := t[k].([]any); ok {
			for _, c := range l {
				if !f(c) {
					return false
				}
			}
		}
	}
	return true
}

// strictReady reports whether a JSON schema is one OpenAI's strict mode takes: every
// object schema lists all its properties as required and allows no others.
func strictReady(raw json.RawMessage) bool {
	var v any
	return json.Unmarshal(raw, &v) == nil && strictSchema(v)
}

func strictSchema(v any) bool {
	t, ok := v.(map[string]any)
	if !ok {
		return true
	}
	props, hasProps := t["properties"].(map[string]any)
	if hasProps || t["type"] == "object" {
		if ap, ok := t["additionalProperties"].(bool); !ok || ap {
			return false
		}
		req, _ := t["required"].([]any)
		listed := map[string]bool{}
		for _, r := range req {
			if s, ok := r.(string); ok {
				listed[s] = true
			}
		}
		for k := range props {
			if !listed[k] {
				return false
			}
		}
	}
	return eachSubschema(t, strictSchema)
}
