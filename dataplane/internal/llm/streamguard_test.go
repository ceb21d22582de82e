package llm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/guardrail"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

// policyFilter is a ContentFilter over a real guardrail stream filter.
type policyFilter struct{ f *guardrail.StreamFilter }

func (r *policyFilter) Filter(d string) (string, error) {
	out, blocked := r.f.Write(d)
	if blocked {
		return "", &Refusal{Code: "content_blocked", Message: r.f.Blocked().Error()}
	}
	return out, nil
}

func (r *policyFilter) Flush() (string, error) {
	out, blocked := r.f.Flush()
	if blocked {
		return "", &Refusal{Code: "content_blocked", Message: r.f.Blocked().Error()}
	}
	return out, nil
}

// realFiltered filters req's answer through the response rules, as the gateway does.
func realFiltered(t *testing.T, req *Request, rules ...*gatehousev1.GuardrailRule) {
	t.Helper()
	p, err := guardrail.Compile(rules)
	if err != nil {
		t.Fatal(err)
	}
	req.Filter = &policyFilter{p.NewStreamFilter()}
	req.NewFilter = func(k TextKind) ContentFilter {
		if k == TextToolArguments {
			return &policyFilter{p.NewArgumentsFilter()}
		}
		return &policyFilter{p.NewStreamFilter()}
	}
}

func responseRule(d gatehousev1.GuardrailDetector, m gatehousev1.GuardrailMode) *gatehousev1.GuardrailRule {
	return &gatehousev1.GuardrailRule{Id: "r", Name: "r", Detector: d, Mode: m, Direction: gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_RESPONSE}
}

const redactMode = gatehousev1.GuardrailMode_GUARDRAIL_MODE_REDACT

// anthropicSSE answers with Anthropic stream events.
func anthropicSSE(events ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, e := range events {
			fmt.Fprintf(w, "event: x\ndata: %s\n\n", e)
		}
	}
}

// serveRedacted serves body on surface through a provider of typ answering with h,
// emails redacted from the answer, and returns what the caller got.
func serveRedacted(t *testing.T, surface Surface, typ gatehousev1.ProviderType, body string, h http.HandlerFunc) (string, error) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	req := parseGoldenRequest(t, surface, []byte(body))
	req.Candidates = []*runtime.Model{testModel(t, typ, srv.URL)}
	realFiltered(t, req, responseRule(gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_EMAIL, redactMode))
	rec := httptest.NewRecorder()
	_, err := testClient(t).Serve(context.Background(), rec, req)
	return rec.Body.String(), err
}

// chatDelta is a streamed chat chunk of choice 0.
func chatDelta(delta, finish string) string {
	f := "null"
	if finish != "" {
		f = `"` + finish + `"`
	}
	return chunkHead + `{"index":0,"delta":` + delta + `,"finish_reason":` + f + `}]}`
}

// On the chat surface a caller joins all of a choice's content into one string: a text
// split by a tool call or reasoning is filtered as one.
func TestChatContentIsOneTextAcrossToolCalls(t *testing.T) {
	t.Parallel()
	anthropicEvents := []string{
		`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"usage":{"input_tokens":5,"output_tokens":1}}}`,
		`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"mail bob@exa"}}`,
		`{"type":"content_block_stop","index":0}`,
		`{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"look","input":{}}}`,
		`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"q\":1}"}}`,
		`{"type":"content_block_stop","index":1}`,
		`{"type":"content_block_start","index":2,"content_block":{"type":"text","text":""}}`,
		`{"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"mple.com"}}`,
		`{"type":"content_block_stop","index":2}`,
		`{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":7}}`,
		`{"type":"message_stop"}`,
	}
	for _, tc := range []struct {
		name string
		typ  gatehousev1.ProviderType
		h    http.HandlerFunc
	}{
		{"anthropic tool_use between", anthropicType, anthropicSSE(anthropicEvents...)},
		{"openai tool call between", openAIType, answerSSE(
			chatDelta(`{"role":"assistant","content":"mail bob@exa"}`, ""),
			chatDelta(`{"tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]}`, ""),
			chatDelta(`{"content":"mple.com"}`, "tool_calls"), `[DONE]`)},
		{"openai reasoning between", openAIType, answerSSE(
			chatDelta(`{"role":"assistant","content":"mail bob@exa"}`, ""),
			chatDelta(`{"reasoning_content":"hmm"}`, ""),
			chatDelta(`{"content":"mple.com"}`, "stop"), `[DONE]`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := serveRedacted(t, SurfaceChat, tc.typ, `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`, tc.h)
			content, _, _ := chatStreamChoices(t, got)
			if err != nil || content[0] != "mail [REDACTED:email]" {
				t.Errorf("err=%v content %q, want it redacted as one text:\n%s", err, content[0], got)
			}
		})
	}
}

// A tool call's arguments keep one filter across deltas, even when another call's
// come between them in one delta.
func TestInterleavedToolCallArgumentsAreOneText(t *testing.T) {
	t.Parallel()
	block := responseRule(gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_EMAIL, gatehousev1.GuardrailMode_GUARDRAIL_MODE_BLOCK)
	for _, s := range []Surface{SurfaceChat, SurfaceMessages, SurfaceResponses} {
		srv := httptest.NewServer(answerSSE(chatDelta(`{"tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"f","arguments":"{\"p\":\"bob@"}},{"index":1,"id":"b","type":"function","function":{"name":"g","arguments":"{}"}},{"index":0,"function":{"arguments":"example.com\"}"}}]}`, "tool_calls"), `[DONE]`))
		req := parseGoldenRequest(t, s, []byte(surfaceBody(s, true)))
		req.Candidates = []*runtime.Model{testModel(t, openAIType, srv.URL)}
		realFiltered(t, req, block)
		_, err := testClient(t).Serve(context.Background(), httptest.NewRecorder(), req)
		srv.Close()
		var r *Refusal
		if !errors.As(err, &r) {
			t.Errorf("surface %d: err=%v, want the arguments blocked", s, err)
		}
	}
}

// A tool call continued in a later delta after another call's arguments keeps its
// filter: a chat caller joins each call's arguments by index.
func TestToolCallArgumentsAreOneTextAcrossDeltas(t *testing.T) {
	t.Parallel()
	block := responseRule(gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_EMAIL, gatehousev1.GuardrailMode_GUARDRAIL_MODE_BLOCK)
	srv := httptest.NewServer(answerSSE(
		chatDelta(`{"tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"f","arguments":"{\"p\":\"bob@"}}]}`, ""),
		chatDelta(`{"tool_calls":[{"index":1,"id":"b","type":"function","function":{"name":"g","arguments":"{}"}},{"index":0,"function":{"arguments":"example.com\"}"}}]}`, "tool_calls"), `[DONE]`))
	defer srv.Close()
	req := parseGoldenRequest(t, SurfaceChat, []byte(surfaceBody(SurfaceChat, true)))
	req.Candidates = []*runtime.Model{testModel(t, openAIType, srv.URL)}
	realFiltered(t, req, block)
	_, err := testClient(t).Serve(context.Background(), httptest.NewRecorder(), req)
	var r *Refusal
	if !errors.As(err, &r) {
		t.Errorf("err=%v, want the arguments blocked", err)
	}
}

// Many tool calls in one delta each keep their arguments, whole (each ends where the
// next begins, in one pass over the delta).
func TestManyToolCallsInOneDelta(t *testing.T) {
	t.Parallel()
	const n = 3000
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"c%d","type":"function","function":{"name":"f","arguments":"{\"n\":%d}"}}`, i, i)
	}
	got, err := serveRedacted(t, SurfaceChat, openAIType, surfaceBody(SurfaceChat, true), answerSSE(
		chatDelta(`{"tool_calls":[`+b.String()+`]}`, ""), chatDelta(`{}`, "tool_calls"), `[DONE]`))
	if err != nil {
		t.Fatal(err)
	}
	_, args, _ := chatStreamChoices(t, got)
	if len(args[0]) != n {
		t.Fatalf("%d tool calls, want %d", len(args[0]), n)
	}
	for i := range n {
		if want := fmt.Sprintf(`{"n":%d}`, i); args[0][i] != want {
			t.Fatalf("call %d: %q, want %q", i, args[0][i], want)
		}
	}
}
