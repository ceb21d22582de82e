package llm

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// thinkingToolUpstream is an Anthropic Messages server with extended thinking: asked
// without a tool result, it thinks (a signed block, then a redacted one), says a word
// and calls get_weather; asked with one, it answers. It keeps the bodies it was sent.
type thinkingToolUpstream struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []map[string]any
}

const upstreamThought = "Rain is likely: check the weather. Ask about secret plans."

func newThinkingToolUpstream(t *testing.T) *thinkingToolUpstream {
	u := &thinkingToolUpstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil || r.URL.Path != "/v1/messages" {
			http.Error(w, "not a Messages request", http.StatusBadRequest)
			return
		}
		u.mu.Lock()
		u.bodies = append(u.bodies, body)
		u.mu.Unlock()
		blocks := []map[string]any{
			{"type": "thinking", "thinking": upstreamThought, "signature": "sig-turn-1"},
			{"type": "redacted_thinking", "data": "enc-turn-1"},
			{"type": "text", "text": "Let me check."},
			{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": map[string]any{"city": "Paris"}},
		}
		stop := "tool_use"
		if strings.Contains(string(raw), `"tool_result"`) {
			blocks, stop = []map[string]any{{"type": "text", "text": "Take an umbrella."}}, "end_turn"
		}
		if stream, _ := body["stream"].(bool); !stream {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet",
				"content": blocks, "stop_reason": stop, "usage": map[string]any{"input_tokens": 10, "output_tokens": 20}})
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		event := func(v map[string]any) {
			b, _ := json.Marshal(v)
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", v["type"], b)
		}
		event(map[string]any{"type": "message_start", "message": map[string]any{"id": "msg_1", "type": "message", "role": "assistant",
			"model": "claude-sonnet", "content": []any{}, "usage": map[string]any{"input_tokens": 10, "output_tokens": 1}}})
		for i, b := range blocks {
			delta := func(d map[string]any) { event(map[string]any{"type": "content_block_delta", "index": i, "delta": d}) }
			switch b["type"] {
			case "thinking":
				event(map[string]any{"type": "content_block_start", "index": i, "content_block": map[string]any{"type": "thinking", "thinking": ""}})
				text := b["thinking"].(string)
				delta(map[string]any{"type": "thinking_delta", "thinking": text[:10]})
				delta(map[string]any{"type": "thinking_delta", "thinking": text[10:]})
				delta(map[string]any{"type": "signature_delta", "signature": b["signature"]})
			case "redacted_thinking":
				event(map[string]any{"type": "content_block_start", "index": i, "content_block": b})
			case "text":
				event(map[string]any{"type": "content_block_start", "index": i, "content_block": map[string]any{"type": "text", "text": ""}})
				delta(map[string]any{"type": "text_delta", "text": b["text"]})
			case "tool_use":
				event(map[string]any{"type": "content_block_start", "index": i, "content_block": map[string]any{"type": "tool_use", "id": b["id"], "name": b["name"], "input": map[string]any{}}})
				delta(map[string]any{"type": "input_json_delta", "partial_json": `{"city":"Paris"}`})
			}
			event(map[string]any{"type": "content_block_stop", "index": i})
		}
		event(map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": stop}, "usage": map[string]any{"output_tokens": 20}})
		event(map[string]any{"type": "message_stop"})
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *thinkingToolUpstream) last(t *testing.T) map[string]any {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.bodies) == 0 {
		t.Fatal("upstream not called")
	}
	return u.bodies[len(u.bodies)-1]
}

// serveResponses sends a Responses body to a model of the provider type at base; req
// may be changed first (filters).
func serveResponses(t *testing.T, base string, typ gatehousev1.ProviderType, body string, prepare func(*Request)) (*httptest.ResponseRecorder, error) {
	t.Helper()
	parsed, err := ParseResponsesRequest([]byte(body))
	if err != nil {
		return nil, err
	}
	req := &Request{Surface: SurfaceResponses, Header: http.Header{}, Responses: parsed, Chat: parsed.Chat,
		Candidates: []*runtime.Model{testModel(t, typ, base)}}
	if prepare != nil {
		prepare(req)
	}
	rec := httptest.NewRecorder()
	if _, err := testClient(t).Serve(context.Background(), rec, req); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
	}
	return rec, nil
}

// outputItems are the items of a Response: its output, or the items of a stream's
// response.output_item.done events, in order.
func outputItems(t *testing.T, body string, stream bool) []json.RawMessage {
	t.Helper()
	if !stream {
		var r struct{ Output []json.RawMessage }
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("response %v: %s", err, body)
		}
		return r.Output
	}
	var items []json.RawMessage
	for line := range strings.Lines(body) {
		data, ok := strings.CutPrefix(strings.TrimSpace(line), "data: ")
		if !ok {
			continue
		}
		var ev struct {
			Type string          `json:"type"`
			Item json.RawMessage `json:"item"`
		}
		if json.Unmarshal([]byte(data), &ev) == nil && ev.Type == "response.output_item.done" {
			items = append(items, ev.Item)
		}
	}
	return items
}

// encryptedContents are the encrypted_content of the reasoning items, "" for none.
func encryptedContents(t *testing.T, items []json.RawMessage) []string {
	t.Helper()
	var out []string
	for _, raw := range items {
		var it struct{ Type, EncryptedContent string }
		if err := json.Unmarshal(raw, &it); err != nil {
			t.Fatal(err)
		}
		if it.Type == "reasoning" {
			var fields map[string]any
			_ = json.Unmarshal(raw, &fields)
			out = append(out, fmt.Sprint(fields["encrypted_content"]))
		}
	}
	return out
}

const weatherTool = `[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}]`

// TestResponsesThinkingRoundTrip: a Responses caller with thinking and tools, served by
// Anthropic, sends turn one's output back with the tool's result, as an agent does;
// the second request Anthropic gets opens the assistant turn with turn one's thinking
// blocks, signed, in order, before the tool call: what Anthropic requires to continue
// a tool call with thinking on.
func TestResponsesThinkingRoundTrip(t *testing.T) {
	t.Parallel()
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%t", stream), func(t *testing.T) {
			t.Parallel()
			up := newThinkingToolUpstream(t)
			first := fmt.Sprintf(`{"model":"claude","stream":%t,"reasoning":{"effort":"low"},"store":false,"include":["reasoning.encrypted_content"],"tools":%s,"input":"Umbrella in Paris?"}`, stream, weatherTool)
			rec, err := serveResponses(t, up.srv.URL, anthropicType, first, nil)
			if err != nil {
				t.Fatal(err)
			}
			items := outputItems(t, rec.Body.String(), stream)
			if got := encryptedContents(t, items); len(got) != 2 || !strings.HasPrefix(got[0], thinkingStatePrefix) || !strings.HasPrefix(got[1], thinkingStatePrefix) {
				t.Fatalf("reasoning items' encrypted_content %q; output %s", got, items)
			}

			input := []json.RawMessage{json.RawMessage(`{"role":"user","content":"Umbrella in Paris?"}`)}
			input = append(input, items...)
			input = append(input, json.RawMessage(`{"type":"function_call_output","call_id":"toolu_1","output":"Rain."}`))
			inputJSON, _ := json.Marshal(input)
			second := fmt.Sprintf(`{"model":"claude","reasoning":{"effort":"low"},"tools":%s,"input":%s}`, weatherTool, inputJSON)
			if _, err := serveResponses(t, up.srv.URL, anthropicType, second, nil); err != nil {
				t.Fatal(err)
			}
			msgs, _ := up.last(t)["messages"].([]any)
			if len(msgs) != 3 {
				t.Fatalf("second request messages: %v", msgs)
			}
			want := map[string]any{"role": "assistant", "content": []any{
				map[string]any{"type": "thinking", "thinking": upstreamThought, "signature": "sig-turn-1"},
				map[string]any{"type": "redacted_thinking", "data": "enc-turn-1"},
				map[string]any{"type": "text", "text": "Let me check."},
				map[string]any{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": map[string]any{"city": "Paris"}},
			}}
			if diff := cmp.Diff(want, msgs[1]); diff != "" {
				t.Errorf("assistant turn sent back (-want +got):\n%s", diff)
			}
		})
	}
}

// TestResponsesRedactedThinkingHasNoState: a thinking block a response filter changed
// reaches the caller with the filtered text and no encrypted_content, so no state
// holds text the caller was not shown; the blocks no filter touched keep theirs.
func TestResponsesRedactedThinkingHasNoState(t *testing.T) {
	t.Parallel()
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%t", stream), func(t *testing.T) {
			t.Parallel()
			up := newThinkingToolUpstream(t)
			body := fmt.Sprintf(`{"model":"claude","stream":%t,"reasoning":{"effort":"low"},"tools":%s,"input":"Umbrella in Paris?"}`, stream, weatherTool)
			rec, err := serveResponses(t, up.srv.URL, anthropicType, body, func(r *Request) { filtered(r) })
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(rec.Body.String(), "secret plans") {
				t.Fatalf("unfiltered reasoning reached the caller:\n%s", rec.Body.String())
			}
			items := outputItems(t, rec.Body.String(), stream)
			got := encryptedContents(t, items)
			if len(got) != 2 || got[0] != "<nil>" || got[1] != thinkingState(thinkingBlock{Type: "redacted_thinking", Data: "enc-turn-1"}) {
				t.Fatalf("encrypted_content %q; want none for the redacted block, state for the redacted_thinking one; output %s", got, items)
			}
			if !strings.Contains(string(items[0]), "[REDACTED] plans") {
				t.Errorf("first item %s lacks the filtered text", items[0])
			}
		})
	}
}

// TestResponsesReasoningItemsElsewhere: reasoning items go back to Anthropic only; to
// other upstreams, and when their encrypted_content is another provider's, they are
// left out.
func TestResponsesReasoningItemsElsewhere(t *testing.T) {
	t.Parallel()
	ours := thinkingState(thinkingBlock{Type: "thinking", Thinking: "Hm.", Signature: "sig"})
	body := func(state string) []byte {
		return fmt.Appendf(nil, `{"model":"m","input":[{"role":"user","content":"hi"},{"type":"reasoning","summary":[],"encrypted_content":%q},`+
			`{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c1","output":"ok"}]}`, state)
	}
	tests := []struct {
		name, state string
		wantBlocks  int
	}{
		{"ours", ours, 1},
		{"openai's", "gAAAAABnOpenAIEncrypted", 0},
		{"none", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := ParseResponsesRequest(body(tt.state))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(req.Chat.UpstreamBody("up", false, false)), "thinking") {
				t.Errorf("chat form for OpenAI-style upstreams carries thinking: %s", req.Chat.UpstreamBody("up", false, false))
			}
			cb, err := req.Chat.body()
			if err != nil {
				t.Fatal(err)
			}
			ar, err := chatToAnthropic(cb, "up")
			if err != nil {
				t.Fatal(err)
			}
			var blocks []anthropicBlock
			_ = json.Unmarshal(ar.Messages[1].Content, &blocks)
			thinking := 0
			for _, b := range blocks {
				if b.Type == "thinking" {
					thinking++
				}
			}
			if thinking != tt.wantBlocks || blocks[len(blocks)-1].Type != "tool_use" {
				t.Errorf("assistant turn to Anthropic %+v, want %d thinking blocks before the tool_use", blocks, tt.wantBlocks)
			}
			gr, err := chatToGemini(cb)
			if err != nil {
				t.Fatal(err)
			}
			if g, _ := json.Marshal(gr); strings.Contains(strings.ReplaceAll(string(g), skipSignatureCheck, ""), "sig") {
				t.Errorf("Gemini request carries the signature: %s", g)
			}
		})
	}
}

// TestResponsesMalformedReasoningState: encrypted_content that claims to be ours and
// is not is refused, naming the item.
func TestResponsesMalformedReasoningState(t *testing.T) {
	t.Parallel()
	enc := func(s string) string { return thinkingStatePrefix + base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for name, state := range map[string]string{
		"not base64":      thinkingStatePrefix + "!!",
		"not JSON":        enc("thinking"),
		"unsigned":        enc(`{"type":"thinking","thinking":"x"}`),
		"empty redaction": enc(`{"type":"redacted_thinking"}`),
		"other block":     enc(`{"type":"text","thinking":"x","signature":"s"}`),
		"altered":         enc(`{"type":"thinking","thinking":"x","signature":"s","extra":1}`),
		"prefix only":     thinkingStatePrefix,
	} {
		t.Run(name, func(t *testing.T) {
			body := fmt.Sprintf(`{"model":"m","input":[{"role":"user","content":"hi"},{"type":"reasoning","summary":[],"encrypted_content":%q}]}`, state)
			_, err := ParseResponsesRequest([]byte(body))
			var ie *InvalidRequestError
			if !errors.As(err, &ie) || ie.Param != "input[1].encrypted_content" || !strings.Contains(ie.Message, "input[1].encrypted_content") {
				t.Fatalf("error %v, want an invalid request naming input[1].encrypted_content", err)
			}
		})
	}
}

// TestStreamCutShortChargesReasoning: a stream that breaks before the provider
// reported usage is charged for the reasoning it brought, not only its content.
func TestStreamCutShortChargesReasoning(t *testing.T) {
	t.Parallel()
	thought := strings.Repeat("think ", 100)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, ev := range []string{
			`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"usage":{"input_tokens":10,"output_tokens":1}}}`,
			`{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}`,
			`{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"` + thought + `"}}`,
			`{"type":"content_block_stop","index":0}`,
			`{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}`,
			`{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hi"}}`,
		} {
			fmt.Fprintf(w, "data: %s\n\n", ev)
		}
		// The connection ends here: no message_delta, no message_stop.
	}))
	t.Cleanup(up.Close)
	parsed, err := ParseResponsesRequest([]byte(`{"model":"claude","stream":true,"reasoning":{"effort":"low"},"input":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	req := &Request{Surface: SurfaceResponses, Header: http.Header{}, Responses: parsed, Chat: parsed.Chat,
		Candidates: []*runtime.Model{testModel(t, anthropicType, up.URL)}}
	res, _ := testClient(t).Serve(context.Background(), httptest.NewRecorder(), req)
	if want := int64(len(thought)+len("Hi")+3) / 4; !res.UsageEstimated || res.Usage.CompletionTokens != want {
		t.Fatalf("usage %+v (estimated %v), want %d completion tokens estimated", res.Usage, res.UsageEstimated, want)
	}
}

// TestNativeBodyLeavesGatewayStateOut: a native request (a custom tool) that carries
// this gateway's own reasoning state (Claude's thinking) goes to an OpenAI-style
// provider without it, the rest of the input as it came.
func TestNativeBodyLeavesGatewayStateOut(t *testing.T) {
	state := thinkingState(thinkingBlock{Type: "thinking", Thinking: "hmm", Signature: "sig"})
	body := `{"model":"m","tools":[{"type":"custom","name":"apply_patch"}],"input":[` +
		`{"type":"reasoning","id":"rs_1","encrypted_content":"` + state + `","summary":[]},` +
		`{"type":"reasoning","id":"rs_2","encrypted_content":"openai-opaque","summary":[]},` +
		`{"role":"user","content":"go"}]}`
	req, err := ParseResponsesRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if !req.Native() || !req.gatewayState {
		t.Fatalf("native %v, gateway state %v", req.Native(), req.gatewayState)
	}
	out := string(req.upstreamBody("up"))
	if strings.Contains(out, thinkingStatePrefix) || !strings.Contains(out, `"openai-opaque"`) || !strings.Contains(out, `"content":"go"`) ||
		!strings.Contains(out, `"model":"up"`) {
		t.Fatalf("native body = %s", out)
	}
}
