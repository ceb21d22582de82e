package llm

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// The OpenAI Responses API surface, served over chat completions: requests are
// translated into chat requests for every upstream (so any provider serves it), and
// answers back into Response objects and Responses stream events. Requests the chat
// form cannot carry go to the own Responses API of OpenAI-compatible and Azure OpenAI
// providers instead (responsesnative.go).

type responsesBody struct {
	Model             string          `json:"model"`
	Input             json.RawMessage `json:"input"`
	Instructions      string          `json:"instructions"`
	MaxOutputTokens   *int64          `json:"max_output_tokens"`
	Temperature       *float64        `json:"temperature"`
	TopP              *float64        `json:"top_p"`
	Tools             []responsesTool `json:"tools"`
	ToolChoice        json.RawMessage `json:"tool_choice"`
	ParallelToolCalls *bool           `json:"parallel_tool_calls"`
	Stream            bool            `json:"stream"`
	Text              *struct {
		Format json.RawMessage `json:"format"`
	} `json:"text"`
	PreviousResponseID string `json:"previous_response_id"`
	User               string `json:"user"`
	Reasoning          *struct {
		Effort string `json:"effort"`
	} `json:"reasoning"`
}

type responsesTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

type responsesItem struct {
	Type      string          `json:"type"`
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	CallID    string          `json:"call_id"`
	Name      string          `json:"name"`
	Arguments string          `json:"arguments"`
	Output    json.RawMessage `json:"output"`
	// EncryptedContent is a reasoning item's state: ours (see thinkingState) or
	// another provider's.
	EncryptedContent string `json:"encrypted_content"`
	// Input is a custom tool call's input (a string).
	Input json.RawMessage `json:"input"`
}

type responsesPart struct {
	Type     string          `json:"type"`
	Text     string          `json:"text"`
	ImageURL json.RawMessage `json:"image_url"`
	Detail   string          `json:"detail"`
	// An input_file: inline, uploaded to OpenAI, or by URL.
	FileData string `json:"file_data"`
	FileID   string `json:"file_id"`
	Filename string `json:"filename"`
	FileURL  string `json:"file_url"`
}

// responsesToChat translates a Responses request into a chat completions request.
// What the chat form cannot carry (a previous_response_id, tools other than
// functions, input items of other kinds) is left out,
// and the first such thing is returned as unsupported: the chat form then serves
// only to estimate and inspect the request, which only a provider's own Responses
// API can serve (see ResponsesRequest.native). err is a malformed request.
func responsesToChat(r *responsesBody) (out *chatBody, unsupported *InvalidRequestError, err error) {
	cannot := func(e *InvalidRequestError) {
		if unsupported == nil {
			unsupported = e
		}
	}
	if r.PreviousResponseID != "" {
		cannot(invalidf("previous_response_id", "`previous_response_id` is not supported by this model's providers: the gateway stores no responses. Send the conversation in `input`."))
	}
	out = &chatBody{Model: r.Model, MaxTokens: r.MaxOutputTokens, Temperature: r.Temperature, TopP: r.TopP,
		Stream: r.Stream, ParallelToolCalls: r.ParallelToolCalls, User: r.User}
	if r.Stream {
		out.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	if r.Reasoning != nil {
		out.ReasoningEffort = r.Reasoning.Effort
	}
	if r.Instructions != "" {
		out.Messages = append(out.Messages, chatMessage{Role: "system", Content: stringContent(r.Instructions)})
	}
	input := bytes.TrimSpace(r.Input)
	if len(input) > 0 && input[0] == '"' {
		var s string
		_ = json.Unmarshal(input, &s)
		out.Messages = append(out.Messages, chatMessage{Role: "user", Content: stringContent(s)})
	} else {
		var items []responsesItem
		if err := json.Unmarshal(input, &items); err != nil {
			return nil, nil, invalidf("input", "`input` must be a string or an array of input items.")
		}
		// thinking is what the reasoning items since the last message restored: it
		// opens the assistant turn that follows them, before its text and tool calls.
		var thinking []thinkingBlock
		for i, it := range items {
			switch it.Type {
			case "", "message":
				msg, cant, err := responsesMessage(i, it)
				if err != nil {
					return nil, nil, err
				}
				if cant != nil {
					cannot(cant)
				}
				if msg.Role == "assistant" {
					msg.ThinkingBlocks = thinking
				}
				thinking = nil
				out.Messages = append(out.Messages, msg)
			case "function_call":
				tc := toolCall{ID: it.CallID, Type: "function", Function: toolFunction{Name: it.Name, Arguments: it.Arguments}}
				if n := len(out.Messages); n > 0 && out.Messages[n-1].Role == "assistant" && len(out.Messages[n-1].ToolCalls) > 0 {
					last := &out.Messages[n-1]
					last.ToolCalls = append(last.ToolCalls, tc)
					last.ThinkingBlocks = append(last.ThinkingBlocks, thinking...)
				} else {
					out.Messages = append(out.Messages, chatMessage{Role: "assistant", ToolCalls: []toolCall{tc}, ThinkingBlocks: thinking})
				}
				thinking = nil
			case "function_call_output":
				thinking = nil
				text := string(it.Output)
				var s string
				var parts []struct {
					Type string `json:"type"`
					Text string `json:"text"`
				}
				if json.Unmarshal(it.Output, &s) == nil {
					text = s
				} else if json.Unmarshal(it.Output, &parts) == nil {
					// An array of parts: its text; an image or a file in it the chat
					// form cannot carry (a tool message is text), never as JSON text.
					text = ""
					for j, p := range parts {
						switch p.Type {
						case "input_text", "output_text", "text":
							text += p.Text
						default:
							cannot(invalidf(fmt.Sprintf("input[%d].output[%d]", i, j),
								"`input[%d].output[%d]` (%s): this model's providers take tool output as text only.", i, j, p.Type))
						}
					}
				}
				out.Messages = append(out.Messages, chatMessage{Role: "tool", ToolCallID: it.CallID, Content: stringContent(text)})
			case "reasoning":
				// Our state of an Anthropic thinking block is restored; anything else
				// (summaries, another provider's state) no upstream here can use.
				tb, ok, err := thinkingOfState(it.EncryptedContent)
				if err != nil {
					return nil, nil, invalidf(fmt.Sprintf("input[%d].encrypted_content", i),
						"`input[%d].encrypted_content` is not reasoning state this gateway issued, or it was altered: send reasoning items back as they came.", i)
				}
				if ok {
					thinking = append(thinking, tb)
				}
			case "custom_tool_call":
				// Kept in the chat form for the estimate and the guardrails only.
				cannot(invalidf(fmt.Sprintf("input[%d].type", i), "Input items of type %q are not supported by this model's providers.", it.Type))
				out.Messages = append(out.Messages, chatMessage{Role: "assistant",
					ToolCalls: []toolCall{{ID: it.CallID, Type: "function", Function: toolFunction{Name: it.Name, Arguments: rawText(it.Input)}}}})
				thinking = nil
			case "custom_tool_call_output":
				cannot(invalidf(fmt.Sprintf("input[%d].type", i), "Input items of type %q are not supported by this model's providers.", it.Type))
				out.Messages = append(out.Messages, chatMessage{Role: "tool", ToolCallID: it.CallID, Content: stringContent(rawText(it.Output))})
				thinking = nil
			default:
				cannot(invalidf(fmt.Sprintf("input[%d].type", i), "Input items of type %q are not supported by this model's providers.", it.Type))
			}
		}
	}
	if len(out.Messages) == 0 && unsupported == nil {
		return nil, nil, invalidf("input", "`input` must not be empty.")
	}
	for _, t := range r.Tools {
		if t.Type != "function" {
			cannot(invalidf("tools", "Only function tools are supported by this model's providers, not %q.", t.Type))
			continue
		}
		out.Tools = append(out.Tools, chatTool{Type: "function", Function: toolFunctionDef{Name: t.Name, Description: t.Description, Parameters: t.Parameters, Strict: t.Strict}})
	}
	if tc := bytes.TrimSpace(r.ToolChoice); len(tc) > 0 && !isNull(tc) {
		var s string
		var obj struct {
			Type string `json:"type"`
			Name string `json:"name"`
		}
		switch {
		case json.Unmarshal(tc, &s) == nil:
			out.ToolChoice = tc
		case json.Unmarshal(tc, &obj) == nil && obj.Type == "function":
			out.ToolChoice, _ = json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": obj.Name}})
		}
	}
	if r.Text != nil && len(r.Text.Format) > 0 && !isNull(r.Text.Format) {
		var f struct {
			Type   string          `json:"type"`
			Name   string          `json:"name"`
			Schema json.RawMessage `json:"schema"`
			Strict *bool           `json:"strict"`
		}
		if json.Unmarshal(r.Text.Format, &f) == nil {
			switch f.Type {
			case "json_object":
				out.ResponseFormat = json.RawMessage(`{"type":"json_object"}`)
			case "json_schema":
				out.ResponseFormat, _ = json.Marshal(map[string]any{"type": "json_schema",
					"json_schema": map[string]any{"name": f.Name, "schema": f.Schema, "strict": f.Strict}})
			}
		}
	}
	return out, unsupported, nil
}

// rawText is a JSON string's text, or the JSON itself when it is not a string.
func rawText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// responsesMessage translates an input message. A part the chat form cannot carry
// (a file by URL, a part of another type) is left out and returned as unsupported.
func responsesMessage(i int, it responsesItem) (_ chatMessage, unsupported, err *InvalidRequestError) {
	role := it.Role
	switch role {
	case "user", "assistant", "system", "developer":
	default:
		return chatMessage{}, nil, invalidf(fmt.Sprintf("input[%d].role", i), "Input messages need a role of user, assistant, system or developer.")
	}
	content := bytes.TrimSpace(it.Content)
	if len(content) > 0 && content[0] == '"' {
		return chatMessage{Role: role, Content: content}, nil, nil
	}
	var parts []responsesPart
	if err := json.Unmarshal(content, &parts); err != nil {
		return chatMessage{}, nil, invalidf(fmt.Sprintf("input[%d].content", i), "Input message content must be a string or an array of content parts.")
	}
	var out []contentPart
	for j, p := range parts {
		switch p.Type {
		case "input_text", "output_text", "text":
			out = append(out, contentPart{Type: "text", Text: p.Text})
		case "input_image":
			var u string
			if json.Unmarshal(p.ImageURL, &u) != nil || u == "" {
				return chatMessage{}, nil, invalidf(fmt.Sprintf("input[%d].content", i), "`input_image` parts need an `image_url`.")
			}
			out = append(out, contentPart{Type: "image_url", ImageURL: &imageURL{URL: u, Detail: p.Detail}})
		case "input_file":
			// A chat `file` part; the adapters of providers that cannot read it refuse it.
			if p.FileData == "" && p.FileID == "" {
				if unsupported == nil {
					unsupported = invalidf(fmt.Sprintf("input[%d].content[%d].file_url", i, j),
						"`input_file` parts need `file_data` (a base64 data URL) or `file_id` for this model's providers: chat completions take no file URLs.")
				}
				continue
			}
			out = append(out, contentPart{Type: "file", File: &fileRef{FileData: p.FileData, FileID: p.FileID, Filename: p.Filename}})
		case "refusal":
		default:
			if unsupported == nil {
				unsupported = invalidf(fmt.Sprintf("input[%d].content", i), "Content parts of type %q are not supported by this model's providers.", p.Type)
			}
		}
	}
	if role != "user" {
		// Only user messages may carry images in chat completions.
		var b strings.Builder
		for _, p := range out {
			b.WriteString(p.Text)
		}
		return chatMessage{Role: role, Content: stringContent(b.String())}, unsupported, nil
	}
	raw, _ := json.Marshal(out)
	return chatMessage{Role: role, Content: raw}, unsupported, nil
}

// thinkingStatePrefix starts the encrypted_content this gateway gives the reasoning
// items it makes of Anthropic thinking blocks: the block (thinking text and signature,
// or a redacted_thinking block's data) as base64url JSON. Anthropic wants the blocks
// of a turn back, signed and unchanged, when the conversation continues after its tool
// calls, and the gateway stores nothing: the caller carries them, the way OpenAI's
// stateless reasoning (include: ["reasoning.encrypted_content"], store: false) works.
// Answers carry it whether `include` asks for "reasoning.encrypted_content" or not:
// OpenAI fills it by default as well, callers that did not ask ignore it, and without
// it a tool call Claude made while thinking cannot be continued (Anthropic answers
// 400). The state is not secret: its text is the summary the caller was shown (a
// block a guardrail changed gets none, see reasoningItem), and Anthropic checks the
// signature of what comes back.
const thinkingStatePrefix = "gatehouse.thinking.v1."

// thinkingState is the encrypted_content of tb: empty for a block that cannot go back
// to Anthropic (unsigned: a guardrail changed it, or no Anthropic model wrote it).
func thinkingState(tb thinkingBlock) string {
	switch {
	case tb.Type == "thinking" && tb.Signature != "":
		tb.Data = ""
	case tb.Type == "redacted_thinking" && tb.Data != "":
		tb.Thinking, tb.Signature = "", ""
	default:
		return ""
	}
	b, _ := json.Marshal(tb)
	return thinkingStatePrefix + base64.RawURLEncoding.EncodeToString(b)
}

// thinkingOfState reads the encrypted_content of an input reasoning item: ok when it
// is thinkingState's, an error when it says so but is not.
func thinkingOfState(s string) (tb thinkingBlock, ok bool, err error) {
	rest, ours := strings.CutPrefix(s, thinkingStatePrefix)
	if !ours {
		return thinkingBlock{}, false, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return thinkingBlock{}, false, fmt.Errorf("thinking state: %w", err)
	}
	if err := json.Unmarshal(raw, &tb); err != nil {
		return thinkingBlock{}, false, fmt.Errorf("thinking state: %w", err)
	}
	if thinkingState(tb) != s {
		return thinkingBlock{}, false, fmt.Errorf("thinking state: not a signed thinking or a redacted_thinking block")
	}
	return tb, true, nil
}

// responseObject is a Responses API response.
type responseObject struct {
	ID                string               `json:"id"`
	Object            string               `json:"object"`
	CreatedAt         int64                `json:"created_at"`
	Status            string               `json:"status"`
	Model             string               `json:"model"`
	Output            []responseOutputItem `json:"output"`
	Usage             *responsesUsage      `json:"usage"`
	Error             *responseError       `json:"error"`
	IncompleteDetails *struct {
		Reason string `json:"reason"`
	} `json:"incomplete_details"`
	ParallelToolCalls bool            `json:"parallel_tool_calls"`
	ToolChoice        json.RawMessage `json:"tool_choice"`
	Tools             []responsesTool `json:"tools"`
	Metadata          map[string]any  `json:"metadata"`
}

type responseError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type responseOutputItem struct {
	Type      string               `json:"type"`
	ID        string               `json:"id"`
	Status    string               `json:"status"`
	Role      string               `json:"role,omitempty"`
	Content   []responseOutputPart `json:"content,omitempty"`
	CallID    string               `json:"call_id,omitempty"`
	Name      string               `json:"name,omitempty"`
	Arguments *string              `json:"arguments,omitempty"`
	// Summary is a reasoning item's text (a model's reasoning_content), and
	// EncryptedContent its state to send back (see thinkingStatePrefix).
	Summary          []summaryPart `json:"summary,omitempty"`
	EncryptedContent string        `json:"encrypted_content,omitempty"`
}

// MarshalJSON writes a reasoning item's summary even when it has none (a
// redacted_thinking block): the Responses API always gives one.
func (it responseOutputItem) MarshalJSON() ([]byte, error) {
	type item responseOutputItem
	if it.Type != "reasoning" {
		return json.Marshal(item(it))
	}
	return json.Marshal(struct {
		item
		Summary          []summaryPart `json:"summary"`
		EncryptedContent string        `json:"encrypted_content,omitempty"`
	}{item(it), append([]summaryPart{}, it.Summary...), it.EncryptedContent})
}

// reasoningItem is the reasoning item of one thinking block: its text as the summary,
// its state as encrypted_content. A block a guardrail changed (unsigned) keeps its
// filtered text and gets no state: what the caller could send back would carry text
// it was never shown, or be refused by Anthropic as tampered.
func reasoningItem(id string, tb thinkingBlock) responseOutputItem {
	out := responseOutputItem{Type: "reasoning", ID: id, Status: "completed", EncryptedContent: thinkingState(tb)}
	if tb.Type == "thinking" && tb.Thinking != "" {
		out.Summary = []summaryPart{{Type: "summary_text", Text: tb.Thinking}}
	}
	return out
}

type summaryPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// responseOutputPart is a part of an output message: output_text (Text and
// Annotations) or refusal (Refusal).
type responseOutputPart struct {
	Type        string `json:"type"`
	Text        string `json:"text"`
	Annotations []any  `json:"annotations"`
	Refusal     string `json:"-"`
}

// MarshalJSON writes a refusal part as Responses has it: its type and its refusal.
func (p responseOutputPart) MarshalJSON() ([]byte, error) {
	if p.Type == "refusal" {
		return json.Marshal(struct {
			Type    string `json:"type"`
			Refusal string `json:"refusal"`
		}{p.Type, p.Refusal})
	}
	type part responseOutputPart
	return json.Marshal(part(p))
}

type responsesUsage struct {
	InputTokens        int64 `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int64 `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int64 `json:"total_tokens"`
}

func responsesUsageOf(u Usage) *responsesUsage {
	out := &responsesUsage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens, TotalTokens: u.PromptTokens + u.CompletionTokens}
	out.InputTokensDetails.CachedTokens = u.CachedTokens
	return out
}

func responseID(id string) string {
	if strings.HasPrefix(id, "resp_") {
		return id
	}
	return "resp_" + strings.TrimPrefix(strings.TrimPrefix(id, "chatcmpl-"), "msg_")
}

// newResponseObject returns the response shell: its settings echo the request.
func newResponseObject(r *responsesBody, id, model string, created int64) *responseObject {
	out := &responseObject{ID: responseID(id), Object: "response", CreatedAt: created, Status: "in_progress", Model: model,
		Output: []responseOutputItem{}, ParallelToolCalls: true, ToolChoice: json.RawMessage(`"auto"`), Tools: []responsesTool{}, Metadata: map[string]any{}}
	if r != nil {
		if r.ParallelToolCalls != nil {
			out.ParallelToolCalls = *r.ParallelToolCalls
		}
		if tc := bytes.TrimSpace(r.ToolChoice); len(tc) > 0 && !isNull(tc) {
			out.ToolChoice = tc
		}
		if r.Tools != nil {
			out.Tools = r.Tools
		}
	}
	return out
}

// finishResponse sets status and incomplete details from a chat finish reason.
func finishResponse(o *responseObject, finish string) {
	o.Status = "completed"
	switch finish {
	case "length":
		o.Status = "incomplete"
		o.IncompleteDetails = &struct {
			Reason string `json:"reason"`
		}{"max_output_tokens"}
	case "content_filter":
		o.Status = "incomplete"
		o.IncompleteDetails = &struct {
			Reason string `json:"reason"`
		}{"content_filter"}
	}
}

// chatToResponse translates a chat completion into a Response.
func chatToResponse(c *chatResponse, r *responsesBody, model string) *responseObject {
	o := newResponseObject(r, c.ID, model, c.Created)
	finish := ""
	if len(c.Choices) > 0 {
		ch := c.Choices[0]
		finish = ch.FinishReason
		base := strings.TrimPrefix(o.ID, "resp_")
		switch r := ch.Message.ReasoningContent; {
		case len(ch.Message.ThinkingBlocks) > 0:
			// Anthropic's blocks, an item each, to be sent back one by one.
			for _, tb := range ch.Message.ThinkingBlocks {
				id := "rs_" + base
				if n := len(o.Output); n > 0 {
					id = fmt.Sprintf("rs_%s_%d", base, n)
				}
				if item := reasoningItem(id, tb); item.Summary != nil || item.EncryptedContent != "" {
					o.Output = append(o.Output, item)
				}
			}
		case r != nil && *r != "":
			o.Output = append(o.Output, responseOutputItem{Type: "reasoning", ID: "rs_" + base, Status: "completed",
				Summary: []summaryPart{{Type: "summary_text", Text: *r}}})
		}
		if ch.Message.Content != nil && *ch.Message.Content != "" {
			o.Output = append(o.Output, responseOutputItem{Type: "message", ID: "msg_" + strings.TrimPrefix(o.ID, "resp_"), Status: "completed", Role: "assistant",
				Content: []responseOutputPart{{Type: "output_text", Text: *ch.Message.Content, Annotations: []any{}}}})
		}
		if r := ch.Message.Refusal; r != nil && *r != "" {
			// The model's refusal: a message of its own, a refusal part.
			o.Output = append(o.Output, responseOutputItem{Type: "message", ID: fmt.Sprintf("msg_%s_%d", base, len(o.Output)), Status: "completed", Role: "assistant",
				Content: []responseOutputPart{{Type: "refusal", Refusal: *r}}})
		}
		for i, tc := range ch.Message.ToolCalls {
			o.Output = append(o.Output, responseOutputItem{Type: "function_call", ID: fmt.Sprintf("fc_%s_%d", strings.TrimPrefix(o.ID, "resp_"), i),
				Status: "completed", CallID: tc.ID, Name: tc.Function.Name, Arguments: ptr(tc.Function.Arguments)})
		}
	}
	finishResponse(o, finish)
	if u, ok := c.usage(); ok {
		o.Usage = responsesUsageOf(u)
	}
	return o
}

// responsesEncoder renders chat chunks as Responses stream events.
type responsesEncoder struct {
	req   *responsesBody
	model string
	obj   *responseObject
	seq   int
	buf   []byte

	// open is the output item being written: its index in obj.Output, or -1.
	open   int
	text   strings.Builder
	tools  map[int]int // chat tool call index → output index
	finish string
}

func (e *responsesEncoder) event(typ string, fields map[string]any) {
	fields["type"] = typ
	fields["sequence_number"] = e.seq
	e.seq++
	data, _ := json.Marshal(fields)
	e.buf = appendEvent(e.buf, typ, data)
}

// typed writes one of the frequent delta events, kept as structs to spare a map per
// event; v carries its own type and sequence number.
func (e *responsesEncoder) typed(v interface{ eventType() string }) {
	e.seq++
	data, _ := json.Marshal(v)
	e.buf = appendEvent(e.buf, v.eventType(), data)
}

type textDelta struct {
	Type           string `json:"type"`
	SequenceNumber int    `json:"sequence_number"`
	ItemID         string `json:"item_id"`
	OutputIndex    int    `json:"output_index"`
	ContentIndex   int    `json:"content_index"`
	Delta          string `json:"delta"`
	Logprobs       []any  `json:"logprobs"`
}

func (d textDelta) eventType() string { return d.Type }

type argumentsDelta struct {
	Type           string `json:"type"`
	SequenceNumber int    `json:"sequence_number"`
	ItemID         string `json:"item_id"`
	OutputIndex    int    `json:"output_index"`
	Delta          string `json:"delta"`
}

func (d argumentsDelta) eventType() string { return d.Type }

func (e *responsesEncoder) start(id string, created int64) {
	if e.obj != nil {
		return
	}
	e.open = -1
	e.tools = map[int]int{}
	e.obj = newResponseObject(e.req, id, e.model, created)
	e.event("response.created", map[string]any{"response": e.obj})
	e.event("response.in_progress", map[string]any{"response": e.obj})
}

func (e *responsesEncoder) closeItem() {
	if e.open < 0 {
		return
	}
	i := e.open
	item := &e.obj.Output[i]
	item.Status = "completed"
	switch item.Type {
	case "message":
		text := e.text.String()
		if item.Content[0].Type == "refusal" {
			item.Content[0].Refusal = text
			e.event("response.refusal.done", map[string]any{"item_id": item.ID, "output_index": i, "content_index": 0, "refusal": text})
			e.event("response.content_part.done", map[string]any{"item_id": item.ID, "output_index": i, "content_index": 0, "part": item.Content[0]})
			e.text.Reset()
			break
		}
		item.Content[0].Text = text
		e.event("response.output_text.done", map[string]any{"item_id": item.ID, "output_index": i, "content_index": 0, "text": text})
		e.event("response.content_part.done", map[string]any{"item_id": item.ID, "output_index": i, "content_index": 0, "part": item.Content[0]})
		e.text.Reset()
	case "function_call":
		e.event("response.function_call_arguments.done", map[string]any{"item_id": item.ID, "output_index": i, "arguments": *item.Arguments})
	case "reasoning":
		text := e.text.String()
		item.Summary[0].Text = text
		e.event("response.reasoning_summary_text.done", map[string]any{"item_id": item.ID, "output_index": i, "summary_index": 0, "text": text})
		e.event("response.reasoning_summary_part.done", map[string]any{"item_id": item.ID, "output_index": i, "summary_index": 0, "part": item.Summary[0]})
		e.text.Reset()
	}
	e.event("response.output_item.done", map[string]any{"output_index": i, "item": *item})
	e.open = -1
}

func (e *responsesEncoder) chunk(c *chatChunk) []byte {
	e.buf = e.buf[:0]
	e.start(c.ID, c.Created)
	base := strings.TrimPrefix(e.obj.ID, "resp_")
	for _, ch := range c.Choices {
		if ch.Index != 0 {
			continue
		}
		if t := ch.Delta.ReasoningContent; t != nil && *t != "" {
			e.reason(base, *t)
		}
		for _, tb := range ch.Delta.ThinkingBlocks {
			e.thinkingBlock(base, tb)
		}
		if t := ch.Delta.Content; t != nil && *t != "" {
			if e.open < 0 || e.obj.Output[e.open].Type != "message" || e.obj.Output[e.open].Content[0].Type != "output_text" {
				e.closeItem()
				e.obj.Output = append(e.obj.Output, responseOutputItem{Type: "message", ID: fmt.Sprintf("msg_%s_%d", base, len(e.obj.Output)),
					Status: "in_progress", Role: "assistant", Content: []responseOutputPart{{Type: "output_text", Annotations: []any{}}}})
				e.open = len(e.obj.Output) - 1
				item := e.obj.Output[e.open]
				e.event("response.output_item.added", map[string]any{"output_index": e.open, "item": responseOutputItem{Type: "message", ID: item.ID, Status: "in_progress", Role: "assistant", Content: []responseOutputPart{}}})
				e.event("response.content_part.added", map[string]any{"item_id": item.ID, "output_index": e.open, "content_index": 0, "part": item.Content[0]})
			}
			e.text.WriteString(*t)
			e.typed(textDelta{Type: "response.output_text.delta", SequenceNumber: e.seq, ItemID: e.obj.Output[e.open].ID, OutputIndex: e.open, Delta: *t, Logprobs: []any{}})
		}
		if t := ch.Delta.Refusal; t != nil && *t != "" {
			e.refuse(base, *t)
		}
		for _, tc := range ch.Delta.ToolCalls {
			ti := 0
			if tc.Index != nil {
				ti = *tc.Index
			}
			oi, known := e.tools[ti]
			if !known {
				e.closeItem()
				e.obj.Output = append(e.obj.Output, responseOutputItem{Type: "function_call", ID: fmt.Sprintf("fc_%s_%d", base, len(e.obj.Output)),
					Status: "in_progress", CallID: tc.ID, Name: tc.Function.Name, Arguments: ptr("")})
				oi = len(e.obj.Output) - 1
				e.tools[ti] = oi
				e.open = oi
				e.event("response.output_item.added", map[string]any{"output_index": oi, "item": e.obj.Output[oi]})
			}
			if a := tc.Function.Arguments; a != "" && oi == e.open {
				item := &e.obj.Output[oi]
				*item.Arguments += a
				e.typed(argumentsDelta{Type: "response.function_call_arguments.delta", SequenceNumber: e.seq, ItemID: item.ID, OutputIndex: oi, Delta: a})
			}
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			e.finish = *ch.FinishReason
		}
	}
	return e.buf
}

// refuse writes a delta of the model's refusal: a message item of its own, whose one
// part is a refusal, opened when the item being written is not one.
func (e *responsesEncoder) refuse(base, t string) {
	if e.open < 0 || e.obj.Output[e.open].Type != "message" || e.obj.Output[e.open].Content[0].Type != "refusal" {
		e.closeItem()
		e.obj.Output = append(e.obj.Output, responseOutputItem{Type: "message", ID: fmt.Sprintf("msg_%s_%d", base, len(e.obj.Output)),
			Status: "in_progress", Role: "assistant", Content: []responseOutputPart{{Type: "refusal"}}})
		e.open = len(e.obj.Output) - 1
		item := e.obj.Output[e.open]
		e.event("response.output_item.added", map[string]any{"output_index": e.open, "item": responseOutputItem{Type: "message", ID: item.ID, Status: "in_progress", Role: "assistant", Content: []responseOutputPart{}}})
		e.event("response.content_part.added", map[string]any{"item_id": item.ID, "output_index": e.open, "content_index": 0, "part": item.Content[0]})
	}
	e.text.WriteString(t)
	e.event("response.refusal.delta", map[string]any{"item_id": e.obj.Output[e.open].ID, "output_index": e.open, "content_index": 0, "delta": t})
}

// reason writes a delta of the reasoning item being written, opening one when none is.
func (e *responsesEncoder) reason(base, t string) {
	if !e.reasoning() {
		e.closeItem()
		e.obj.Output = append(e.obj.Output, responseOutputItem{Type: "reasoning", ID: fmt.Sprintf("rs_%s_%d", base, len(e.obj.Output)),
			Status: "in_progress", Summary: []summaryPart{{Type: "summary_text"}}})
		e.open = len(e.obj.Output) - 1
		item := e.obj.Output[e.open]
		e.event("response.output_item.added", map[string]any{"output_index": e.open, "item": map[string]any{"type": "reasoning", "id": item.ID, "summary": []any{}}})
		e.event("response.reasoning_summary_part.added", map[string]any{"item_id": item.ID, "output_index": e.open, "summary_index": 0, "part": item.Summary[0]})
	}
	e.text.WriteString(t)
	e.event("response.reasoning_summary_text.delta", map[string]any{"item_id": e.obj.Output[e.open].ID, "output_index": e.open, "summary_index": 0, "delta": t})
}

// reasoning reports whether the item being written is a reasoning item.
func (e *responsesEncoder) reasoning() bool {
	return e.open >= 0 && e.obj.Output[e.open].Type == "reasoning"
}

// thinkingBlock ends the reasoning item whose text was streamed with the state of its
// thinking block (Anthropic's, which comes once the text did), or writes the item of a
// block that brought no text (a redacted_thinking block). A block whose text is not
// what the item showed gets no state (see reasoningItem).
func (e *responsesEncoder) thinkingBlock(base string, tb thinkingBlock) {
	state := thinkingState(tb)
	if tb.Type == "thinking" && tb.Thinking != "" {
		if !e.reasoning() {
			e.reason(base, tb.Thinking)
		}
		if tb.Thinking != e.text.String() {
			state = ""
		}
		e.obj.Output[e.open].EncryptedContent = state
		e.closeItem()
		return
	}
	if state == "" {
		return
	}
	e.closeItem()
	item := responseOutputItem{Type: "reasoning", ID: fmt.Sprintf("rs_%s_%d", base, len(e.obj.Output)), Status: "in_progress", EncryptedContent: state}
	i := len(e.obj.Output)
	e.event("response.output_item.added", map[string]any{"output_index": i, "item": item})
	item.Status = "completed"
	e.obj.Output = append(e.obj.Output, item)
	e.event("response.output_item.done", map[string]any{"output_index": i, "item": item})
}

func (e *responsesEncoder) end(id string, u Usage) []byte {
	e.buf = e.buf[:0]
	e.start(id, 0)
	e.closeItem()
	finishResponse(e.obj, e.finish)
	e.obj.Usage = responsesUsageOf(u)
	name := "response.completed"
	if e.obj.Status == "incomplete" {
		name = "response.incomplete"
	}
	e.event(name, map[string]any{"response": e.obj})
	return e.buf
}

func (e *responsesEncoder) fail(code, msg string) []byte {
	e.buf = e.buf[:0]
	e.start("", 0)
	e.obj.Status = "failed"
	e.obj.Error = &responseError{Code: code, Message: msg}
	e.event("response.failed", map[string]any{"response": e.obj})
	return e.buf
}
