package llm

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestRespFilterEveryText: every text of a native Responses answer goes through a
// filter of its own kind — message text, refusal, reasoning summary and text, tool
// arguments and custom tool input — complete or streamed, and a streamed text's
// whole copies are what its deltas said.
func TestRespFilterEveryText(t *testing.T) {
	body := `{"id":"resp_1","object":"response","output":[` +
		`{"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"think secret"}],"content":[{"type":"reasoning_text","text":"deep secret"}]},` +
		`{"type":"function_call","id":"fc_1","call_id":"c1","name":"f","arguments":"{\"q\":\"secret\"}"},` +
		`{"type":"custom_tool_call","id":"ctc_1","call_id":"c2","name":"apply_patch","input":"patch secret"},` +
		`{"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":"a secret"},{"type":"refusal","refusal":"no secret"}]},` +
		`{"type":"web_search_call","id":"ws_1","status":"completed"}]}`
	req := &Request{Surface: SurfaceResponses}
	log := filtered(req)
	out, err := filterResponsesBody(req, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	if strings.Contains(got, "secret") || strings.Count(got, "[REDACTED]") != 6 || !strings.Contains(got, `"ws_1"`) {
		t.Fatalf("filtered body = %s", got)
	}
	kinds := map[string]bool{}
	for _, s := range log.texts {
		kinds[s[:1]] = true
	}
	for _, k := range []TextKind{TextContent, TextReasoning, TextToolArguments, TextRefusal} {
		if !kinds[string(rune('0'+k))] {
			t.Errorf("no filter of kind %d ran: %v", k, log.texts)
		}
	}

	// A card number anywhere refuses the answer.
	req = &Request{Surface: SurfaceResponses}
	filtered(req)
	if _, err := filterResponsesBody(req, []byte(strings.Replace(body, "deep secret", "4111", 1))); err == nil {
		t.Fatal("a blocked reasoning text let the answer through")
	}

	// Streamed: the filter holds each text back until its done event, which then
	// comes after one delta of the filtered text; every copy agrees.
	req = &Request{Surface: SurfaceResponses}
	filtered(req)
	f := newRespFilter(req)
	var sent []string
	for _, ev := range []string{
		`{"type":"response.output_item.added","item":{"type":"message","id":"msg_1","content":[]}}`,
		`{"type":"response.content_part.added","item_id":"msg_1","content_index":0,"part":{"type":"output_text","text":""}}`,
		`{"type":"response.output_text.delta","item_id":"msg_1","content_index":0,"delta":"a sec"}`,
		`{"type":"response.output_text.delta","item_id":"msg_1","content_index":0,"delta":"ret"}`,
		`{"type":"response.output_text.done","item_id":"msg_1","content_index":0,"text":"a secret"}`,
		`{"type":"response.content_part.done","item_id":"msg_1","content_index":0,"part":{"type":"output_text","text":"a secret"}}`,
		`{"type":"response.reasoning_summary_text.delta","item_id":"rs_1","summary_index":0,"delta":"secret"}`,
		`{"type":"response.reasoning_summary_text.done","item_id":"rs_1","summary_index":0,"text":"secret"}`,
		`{"type":"response.completed","response":{"output":[{"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"secret"}]},{"type":"message","id":"msg_1","content":[{"type":"output_text","text":"a secret"}]}]}}`,
	} {
		outs, err := f.event([]byte(ev))
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range outs {
			sent = append(sent, string(o))
		}
	}
	all := strings.Join(sent, "\n")
	if strings.Contains(all, "secret") || strings.Count(all, `"delta":"a [REDACTED]"`) != 1 || strings.Count(all, "a [REDACTED]") != 4 ||
		strings.Count(all, `"delta":"[REDACTED]"`) != 1 {
		t.Fatalf("sent:\n%s", all)
	}
	// A type the gateway does not know, carrying a delta, ends the stream.
	if _, err := f.event([]byte(`{"type":"response.audio.delta","delta":"AAAA"}`)); err == nil {
		t.Fatal("an uncheckable delta went through")
	}
}

// TestRespFilterStreamShapes: the shapes a real stream takes — a tool call announced
// with empty arguments and then streamed, a done event with no deltas before it, log
// probabilities, a hosted tool's item, renumbered events — each come out filtered.
func TestRespFilterStreamShapes(t *testing.T) {
	req := &Request{Surface: SurfaceResponses}
	filtered(req)
	f := newRespFilter(req)
	var sent []string
	for _, ev := range []string{
		`{"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"type":"function_call","id":"fc_1","call_id":"c","name":"f","arguments":""}}`,
		`{"type":"response.function_call_arguments.delta","sequence_number":2,"output_index":0,"item_id":"fc_1","delta":"{\"q\":\"sec"}`,
		`{"type":"response.function_call_arguments.delta","sequence_number":3,"output_index":0,"item_id":"fc_1","delta":"ret\"}"}`,
		`{"type":"response.function_call_arguments.done","sequence_number":4,"output_index":0,"item_id":"fc_1","arguments":"{\"q\":\"secret\"}"}`,
		`{"type":"response.output_item.done","sequence_number":5,"output_index":0,"item":{"type":"function_call","id":"fc_1","call_id":"c","name":"f","arguments":"{\"q\":\"secret\"}"}}`,
		`{"type":"response.output_item.added","sequence_number":6,"output_index":1,"item":{"type":"message","id":"msg_1","content":[{"type":"output_text","text":""}]}}`,
		`{"type":"response.output_text.done","sequence_number":7,"output_index":1,"item_id":"msg_1","content_index":0,"text":"all secret","logprobs":[{"token":"secret"}]}`,
		`{"type":"response.output_item.done","sequence_number":8,"output_index":2,"item":{"type":"web_search_call","id":"ws_1","status":"completed","action":{"type":"search","query":"secret plans"}}}`,
		`{"type":"response.completed","sequence_number":9,"response":{"output":[` +
			`{"type":"function_call","id":"fc_1","arguments":"{\"q\":\"secret\"}"},` +
			`{"type":"message","id":"msg_1","content":[{"type":"output_text","text":"all secret","logprobs":[{"token":"secret"}]}]},` +
			`{"type":"web_search_call","id":"ws_1","action":{"type":"search","query":"secret plans"}}]}}`,
	} {
		outs, err := f.event([]byte(ev))
		if err != nil {
			t.Fatalf("%s: %v", ev, err)
		}
		for _, o := range outs {
			sent = append(sent, string(o))
		}
	}
	all := strings.Join(sent, "\n")
	if strings.Contains(all, "secret") || !strings.Contains(all, `"text":"all [REDACTED]"`) || !strings.Contains(all, `"query":"[REDACTED] plans"`) ||
		!strings.Contains(all, `"delta":"{\"q\":\"[REDACTED]\"}"`) || !strings.Contains(all, `"logprobs":[]`) {
		t.Fatalf("sent:\n%s", all)
	}
	// Two deltas were held back and one released at the done event: the events the
	// caller gets are numbered one by one all the same.
	prev := 0
	for _, s := range sent {
		var ev struct {
			N int `json:"sequence_number"`
		}
		_ = json.Unmarshal([]byte(s), &ev)
		if ev.N != prev+1 {
			t.Fatalf("sequence numbers do not count up at %s:\n%s", s, all)
		}
		prev = ev.N
	}
	if prev != 8 {
		t.Fatalf("last sequence number %d, want 8 (9 events, 2 held back, 1 released)", prev)
	}
	// Shapes the filter cannot read end the answer.
	for _, bad := range []string{
		`{"type":"response.output_text.delta","output_index":"x","delta":"a"}`,
		`{"type":"response.output_item.done","output_index":0,"item":"secret"}`,
		`{"type":"response.completed","response":{"output":{"a":1}}}`,
		`{"type":"response.output_item.done","output_index":0,"item":{"type":"message","content":[{"type":"output_text","text":7}]}}`,
	} {
		if _, err := newRespFilter(req).event([]byte(bad)); err == nil {
			t.Errorf("%s went through", bad)
		}
	}
}
