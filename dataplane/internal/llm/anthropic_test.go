package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// TestAnthropicThinking maps the chat reasoning settings to Anthropic's thinking.
func TestAnthropicThinking(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name      string
		body      string
		maxTokens int64  // the request's after translation
		thinking  string // "" for none
		refused   string // the refused parameter
	}{
		{"no reasoning", `{"messages":[{"role":"user","content":"x"}]}`, defaultAnthropicMaxTokens, "", ""},
		{"none", `{"reasoning_effort":"none","messages":[{"role":"user","content":"x"}]}`, defaultAnthropicMaxTokens, "", ""},
		{"minimal", `{"reasoning_effort":"minimal","messages":[{"role":"user","content":"x"}]}`, defaultAnthropicMaxTokens, "", ""},
		{"low without max_tokens", `{"reasoning_effort":"low","messages":[{"role":"user","content":"x"}]}`, 1024 + defaultAnthropicMaxTokens, `{"budget_tokens":1024,"type":"enabled"}`, ""},
		{"high within a large max_tokens", `{"reasoning_effort":"high","max_tokens":40000,"messages":[{"role":"user","content":"x"}]}`, 40000, `{"budget_tokens":16384,"type":"enabled"}`, ""},
		{"medium shrinks to half of max_tokens", `{"reasoning_effort":"medium","max_completion_tokens":3000,"messages":[{"role":"user","content":"x"}]}`, 3000, `{"budget_tokens":1500,"type":"enabled"}`, ""},
		{"the minimum budget when half is less", `{"reasoning_effort":"high","max_tokens":1500,"messages":[{"role":"user","content":"x"}]}`, 1500, `{"budget_tokens":1024,"type":"enabled"}`, ""},
		{"max_tokens too small to think", `{"reasoning_effort":"low","max_tokens":1024,"messages":[{"role":"user","content":"x"}]}`, 0, "", "max_tokens"},
		{"unknown effort", `{"reasoning_effort":"extreme","messages":[{"role":"user","content":"x"}]}`, 0, "", "reasoning_effort"},
		{"anthropic thinking object as it is", `{"thinking":{"type":"enabled","budget_tokens":2048},"max_tokens":5000,"messages":[{"role":"user","content":"x"}]}`, 5000, `{"type":"enabled","budget_tokens":2048}`, ""},
		{"thinking that is not an object", `{"thinking":true,"messages":[{"role":"user","content":"x"}]}`, 0, "", "thinking"},
		{"a thinking object's budget above the default answer", `{"thinking":{"type":"enabled","budget_tokens":8000},"messages":[{"role":"user","content":"x"}]}`,
			8000 + defaultAnthropicMaxTokens, `{"type":"enabled","budget_tokens":8000}`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b chatBody
			if err := json.Unmarshal([]byte(c.body), &b); err != nil {
				t.Fatal(err)
			}
			out, err := chatToAnthropic(&b, "claude")
			if c.refused != "" {
				var ie *InvalidRequestError
				if !errors.As(err, &ie) || ie.Param != c.refused {
					t.Fatalf("err %v, want a refusal of %s", err, c.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.MaxTokens != c.maxTokens || string(out.Thinking) != c.thinking {
				t.Fatalf("max_tokens %d thinking %s, want %d %s", out.MaxTokens, out.Thinking, c.maxTokens, c.thinking)
			}
		})
	}
}

// TestMessagesReplayRedactedThinking: a Messages caller that sends back a conversation
// whose thinking block a guardrail redacted (and so unsigned) reaches Anthropic
// without that block, which Anthropic would refuse; signed and redacted_thinking
// blocks, and everything else, go as the caller wrote them.
func TestMessagesReplayRedactedThinking(t *testing.T) {
	t.Parallel()
	const answer = `{"id":"msg_2","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}`
	for _, tt := range []struct {
		name string
		// messages is what the caller sends, want what Anthropic must get.
		messages, want string
	}{
		{
			name: "unsigned blocks dropped",
			messages: `[{"role":"user","content":"Mail Ann."},` +
				`{"role":"assistant","content":[` +
				`{"type":"thinking","thinking":"Mail [REDACTED:email] then."},` +
				`{"type":"thinking","thinking":"Nothing to hide.","signature":"sig-clean"},` +
				`{"type":"redacted_thinking","data":"enc"},` +
				`{"type":"thinking","thinking":"Again [REDACTED:email].","signature":""},` +
				`{"type":"text","text":"Sending.","cache_control":{"type":"ephemeral"}},` +
				`{"type":"tool_use","id":"toolu_1","name":"mail","input":{"to":"[REDACTED:email]"}}],"x_extra":1},` +
				`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sent"}]}]`,
			want: `[{"role":"user","content":"Mail Ann."},` +
				`{"content":[` +
				`{"type":"thinking","thinking":"Nothing to hide.","signature":"sig-clean"},` +
				`{"type":"redacted_thinking","data":"enc"},` +
				`{"type":"text","text":"Sending.","cache_control":{"type":"ephemeral"}},` +
				`{"type":"tool_use","id":"toolu_1","name":"mail","input":{"to":"[REDACTED:email]"}}],"role":"assistant","x_extra":1},` +
				`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sent"}]}]`,
		},
		{
			name:     "signed blocks and user text untouched",
			messages: `[{"role":"user","content":[{"type":"text","text":"{\"type\":\"thinking\"}"}]},{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"s"},{"type":"text","text":"a"}]},{"role":"user","content":"b"}]`,
			want:     `[{"role":"user","content":[{"type":"text","text":"{\"type\":\"thinking\"}"}]},{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"s"},{"type":"text","text":"a"}]},{"role":"user","content":"b"}]`,
		},
		{
			// Dropping the turn would leave two user turns in a row; an empty turn
			// is refused (only a final assistant turn may be empty).
			name:     "emptied turn between user turns keeps a placeholder",
			messages: `[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"thinking","thinking":"[REDACTED]"}]},{"role":"user","content":"b"}]`,
			want:     `[{"role":"user","content":"a"},{"content":[{"type":"text","text":"[thinking omitted]"}],"role":"assistant"},{"role":"user","content":"b"}]`,
		},
		{
			name:     "emptied final turn dropped",
			messages: `[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"thinking","thinking":"x"}]}]`,
			want:     `[{"role":"user","content":"a"}]`,
		},
		{
			name:     "two emptied turns in a row",
			messages: `[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"thinking","thinking":"x"}]},{"role":"assistant","content":[{"type":"thinking","thinking":"y"}]},{"role":"user","content":"b"}]`,
			want:     `[{"role":"user","content":"a"},{"content":[{"type":"text","text":"[thinking omitted]"}],"role":"assistant"},{"role":"user","content":"b"}]`,
		},
		{
			name:     "emptied first turn dropped",
			messages: `[{"role":"assistant","content":[{"type":"thinking","thinking":"x"}]},{"role":"user","content":"a"}]`,
			want:     `[{"role":"user","content":"a"}]`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := make(chan []byte, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got <- b
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, answer)
			}))
			t.Cleanup(srv.Close)
			c := testClient(t)
			req := parseGoldenRequest(t, SurfaceMessages, []byte(`{"model":"m","max_tokens":100,"thinking":{"type":"enabled","budget_tokens":1024},"messages":`+tt.messages+`}`))
			req.Candidates = []*runtime.Model{testModel(t, anthropicType, srv.URL)}
			rec := httptest.NewRecorder()
			if _, err := c.Serve(context.Background(), rec, req); err != nil || rec.Code != http.StatusOK {
				t.Fatalf("serve: %v: %d %s", err, rec.Code, rec.Body)
			}
			var sent struct {
				Messages json.RawMessage `json:"messages"`
				Thinking json.RawMessage `json:"thinking"`
			}
			if err := json.Unmarshal(<-got, &sent); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(sent.Messages)); diff != "" {
				t.Errorf("messages sent to Anthropic (-want +got):\n%s", diff)
			}
			if string(sent.Thinking) != `{"type":"enabled","budget_tokens":1024}` {
				t.Errorf("thinking sent: %s", sent.Thinking)
			}
		})
	}
}

// TestAnthropicSampling: chat's sampling parameters are fitted to what the Messages
// API takes.
func TestAnthropicSampling(t *testing.T) {
	t.Parallel()
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	show := func(p *float64) string {
		if p == nil {
			return "-"
		}
		return f(*p)
	}
	for _, c := range []struct {
		name, extra string
		temp, topP  string
	}{
		{"as they are", `"temperature":0.7`, "0.7", "-"},
		{"temperature above 1", `"temperature":1.6`, "1", "-"},
		{"top_p alone", `"top_p":0.9`, "-", "0.9"},
		{"both: temperature kept", `"temperature":0.2,"top_p":0.9`, "0.2", "-"},
		{"thinking: no temperature, a low top_p dropped", `"temperature":0.2,"top_p":0.5,"reasoning_effort":"low"`, "-", "-"},
		{"thinking: a top_p of 0.95 kept", `"top_p":0.97,"reasoning_effort":"low"`, "-", "0.97"},
	} {
		var b chatBody
		if err := json.Unmarshal([]byte(`{`+c.extra+`,"messages":[{"role":"user","content":"x"}]}`), &b); err != nil {
			t.Fatal(err)
		}
		out, err := chatToAnthropic(&b, "claude")
		if err != nil {
			t.Fatal(err)
		}
		if show(out.Temperature) != c.temp || show(out.TopP) != c.topP {
			t.Errorf("%s: temperature %s top_p %s, want %s %s", c.name, show(out.Temperature), show(out.TopP), c.temp, c.topP)
		}
	}
}

// TestMessagesSystemBlocksKeepApart: several system blocks reach a chat upstream as one
// system message with a line between them.
func TestMessagesSystemBlocksKeepApart(t *testing.T) {
	t.Parallel()
	var m messagesBody
	if err := json.Unmarshal([]byte(`{"model":"m","max_tokens":5,"system":[{"type":"text","text":"You are X."},{"type":"text","text":"Be brief."}],"messages":[{"role":"user","content":"hi"}]}`), &m); err != nil {
		t.Fatal(err)
	}
	out, _, err := messagesToChat(&m)
	if err != nil {
		t.Fatal(err)
	}
	if out.Messages[0].Role != "system" || contentText(out.Messages[0].Content) != "You are X.\nBe brief." {
		t.Fatalf("system message = %+v", out.Messages[0])
	}
}

// TestMessagesToolResultForChat: a tool result's error flag is said in its text, and
// an image in it is one the chat form cannot carry (never dropped silently).
func TestMessagesToolResultForChat(t *testing.T) {
	t.Parallel()
	var m messagesBody
	body := `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"go"},` +
		`{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"run","input":{}},{"type":"tool_use","id":"t2","name":"shot","input":{}}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","is_error":true,"content":"no such file"},` +
		`{"type":"tool_result","tool_use_id":"t2","content":[{"type":"text","text":"screen:"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]}]}]}`
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	out, unsupported, err := messagesToChat(&m)
	if err != nil {
		t.Fatal(err)
	}
	if unsupported == nil || unsupported.Param != "messages.2.content.1.content.1" {
		t.Errorf("unsupported = %v", unsupported)
	}
	var tools []string
	for _, msg := range out.Messages {
		if msg.Role == "tool" {
			tools = append(tools, msg.ToolCallID+": "+contentText(msg.Content))
		}
	}
	if diff := cmp.Diff([]string{"t1: Error: no such file", "t2: screen:"}, tools); diff != "" {
		t.Errorf("tool messages (-want +got):\n%s", diff)
	}
}

// TestBlankUserTurnsForAnthropic: empty or blank user text (which chat takes and
// Anthropic refuses) is left out; a conversation of nothing else is a 400 naming it.
func TestBlankUserTurnsForAnthropic(t *testing.T) {
	t.Parallel()
	var b chatBody
	if err := json.Unmarshal([]byte(`{"messages":[{"role":"user","content":"  "},{"role":"user","content":[{"type":"text","text":""},{"type":"text","text":"hi"}]}]}`), &b); err != nil {
		t.Fatal(err)
	}
	out, err := chatToAnthropic(&b, "c")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(out.Messages)
	if string(got) != `[{"role":"user","content":[{"type":"text","text":"hi"}]}]` {
		t.Errorf("messages = %s", got)
	}
	b = chatBody{}
	if err := json.Unmarshal([]byte(`{"messages":[{"role":"user","content":""}]}`), &b); err != nil {
		t.Fatal(err)
	}
	var ie *InvalidRequestError
	if _, err := chatToAnthropic(&b, "c"); !errors.As(err, &ie) || ie.Param != "messages[0].content" {
		t.Errorf("only a blank turn: %v", err)
	}
	// A blank last turn would leave the assistant's turn last (a prefill): refused.
	b = chatBody{}
	if err := json.Unmarshal([]byte(`{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},{"role":"user","content":" "}]}`), &b); err != nil {
		t.Fatal(err)
	}
	if _, err := chatToAnthropic(&b, "c"); !errors.As(err, &ie) || ie.Param != "messages[2].content" {
		t.Errorf("a blank last turn: %v", err)
	}
}

// Claude's structured outputs refuse numeric and length constraints: they move into
// the description, where the model still reads them; members named like keywords are
// members, not keywords.
func TestAnthropicSchema(t *testing.T) {
	t.Parallel()
	in := `{"type":"object","additionalProperties":false,"required":["minimum","name","tags"],"properties":{` +
		`"minimum":{"type":"integer","minimum":0,"maximum":10,"description":"Lowest."},` +
		`"name":{"type":"string","maxLength":20},` +
		`"tags":{"type":"array","minItems":2,"items":{"type":"string","minLength":1}}}}`
	var got map[string]any
	if err := json.Unmarshal(anthropicSchema(json.RawMessage(in)), &got); err != nil {
		t.Fatal(err)
	}
	props := got["properties"].(map[string]any)
	if len(props) != 3 || got["additionalProperties"] != false {
		t.Fatalf("members changed: %v", got)
	}
	minimum := props["minimum"].(map[string]any)
	if _, ok := minimum["minimum"]; ok || minimum["description"] != "Lowest. {minimum: 0, maximum: 10}" {
		t.Errorf("minimum = %v", minimum)
	}
	if name := props["name"].(map[string]any); name["description"] != "{maxLength: 20}" || name["maxLength"] != nil {
		t.Errorf("name = %v", name)
	}
	tags := props["tags"].(map[string]any)
	if tags["minItems"] != nil || tags["items"].(map[string]any)["description"] != "{minLength: 1}" {
		t.Errorf("tags = %v", tags)
	}
	plain := `{"type":"object","properties":{"a":{"type":"string"}}}`
	if got := string(anthropicSchema(json.RawMessage(plain))); got != plain {
		t.Errorf("a schema with nothing to move changed: %s", got)
	}
}

func TestStrictReady(t *testing.T) {
	t.Parallel()
	for schema, want := range map[string]bool{
		`{"type":"object","properties":{"a":{"type":"string"}},"required":["a"],"additionalProperties":false}`:                                      true,
		`{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},"required":["a"],"additionalProperties":false}`:                false,
		`{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}`:                                                                   false,
		`{"type":"object","properties":{"a":{"type":"object","properties":{"x":{"type":"number"}}}},"required":["a"],"additionalProperties":false}`: false,
		`{"type":"array","items":{"type":"object","properties":{"x":{"type":"number"}},"required":["x"],"additionalProperties":false}}`:             true,
		`{"anyOf":[{"type":"object","properties":{"x":{"type":"number"}},"additionalProperties":false}]}`:                                           false,
		// A member named "properties" is a member.
		`{"type":"object","properties":{"properties":{"type":"string"}},"required":["properties"],"additionalProperties":false}`: true,
	} {
		if got := strictReady(json.RawMessage(schema)); got != want {
			t.Errorf("%s: %v, want %v", schema, got, want)
		}
	}
}
