package llm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"strings"
)

// The Google Gemini (generateContent) wire types and the translations between them and
// chat completions.

type geminiRequest struct {
	Contents          []geminiContent         `json:"contents"`
	SystemInstruction *geminiContent          `json:"systemInstruction,omitempty"`
	Tools             []geminiTool            `json:"tools,omitempty"`
	ToolConfig        *geminiToolConfig       `json:"toolConfig,omitempty"`
	GenerationConfig  *geminiGenerationConfig `json:"generationConfig,omitempty"`
}

type geminiContent struct {
	Role  string       `json:"role,omitempty"`
	Parts []geminiPart `json:"parts"`
}

type geminiPart struct {
	Text             string                  `json:"text,omitempty"`
	Thought          bool                    `json:"thought,omitempty"`
	InlineData       *geminiBlob             `json:"inlineData,omitempty"`
	FileData         *geminiFile             `json:"fileData,omitempty"`
	FunctionCall     *geminiFunctionCall     `json:"functionCall,omitempty"`
	FunctionResponse *geminiFunctionResponse `json:"functionResponse,omitempty"`
	ThoughtSignature string                  `json:"thoughtSignature,omitempty"`
}

// skipSignatureCheck is the thought signature Google documents for function calls
// whose own signature is not known (a conversation begun with another model, or by a
// client that does not carry extra_content back): Gemini 3 refuses a function call
// of the conversation without one.
const skipSignatureCheck = "skip_thought_signature_validator"

type geminiBlob struct {
	MimeType string `json:"mimeType"`
	Data     string `json:"data"`
}

type geminiFile struct {
	MimeType string `json:"mimeType,omitempty"`
	FileURI  string `json:"fileUri"`
}

type geminiFunctionCall struct {
	ID   string          `json:"id,omitempty"`
	Name string          `json:"name"`
	Args json.RawMessage `json:"args,omitempty"`
}

type geminiFunctionResponse struct {
	ID       string          `json:"id,omitempty"`
	Name     string          `json:"name"`
	Response json.RawMessage `json:"response"`
}

type geminiTool struct {
	FunctionDeclarations []geminiFunctionDecl `json:"functionDeclarations"`
}

type geminiFunctionDecl struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

type geminiToolConfig struct {
	FunctionCallingConfig geminiFunctionCallingConfig `json:"functionCallingConfig"`
}

type geminiFunctionCallingConfig struct {
	Mode                 string   `json:"mode"`
	AllowedFunctionNames []string `json:"allowedFunctionNames,omitempty"`
}

type geminiGenerationConfig struct {
	Temperature      *float64        `json:"temperature,omitempty"`
	TopP             *float64        `json:"topP,omitempty"`
	MaxOutputTokens  *int64          `json:"maxOutputTokens,omitempty"`
	StopSequences    []string        `json:"stopSequences,omitempty"`
	CandidateCount   *int64          `json:"candidateCount,omitempty"`
	ResponseMimeType string          `json:"responseMimeType,omitempty"`
	ResponseSchema   json.RawMessage `json:"responseSchema,omitempty"`
	ThinkingConfig   *geminiThinking `json:"thinkingConfig,omitempty"`
}

// geminiThinking asks a Gemini model that thinks for a budget and for its thought
// summaries, which come back as parts marked thought.
type geminiThinking struct {
	ThinkingBudget  *int64 `json:"thinkingBudget,omitempty"`
	IncludeThoughts bool   `json:"includeThoughts,omitempty"`
}

type geminiResponse struct {
	Candidates []struct {
		Content      geminiContent `json:"content"`
		FinishReason string        `json:"finishReason"`
		Index        int           `json:"index"`
	} `json:"candidates"`
	UsageMetadata *geminiUsage `json:"usageMetadata"`
	ModelVersion  string       `json:"modelVersion"`
	ResponseID    string       `json:"responseId"`
	// PromptFeedback says why a prompt was blocked: then there are no candidates.
	PromptFeedback *struct {
		BlockReason string `json:"blockReason"`
	} `json:"promptFeedback"`
}

// promptBlocked reports whether Gemini refused the prompt itself (no candidates, a
// block reason): answered as one choice finished by the content filter, never as an
// answer without choices.
func (r *geminiResponse) promptBlocked() bool {
	return len(r.Candidates) == 0 && r.PromptFeedback != nil && r.PromptFeedback.BlockReason != ""
}

type geminiUsage struct {
	PromptTokenCount        int64 `json:"promptTokenCount"`
	CandidatesTokenCount    int64 `json:"candidatesTokenCount"`
	CachedContentTokenCount int64 `json:"cachedContentTokenCount"`
	ThoughtsTokenCount      int64 `json:"thoughtsTokenCount"`
	TotalTokenCount         int64 `json:"totalTokenCount"`
}

// usage converts Gemini usage; thinking tokens are billed as output.
func (u *geminiUsage) usage() Usage {
	return Usage{PromptTokens: tokenCount(u.PromptTokenCount), CompletionTokens: tokenCount(u.CandidatesTokenCount) + tokenCount(u.ThoughtsTokenCount),
		CachedTokens: tokenCount(u.CachedContentTokenCount)}
}

// chatToGemini translates a chat completions request into a generateContent request.
func chatToGemini(b *chatBody) (*geminiRequest, error) {
	out := &geminiRequest{}
	gen := &geminiGenerationConfig{Temperature: b.Temperature, TopP: b.TopP, StopSequences: stopList(b.Stop), CandidateCount: b.N}
	switch {
	case b.MaxCompletionTokens != nil:
		gen.MaxOutputTokens = b.MaxCompletionTokens
	case b.MaxTokens != nil:
		gen.MaxOutputTokens = b.MaxTokens
	}
	switch kind, schema, _ := b.responseFormat(); kind {
	case "json_object":
		gen.ResponseMimeType = "application/json"
	case "json_schema":
		gen.ResponseMimeType = "application/json"
		gen.ResponseSchema = geminiSchema(schema)
	}
	// Without an effort the model's default stands: some Gemini models cannot stop
	// thinking, and refuse a budget of 0.
	budget, think, err := thinkingBudget(b.ReasoningEffort)
	if err != nil {
		return nil, err
	}
	if think {
		gen.ThinkingConfig = &geminiThinking{ThinkingBudget: &budget, IncludeThoughts: true}
	}
	if gen.Temperature != nil || gen.TopP != nil || gen.MaxOutputTokens != nil || len(gen.StopSequences) > 0 || gen.CandidateCount != nil || gen.ResponseMimeType != "" || gen.ThinkingConfig != nil {
		out.GenerationConfig = gen
	}
	// Tool results name the function only through the call id.
	callNames := map[string]string{}
	var system []geminiPart
	add := func(role string, parts ...geminiPart) {
		if n := len(out.Contents); n > 0 && out.Contents[n-1].Role == role {
			out.Contents[n-1].Parts = append(out.Contents[n-1].Parts, parts...)
			return
		}
		out.Contents = append(out.Contents, geminiContent{Role: role, Parts: parts})
	}
	for i, m := range b.Messages {
		switch m.Role {
		case "system", "developer":
			if t := contentText(m.Content); t != "" {
				system = append(system, geminiPart{Text: t})
			}
		case "user":
			parts, err := contentParts(m.Content)
			if err != nil {
				return nil, invalidf(fmt.Sprintf("messages[%d].content", i), "`messages[%d].content` must be a string or an array of content parts.", i)
			}
			var gp []geminiPart
			for j, p := range parts {
				switch p.Type {
				case "text":
					if p.Text != "" {
						gp = append(gp, geminiPart{Text: p.Text})
					}
				case "file":
					doc, err := geminiDocument(p.File, documentParam(i, j))
					if err != nil {
						return nil, err
					}
					gp = append(gp, doc)
				case "image_url":
					if p.ImageURL == nil {
						return nil, invalidf(fmt.Sprintf("messages[%d].content", i), "An `image_url` part needs `image_url.url`.")
					}
					src, err := anthropicImageSource(p.ImageURL.URL, i)
					if err != nil {
						return nil, err
					}
					if src.Type == "base64" {
						gp = append(gp, geminiPart{InlineData: &geminiBlob{MimeType: src.MediaType, Data: src.Data}})
					} else {
						gp = append(gp, geminiPart{FileData: &geminiFile{MimeType: imageMimeType(src.URL), FileURI: src.URL}})
					}
				}
			}
			if len(gp) == 0 {
				gp = []geminiPart{{Text: " "}}
			}
			add("user", gp...)
		case "assistant":
			var gp []geminiPart
			if t := contentText(m.Content); t != "" {
				gp = append(gp, geminiPart{Text: t})
			}
			for j, tc := range m.ToolCalls {
				callNames[tc.ID] = tc.Function.Name
				part := geminiPart{FunctionCall: &geminiFunctionCall{Name: tc.Function.Name, Args: argumentsObject(tc.Function.Arguments)},
					ThoughtSignature: tc.thoughtSignature()}
				if j == 0 && part.ThoughtSignature == "" {
					// Gemini signs the first call of each step (parallel calls
					// after it carry none).
					part.ThoughtSignature = skipSignatureCheck
				}
				gp = append(gp, part)
			}
			if len(gp) > 0 {
				add("model", gp...)
			}
		case "tool", "function":
			name := callNames[m.ToolCallID]
			if name == "" {
				name = m.Name
			}
			add("user", geminiPart{FunctionResponse: &geminiFunctionResponse{Name: name, Response: toolResponseObject(contentText(m.Content))}})
		default:
			return nil, invalidf(fmt.Sprintf("messages[%d].role", i), "Unknown message role %q.", m.Role)
		}
	}
	if len(out.Contents) == 0 {
		return nil, invalidf("messages", "`messages` must contain at least one user or assistant message.")
	}
	if len(system) > 0 {
		out.SystemInstruction = &geminiContent{Parts: system}
	}
	var decls []geminiFunctionDecl
	for _, t := range b.Tools {
		if t.Type != "" && t.Type != "function" {
			continue
		}
		decls = append(decls, geminiFunctionDecl{Name: t.Function.Name, Description: t.Function.Description, Parameters: geminiSchema(t.Function.Parameters)})
	}
	if len(decls) > 0 {
		out.Tools = []geminiTool{{FunctionDeclarations: decls}}
		if tc := anthropicToolChoiceOf(b.ToolChoice); tc != nil {
			cfg := geminiFunctionCallingConfig{Mode: "AUTO"}
			switch tc.Type {
			case "any":
				cfg.Mode = "ANY"
			case "none":
				cfg.Mode = "NONE"
			case "tool":
				cfg = geminiFunctionCallingConfig{Mode: "ANY", AllowedFunctionNames: []string{tc.Name}}
			}
			out.ToolConfig = &geminiToolConfig{FunctionCallingConfig: cfg}
		}
	}
	return out, nil
}

// toolResponseObject wraps a tool result: Gemini wants an object.
func toolResponseObject(s string) json.RawMessage {
	t := bytes.TrimSpace([]byte(s))
	if len(t) > 0 && t[0] == '{' && json.Valid(t) {
		return t
	}
	b, _ := json.Marshal(map[string]string{"content": s})
	return b
}

// geminiSchema drops the JSON Schema keywords Gemini's OpenAPI subset refuses.
func geminiSchema(raw json.RawMessage) json.RawMessage {
	if len(bytes.TrimSpace(raw)) == 0 || isNull(raw) {
		return nil
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return raw
	}
	var clean func(any) any
	clean = func(v any) any {
		switch t := v.(type) {
		case map[string]any:
			delete(t, "$schema")
			delete(t, "additionalProperties")
			delete(t, "strict")
			for k, x := range t {
				t[k] = clean(x)
			}
		case []any:
			for i, x := range t {
				t[i] = clean(x)
			}
		}
		return v
	}
	b, _ := json.Marshal(clean(v))
	return b
}

func imageMimeType(u string) string {
	switch strings.ToLower(path.Ext(strings.SplitN(u, "?", 2)[0])) {
	case ".png":
		return "image/png"
	case ".gif":
		return "image/gif"
	case ".webp":
		return "image/webp"
	default:
		return "image/jpeg"
	}
}

func finishReasonOfGemini(r string, toolCalls bool) string {
	switch r {
	case "":
		return ""
	case "MAX_TOKENS":
		return "length"
	case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE":
		return "content_filter"
	}
	if toolCalls {
		return "tool_calls"
	}
	return "stop"
}

// geminiToChat translates a generateContent response into a chat completion.
func geminiToChat(r *geminiResponse, model string, created int64) *chatResponse {
	out := &chatResponse{ID: chatID(r.ResponseID), Object: "chat.completion", Created: created, Model: model, Choices: []chatChoice{}}
	if r.ModelVersion != "" {
		out.Model = r.ModelVersion
	}
	for _, c := range r.Candidates {
		msg := responseMessage{Role: "assistant"}
		var text, thoughts strings.Builder
		for i, p := range c.Content.Parts {
			switch {
			case p.FunctionCall != nil:
				msg.ToolCalls = append(msg.ToolCalls, geminiToolCall(p, r.ResponseID, i))
			case p.Text != "" && p.Thought:
				thoughts.WriteString(p.Text)
			case p.Text != "":
				text.WriteString(p.Text)
			}
		}
		if text.Len() > 0 || len(msg.ToolCalls) == 0 {
			msg.Content = ptr(text.String())
		}
		if thoughts.Len() > 0 {
			msg.ReasoningContent = ptr(thoughts.String())
		}
		finish := finishReasonOfGemini(c.FinishReason, len(msg.ToolCalls) > 0)
		if finish == "" {
			finish = "stop"
		}
		out.Choices = append(out.Choices, chatChoice{Index: c.Index, Message: msg, FinishReason: finish})
	}
	if r.promptBlocked() {
		out.Choices = append(out.Choices, chatChoice{Index: 0, Message: responseMessage{Role: "assistant", Content: ptr("")}, FinishReason: "content_filter"})
	}
	if r.UsageMetadata != nil {
		out.Usage = r.UsageMetadata.usage().json()
	}
	return out
}

// geminiToolCall is a function call part as a chat tool call. Its id is Gemini's, or
// one made unique with (the start of) the response's id, within the 40 characters
// OpenAI takes and the characters Anthropic takes: a conversation may move on to
// another provider (a fallback).
func geminiToolCall(p geminiPart, responseID string, i int) toolCall {
	fc := p.FunctionCall
	id := fc.ID
	if id == "" {
		id = fmt.Sprintf("call_%d", i)
		if r := toolIDChars(responseID); r != "" {
			id = fmt.Sprintf("call_%s_%d", r[:min(len(r), 24)], i)
		}
	}
	args := string(fc.Args)
	if args == "" {
		args = "{}"
	}
	return toolCall{ID: id, Type: "function", Function: toolFunction{Name: fc.Name, Arguments: args},
		ExtraContent: withThoughtSignature(p.ThoughtSignature)}
}

// geminiStreamDecoder turns streamGenerateContent (alt=sse) events into chat chunks,
// each candidate (candidateCount, from n) a choice of its index.
type geminiStreamDecoder struct {
	id         string
	responseID string // Gemini's, for tool call ids
	model      string
	created    int64
	started    bool
	// roled: the candidates whose first chunk (the role) went out.
	roled map[int]bool
	// tools counts the tool calls of each candidate so far.
	tools map[int]int
	usage *geminiUsage
}

func (d *geminiStreamDecoder) decode(data []byte) ([]chatChunk, error) {
	var r geminiResponse
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%w: gemini event: %w", ErrUpstreamBadResponse, err)
	}
	if r.ResponseID != "" && d.id == "" {
		d.id, d.responseID = chatID(r.ResponseID), r.ResponseID
	}
	if r.ModelVersion != "" {
		d.model = r.ModelVersion
	}
	if r.UsageMetadata != nil {
		d.usage = r.UsageMetadata
	}
	var out []chatChunk
	if d.roled == nil {
		d.roled = map[int]bool{}
	}
	if !d.started {
		d.started = true
		d.roled[0] = true
		out = append(out, d.chunk(0, chunkDelta{Role: "assistant", Content: ptr("")}, nil))
	}
	for _, c := range r.Candidates {
		if !d.roled[c.Index] && c.Index >= 0 && c.Index < maxChoices {
			// Each choice's first chunk names its role, as OpenAI's do (n > 1).
			d.roled[c.Index] = true
			out = append(out, d.chunk(c.Index, chunkDelta{Role: "assistant", Content: ptr("")}, nil))
		}
		for _, p := range c.Content.Parts {
			switch {
			case p.FunctionCall != nil:
				if d.tools == nil {
					d.tools = map[int]int{}
				}
				n := d.tools[c.Index]
				tc := geminiToolCall(p, d.responseID, n)
				tc.Index = ptr(n)
				d.tools[c.Index] = n + 1
				out = append(out, d.chunk(c.Index, chunkDelta{ToolCalls: []toolCall{tc}}, nil))
			case p.Text != "" && p.Thought:
				out = append(out, d.chunk(c.Index, chunkDelta{ReasoningContent: ptr(p.Text)}, nil))
			case p.Text != "":
				out = append(out, d.chunk(c.Index, chunkDelta{Content: ptr(p.Text)}, nil))
			}
		}
		if f := finishReasonOfGemini(c.FinishReason, d.tools[c.Index] > 0); f != "" {
			out = append(out, d.chunk(c.Index, chunkDelta{}, ptr(f)))
		}
	}
	if r.promptBlocked() {
		out = append(out, d.chunk(0, chunkDelta{}, ptr("content_filter")))
	}
	return out, nil
}

func (d *geminiStreamDecoder) chunk(choice int, delta chunkDelta, finish *string) chatChunk {
	return chatChunk{ID: d.id, Object: "chat.completion.chunk", Created: d.created, Model: d.model,
		Choices: []chunkChoice{{Index: choice, Delta: delta, FinishReason: finish}}}
}

// Gemini embeddings (batchEmbedContents).

type geminiEmbedRequest struct {
	Requests []geminiEmbedOne `json:"requests"`
}

type geminiEmbedOne struct {
	Model                string        `json:"model"`
	Content              geminiContent `json:"content"`
	OutputDimensionality *int64        `json:"outputDimensionality,omitempty"`
}

type geminiEmbedResponse struct {
	Embeddings []struct {
		Values []float64 `json:"values"`
	} `json:"embeddings"`
}

// geminiKeyRefused reports whether an error answer is Gemini refusing its API key: a
// 400 (not a 401) with the reason API_KEY_INVALID — the operator's credential failing,
// not the caller's request.
func geminiKeyRefused(status int, body []byte) bool {
	return status == http.StatusBadRequest && bytes.Contains(body, []byte(`"API_KEY_INVALID"`))
}

// toolIDChars keeps the characters of s that every provider takes in a tool call id.
func toolIDChars(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}
