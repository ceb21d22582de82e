package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// The fake provider speaks four wire formats, chosen by path: OpenAI-compatible
// (/v1/chat/completions, /v1/embeddings), Azure OpenAI
// (/openai/deployments/{model}/...?api-version=), Anthropic (/v1/messages) and Gemini
// (/v1beta/models/{model}:generateContent | :streamGenerateContent?alt=sse |
// :batchEmbedContents). Behaviour depends on the upstream model id:
//
//	up-401    refuses the credential (and echoes it, which must never reach callers)
//	up-429    answers 429
//	up-slow   never answers
//	up-block  streams one chunk, then waits for release
//	up-tool   answers with a get_weather tool call
//	other     answers "Hello" ("Hel" + "lo" when streaming) with usage

const (
	azureAPIVersion = "2024-10-21"
	toolArgs        = `{"city":"Paris"}`
	thought         = "The user greets me."
)

// wireCall is a parsed upstream request, whatever its format.
type wireCall struct {
	format       string // openai, azure, anthropic, gemini
	op           string // chat, embeddings
	model        string
	stream       bool
	includeUsage bool
	// thinking: an Anthropic request that asked to think; the answer then starts
	// with a signed thinking block.
	thinking   bool
	credential string
	body       map[string]any
}

func parseWireCall(r *http.Request, body map[string]any) (wireCall, bool) {
	c := wireCall{body: body}
	c.model, _ = body["model"].(string)
	c.stream, _ = body["stream"].(bool)
	if opts, ok := body["stream_options"].(map[string]any); ok {
		c.includeUsage, _ = opts["include_usage"].(bool)
	}
	p := r.URL.Path
	switch {
	case p == "/v1/chat/completions":
		c.format, c.op, c.credential = "openai", "chat", r.Header.Get("Authorization")
	case p == "/v1/embeddings":
		c.format, c.op, c.credential = "openai", "embeddings", r.Header.Get("Authorization")
	case strings.HasPrefix(p, "/openai/deployments/"):
		rest := strings.TrimPrefix(p, "/openai/deployments/")
		model, op, _ := strings.Cut(rest, "/")
		c.format, c.model, c.credential = "azure", model, r.Header.Get("api-key")
		if c.credential == "" {
			c.credential = r.Header.Get("Authorization") // Entra ID
		}
		if r.URL.Query().Get("api-version") != azureAPIVersion {
			return c, false
		}
		c.op = map[string]string{"chat/completions": "chat", "embeddings": "embeddings"}[op]
	case p == "/v1/messages":
		c.format, c.op, c.credential = "anthropic", "chat", r.Header.Get("x-api-key")
		_, c.thinking = body["thinking"]
		if r.Header.Get("anthropic-version") == "" {
			return c, false
		}
	case strings.HasPrefix(p, "/v1beta/models/"):
		model, method, _ := strings.Cut(strings.TrimPrefix(p, "/v1beta/models/"), ":")
		c.format, c.model, c.credential = "gemini", model, r.Header.Get("x-goog-api-key")
		switch method {
		case "generateContent":
			c.op = "chat"
		case "streamGenerateContent":
			c.op, c.stream = "chat", r.URL.Query().Get("alt") == "sse"
		case "batchEmbedContents":
			c.op = "embeddings"
		}
	default:
		return c, false
	}
	return c, c.op != ""
}

func (u *fakeUpstream) serveWire(w http.ResponseWriter, r *http.Request, c wireCall) {
	switch c.model {
	case "up-401":
		writeWireError(w, c.format, http.StatusUnauthorized, "Incorrect API key provided: "+upstreamKey)
		return
	case "up-429":
		writeWireError(w, c.format, http.StatusTooManyRequests, "slow down")
		return
	case "up-slow":
		<-r.Context().Done()
		return
	}
	if c.op == "embeddings" {
		writeEmbeddings(w, c)
		return
	}
	tool := c.model == "up-tool"
	if !c.stream {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, wireAnswer(c, tool))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	flusher := w.(http.Flusher)
	events := wireStream(c, tool)
	// up-block pauses after the first content.
	pause := map[string]int{"anthropic": 2, "gemini": 0}[c.format]
	if c.format == "openai" || c.format == "azure" {
		pause = 1
	}
	for i, ev := range events {
		fmt.Fprint(w, ev)
		flusher.Flush()
		if i == pause && c.model == "up-block" {
			select {
			case <-u.release:
			case <-r.Context().Done():
				u.cancelled <- struct{}{}
				return
			}
		}
	}
}

func writeWireError(w http.ResponseWriter, format string, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	switch format {
	case "anthropic":
		typ := map[int]string{401: "authentication_error", 429: "rate_limit_error"}[status]
		fmt.Fprintf(w, `{"type":"error","error":{"type":%q,"message":%q}}`, typ, msg)
	case "gemini":
		fmt.Fprintf(w, `{"error":{"code":%d,"message":%q,"status":"RESOURCE_EXHAUSTED"}}`, status, msg)
	default:
		code := map[int]string{401: "invalid_api_key", 429: "rate_limit_exceeded"}[status]
		typ := map[int]string{401: "invalid_request_error", 429: "rate_limit_error"}[status]
		fmt.Fprintf(w, `{"error":{"message":%q,"type":%q,"param":null,"code":%q}}`, msg, typ, code)
	}
}

func writeEmbeddings(w http.ResponseWriter, c wireCall) {
	w.Header().Set("Content-Type", "application/json")
	if c.format == "gemini" {
		reqs, _ := c.body["requests"].([]any)
		var embs []string
		for range reqs {
			embs = append(embs, `{"values":[0.5,-0.25,1]}`)
		}
		fmt.Fprintf(w, `{"embeddings":[%s]}`, strings.Join(embs, ","))
		return
	}
	fmt.Fprintf(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-0.25,1]}],"model":%q,"usage":{"prompt_tokens":%d,"total_tokens":%d}}`,
		c.model, promptTokens, promptTokens)
}

func wireAnswer(c wireCall, tool bool) string {
	switch c.format {
	case "anthropic":
		content := `[{"type":"text","text":"Hello"}]`
		stop := "end_turn"
		if tool {
			content = `[{"type":"text","text":"Let me check."},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":` + toolArgs + `}]`
			stop = "tool_use"
		}
		if c.thinking {
			content = `[{"type":"thinking","thinking":"` + thought + `","signature":"sig-1"},` + content[1:]
		}
		return fmt.Sprintf(`{"id":"msg_1","type":"message","role":"assistant","model":%q,"content":%s,"stop_reason":%q,"stop_sequence":null,`+
			`"usage":{"input_tokens":%d,"output_tokens":%d,"cache_read_input_tokens":%d,"cache_creation_input_tokens":0}}`,
			c.model, content, stop, promptTokens-cachedTokens, outputTokens, cachedTokens)
	case "gemini":
		parts := `[{"text":"Hello"}]`
		if tool {
			parts = `[{"functionCall":{"name":"get_weather","args":` + toolArgs + `},"thoughtSignature":"` + geminiSignature + `"}]`
		}
		return fmt.Sprintf(`{"candidates":[{"content":{"role":"model","parts":%s},"finishReason":"STOP","index":0}],`+
			`"usageMetadata":{"promptTokenCount":%d,"candidatesTokenCount":%d,"cachedContentTokenCount":%d,"totalTokenCount":%d},"modelVersion":%q,"responseId":"gem-1"}`,
			parts, promptTokens, outputTokens, cachedTokens, promptTokens+outputTokens, c.model)
	}
	msg := `{"role":"assistant","content":"Hello"}`
	finish := "stop"
	if tool {
		args, _ := json.Marshal(toolArgs)
		msg = `{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":` + string(args) + `}}]}`
		finish = "tool_calls"
	}
	return fmt.Sprintf(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":%s,"finish_reason":%q}],"usage":%s}`,
		c.model, msg, finish, openAIUsage())
}

func openAIUsage() string {
	return fmt.Sprintf(`{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":%d}}`,
		promptTokens, outputTokens, promptTokens+outputTokens, cachedTokens)
}

// wireStream returns a stream's events.
func wireStream(c wireCall, tool bool) []string {
	switch c.format {
	case "anthropic":
		ev := func(name, data string) string { return "event: " + name + "\ndata: " + data + "\n\n" }
		out := []string{
			ev("message_start", fmt.Sprintf(`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":%q,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":%d,"output_tokens":1,"cache_read_input_tokens":%d,"cache_creation_input_tokens":0}}}`, c.model, promptTokens-cachedTokens, cachedTokens)),
		}
		if c.thinking {
			out = append(out,
				ev("content_block_start", `{"type":"content_block_start","index":9,"content_block":{"type":"thinking","thinking":""}}`),
				ev("content_block_delta", `{"type":"content_block_delta","index":9,"delta":{"type":"thinking_delta","thinking":"`+thought+`"}}`),
				ev("content_block_delta", `{"type":"content_block_delta","index":9,"delta":{"type":"signature_delta","signature":"sig-1"}}`),
				ev("content_block_stop", `{"type":"content_block_stop","index":9}`))
		}
		out = append(out,
			ev("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`),
			ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}`),
			ev("ping", `{"type":"ping"}`),
			ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}}`),
			ev("content_block_stop", `{"type":"content_block_stop","index":0}`),
		)
		stop := "end_turn"
		if tool {
			stop = "tool_use"
			out = append(out,
				ev("content_block_start", `{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}`),
				ev("content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}`),
				ev("content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}`),
				ev("content_block_stop", `{"type":"content_block_stop","index":1}`))
		}
		return append(out,
			ev("message_delta", fmt.Sprintf(`{"type":"message_delta","delta":{"stop_reason":%q,"stop_sequence":null},"usage":{"output_tokens":%d}}`, stop, outputTokens)),
			ev("message_stop", `{"type":"message_stop"}`))
	case "gemini":
		data := func(s string) string { return "data: " + s + "\r\n\r\n" }
		out := []string{
			data(`{"candidates":[{"content":{"role":"model","parts":[{"text":"Hel"}]},"index":0}],"modelVersion":"` + c.model + `","responseId":"gem-1"}`),
			data(`{"candidates":[{"content":{"role":"model","parts":[{"text":"lo"}]},"index":0}],"modelVersion":"` + c.model + `","responseId":"gem-1"}`),
		}
		last := `{"candidates":[{"content":{"role":"model","parts":[{"text":""}]},"finishReason":"STOP","index":0}],`
		if tool {
			last = `{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"get_weather","args":` + toolArgs + `},"thoughtSignature":"` + geminiSignature + `"}]},"finishReason":"STOP","index":0}],`
		}
		return append(out, data(last+fmt.Sprintf(`"usageMetadata":{"promptTokenCount":%d,"candidatesTokenCount":%d,"cachedContentTokenCount":%d,"totalTokenCount":%d},"modelVersion":%q,"responseId":"gem-1"}`,
			promptTokens, outputTokens, cachedTokens, promptTokens+outputTokens, c.model)))
	}
	chunk := func(delta string, finish string) string {
		f := "null"
		if finish != "" {
			f = `"` + finish + `"`
		}
		return fmt.Sprintf("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":%q,\"choices\":[{\"index\":0,\"delta\":%s,\"finish_reason\":%s}],\"usage\":null}\n\n", c.model, delta, f)
	}
	out := []string{chunk(`{"role":"assistant","content":""}`, ""), chunk(`{"content":"Hel"}`, ""), chunk(`{"content":"lo"}`, "")}
	finish := "stop"
	if tool {
		finish = "tool_calls"
		out = append(out,
			chunk(`{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}`, ""),
			chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}`, ""),
			chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}`, ""))
	}
	out = append(out, chunk(`{}`, finish))
	if c.includeUsage {
		out = append(out, fmt.Sprintf("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":%q,\"choices\":[],\"usage\":%s}\n\n", c.model, openAIUsage()))
	}
	return append(out, "data: [DONE]\n\n")
}

var _ = time.Second

// geminiSignature is the thought signature the fake Gemini signs its function calls
// with: Gemini 3 refuses a conversation whose calls come back without theirs.
const geminiSignature = "c2lnbmVkLWJ5LWdlbWluaQ=="
