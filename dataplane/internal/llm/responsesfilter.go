package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// A native Responses answer for a team with response guardrails is filtered as it is
// relayed. Every text the model wrote sits at a place — a content part of a message
// item, a refusal, a reasoning summary or reasoning text, a tool call's arguments or
// custom input — and reaches the caller several times in a stream: as deltas, then
// whole in the `.done` event, the part's `.done`, the item's `.done` and the final
// response. Each place gets its own filter (the first message text the request's
// Filter, every other one a filter from NewFilter, by kind); deltas go through it as
// they come, what it holds back is released as one more delta before the `.done`
// event, and every whole copy of the text is replaced by what the filter released.
// A stream event of a type the gateway does not know that carries a delta ends the
// stream: the text in it could not be checked.

// place is where a text sits in a Responses answer.
type place struct {
	item  string // the item's id
	index int    // content, summary or part index; 0 for tool input
	part  byte   // 'c' output text, 'r' refusal, 's' reasoning summary, 't' reasoning text, 'a' tool input
}

func (p place) kind() TextKind {
	switch p.part {
	case 'r':
		return TextRefusal
	case 's', 't':
		return TextReasoning
	case 'a':
		return TextToolArguments
	}
	return TextContent
}

// respFilter filters the texts of one native Responses answer.
type respFilter struct {
	req      *Request
	mainUsed bool
	filters  map[place]ContentFilter
	// out is what each place's filter released; closed says its filter was flushed.
	out    map[place]*strings.Builder
	closed map[place]bool
}

func newRespFilter(req *Request) *respFilter {
	return &respFilter{req: req, filters: map[place]ContentFilter{}, out: map[place]*strings.Builder{}, closed: map[place]bool{}}
}

// filter returns the place's filter, made on first use; nil lets its text through.
func (f *respFilter) filter(p place) (ContentFilter, error) {
	if cf, ok := f.filters[p]; ok {
		return cf, nil
	}
	var cf ContentFilter
	switch {
	case p.kind() == TextContent && !f.mainUsed:
		cf, f.mainUsed = f.req.Filter, true
	case f.req.NewFilter != nil:
		cf = f.req.NewFilter(p.kind())
	case p.kind() == TextContent:
		return nil, errNoChoiceFilter
	}
	f.filters[p] = cf
	f.out[p] = &strings.Builder{}
	return cf, nil
}

// delta filters the next piece of the place's text.
func (f *respFilter) delta(p place, d string) (string, error) {
	if f.closed[p] {
		return "", fmt.Errorf("response filter: %w: text after its end", ErrUpstreamBadResponse)
	}
	cf, err := f.filter(p)
	if err != nil {
		return "", err
	}
	out := d
	if cf != nil {
		if out, err = cf.Filter(d); err != nil {
			return "", err
		}
	}
	f.out[p].WriteString(out)
	return out, nil
}

// end flushes the place's filter: what it held back, and the whole filtered text.
func (f *respFilter) end(p place) (rest, whole string, err error) {
	if f.closed[p] {
		return "", f.out[p].String(), nil
	}
	cf, err := f.filter(p)
	if err != nil {
		return "", "", err
	}
	if cf != nil {
		if rest, err = cf.Flush(); err != nil {
			return "", "", err
		}
	}
	f.out[p].WriteString(rest)
	f.closed[p] = true
	return rest, f.out[p].String(), nil
}

// whole returns the filtered form of a complete text at p: what the place's filter
// released if its text came as deltas, else the text filtered now.
func (f *respFilter) whole(p place, text string) (string, error) {
	if f.closed[p] {
		return f.out[p].String(), nil
	}
	if _, err := f.delta(p, text); err != nil {
		return "", err
	}
	_, whole, err := f.end(p)
	return whole, err
}

// object is a JSON object whose members can be replaced; changed says one was.
type object struct {
	m       map[string]json.RawMessage
	changed bool
}

func decodeObject(raw []byte) (*object, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return nil, false
	}
	return &object{m: m}, true
}

func (o *object) str(k string) string {
	var s string
	if v, ok := o.m[k]; ok {
		_ = json.Unmarshal(v, &s)
	}
	return s
}

func (o *object) int(k string) int {
	var n int
	if v, ok := o.m[k]; ok {
		_ = json.Unmarshal(v, &n)
	}
	return n
}

func (o *object) set(k string, v any) {
	b, _ := json.Marshal(v)
	if !bytes.Equal(o.m[k], b) {
		o.m[k], o.changed = b, true
	}
}

func (o *object) encode(raw []byte) []byte {
	if !o.changed {
		return raw
	}
	b, _ := json.Marshal(o.m)
	return b
}

// text filters the string member k of o, a complete text at p.
func (f *respFilter) text(o *object, k string, p place) error {
	v, ok := o.m[k]
	if !ok || isNull(v) {
		return nil
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return nil
	}
	out, err := f.whole(p, s)
	if err != nil {
		return err
	}
	o.set(k, out)
	return nil
}

// parts filters the texts of the array member k of o (content parts or summaries),
// each a complete text at place (item, its index, part); nil leaves one alone.
func (f *respFilter) parts(o *object, k, item string, part func(typ string) (byte, string)) error {
	var list []json.RawMessage
	if v, ok := o.m[k]; !ok || json.Unmarshal(v, &list) != nil {
		return nil
	}
	changed := false
	for j, raw := range list {
		po, ok := decodeObject(raw)
		if !ok {
			continue
		}
		kind, member := part(po.str("type"))
		if kind == 0 {
			continue
		}
		if err := f.text(po, member, place{item, j, kind}); err != nil {
			return err
		}
		if po.changed {
			list[j], changed = po.encode(raw), true
		}
	}
	if changed {
		o.set(k, list)
	}
	return nil
}

func contentPartText(typ string) (byte, string) {
	switch typ {
	case "output_text":
		return 'c', "text"
	case "refusal":
		return 'r', "refusal"
	case "reasoning_text":
		return 't', "text"
	}
	return 0, ""
}

func summaryPartText(typ string) (byte, string) {
	if typ == "summary_text" {
		return 's', "text"
	}
	return 0, ""
}

// item filters the texts of one output item.
func (f *respFilter) item(raw []byte) ([]byte, error) {
	o, ok := decodeObject(raw)
	if !ok {
		return raw, nil
	}
	id := o.str("id")
	var err error
	switch o.str("type") {
	case "message":
		err = f.parts(o, "content", id, contentPartText)
	case "reasoning":
		if err = f.parts(o, "summary", id, summaryPartText); err == nil {
			err = f.parts(o, "content", id, contentPartText)
		}
	case "function_call":
		err = f.text(o, "arguments", place{id, 0, 'a'})
	case "custom_tool_call":
		err = f.text(o, "input", place{id, 0, 'a'})
	}
	if err != nil {
		return nil, err
	}
	return o.encode(raw), nil
}

// response filters the texts of a response object's output.
func (f *respFilter) response(raw []byte) ([]byte, error) {
	o, ok := decodeObject(raw)
	if !ok {
		return raw, nil
	}
	var items []json.RawMessage
	if v, ok := o.m["output"]; !ok || json.Unmarshal(v, &items) != nil {
		return raw, nil
	}
	changed := false
	for i, it := range items {
		out, err := f.item(it)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(out, it) {
			items[i], changed = out, true
		}
	}
	if changed {
		o.set("output", items)
	}
	return o.encode(raw), nil
}

// streamed says where the text of a delta or done event of type typ sits and which
// member carries it whole in the done event; ok is false for other types.
func streamed(typ string, ev *object) (p place, whole string, delta, ok bool) {
	base, isDelta := strings.CutSuffix(typ, ".delta")
	if !isDelta {
		var isDone bool
		if base, isDone = strings.CutSuffix(typ, ".done"); !isDone {
			return place{}, "", false, false
		}
	}
	item := ev.str("item_id")
	switch base {
	case "response.output_text":
		return place{item, ev.int("content_index"), 'c'}, "text", isDelta, true
	case "response.refusal":
		return place{item, ev.int("content_index"), 'r'}, "refusal", isDelta, true
	case "response.reasoning_summary_text":
		return place{item, ev.int("summary_index"), 's'}, "text", isDelta, true
	case "response.reasoning_text":
		return place{item, ev.int("content_index"), 't'}, "text", isDelta, true
	case "response.function_call_arguments":
		return place{item, 0, 'a'}, "arguments", isDelta, true
	case "response.custom_tool_call_input":
		return place{item, 0, 'a'}, "input", isDelta, true
	}
	return place{}, "", false, false
}

// event filters one stream event's data and returns the data to relay in its place:
// none, it, or a delta of held-back text and then it.
func (f *respFilter) event(data []byte) ([][]byte, error) {
	ev, ok := decodeObject(data)
	if !ok {
		return [][]byte{data}, nil
	}
	typ := ev.str("type")
	if p, member, isDelta, ok := streamed(typ, ev); ok {
		if isDelta {
			out, err := f.delta(p, ev.str("delta"))
			if err != nil || out == "" {
				return nil, err
			}
			ev.set("delta", out)
			return [][]byte{ev.encode(data)}, nil
		}
		rest, whole, err := f.end(p)
		if err != nil {
			return nil, err
		}
		ev.set(member, whole)
		done := ev.encode(data)
		if rest == "" {
			return [][]byte{done}, nil
		}
		d := &object{m: map[string]json.RawMessage{}}
		for k, v := range ev.m {
			if k != member {
				d.m[k] = v
			}
		}
		d.set("type", strings.TrimSuffix(typ, ".done")+".delta")
		d.set("delta", rest)
		return [][]byte{d.encode(nil), done}, nil
	}
	var err error
	switch {
	case typ == "response.content_part.added" || typ == "response.content_part.done":
		err = f.member(ev, "part", func(raw []byte) ([]byte, error) { return f.partOf(ev, raw, contentPartText) })
	case typ == "response.reasoning_summary_part.added" || typ == "response.reasoning_summary_part.done":
		err = f.member(ev, "part", func(raw []byte) ([]byte, error) { return f.partOf(ev, raw, summaryPartText) })
	case typ == "response.output_item.added" || typ == "response.output_item.done":
		err = f.member(ev, "item", f.item)
	case strings.HasPrefix(typ, "response.") && ev.m["response"] != nil:
		err = f.member(ev, "response", f.response)
	case ev.m["delta"] != nil:
		return nil, &Refusal{Code: "content_unverifiable", Message: fmt.Sprintf("The model's answer carried a %q event, whose text this team's response guardrails cannot check.", typ)}
	}
	if err != nil {
		return nil, err
	}
	return [][]byte{ev.encode(data)}, nil
}

// member replaces the member k of ev by fn of it.
func (f *respFilter) member(ev *object, k string, fn func([]byte) ([]byte, error)) error {
	raw, ok := ev.m[k]
	if !ok {
		return nil
	}
	out, err := fn(raw)
	if err != nil {
		return err
	}
	if !bytes.Equal(out, raw) {
		ev.m[k], ev.changed = out, true
	}
	return nil
}

// partOf filters one part of a part event: a complete text at the event's item and
// index. An added part's text is usually empty: only a non-empty one is filtered.
func (f *respFilter) partOf(ev *object, raw []byte, part func(string) (byte, string)) ([]byte, error) {
	po, ok := decodeObject(raw)
	if !ok {
		return raw, nil
	}
	kind, member := part(po.str("type"))
	if kind == 0 {
		return raw, nil
	}
	index := ev.int("content_index")
	if kind == 's' {
		index = ev.int("summary_index")
	}
	if po.str(member) == "" && !f.closed[place{ev.str("item_id"), index, kind}] {
		return raw, nil
	}
	if err := f.text(po, member, place{ev.str("item_id"), index, kind}); err != nil {
		return nil, err
	}
	return po.encode(raw), nil
}

// responsesFiltered relays a native Responses stream through the team's response
// filters (see respFilter).
func (s *streamRelay) responsesFiltered() error {
	rf := newRespFilter(s.req)
	sealer := s.req.Responses.sealer
	for {
		_, name, data, end, err := s.nextEvent()
		if end {
			return err
		}
		if data == nil {
			continue // a comment or a keep-alive
		}
		s.chars += textLen(data, responsesTextKeys)
		s.responsesUsage(data)
		out, err := rf.event(data)
		if err != nil {
			code, msg := "upstream_bad_response", "The model provider sent an answer the gateway could not read."
			var ref *Refusal
			if errors.As(err, &ref) {
				code, msg = ref.Code, ref.Message
			}
			_ = s.send(s.failEvent(code, msg))
			return fmt.Errorf("response filter: %w", err)
		}
		for _, d := range out {
			var b []byte
			if name != nil {
				b = fmt.Appendf(b, "event: %s\n", responsesEventType(d))
			}
			b = fmt.Appendf(b, "data: %s\n\n", d)
			if s.req.CaptureText && responsesEventType(d) == "response.output_text.delta" {
				var ev struct{ Delta string }
				if json.Unmarshal(d, &ev) == nil {
					s.capture(ev.Delta)
				}
			}
			if err := s.send(sealer.apply(b)); err != nil {
				return err
			}
		}
	}
}

// filterResponsesBody filters a complete native Responses answer.
func filterResponsesBody(req *Request, body []byte) ([]byte, error) {
	out, err := newRespFilter(req).response(body)
	if err != nil {
		return nil, fmt.Errorf("response filter: %w", err)
	}
	return out, nil
}
