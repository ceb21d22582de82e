package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// A native Responses answer for a team with response guardrails is filtered as it is
// relayed. Every text the model wrote sits at a place — a content part of a message,
// a refusal, a reasoning summary or reasoning text, a tool call's arguments or custom
// input, any other string of a hosted tool's item (a search query, code, a command) —
// and reaches the caller several times in a stream: as deltas, then whole in the
// `.done` event, the part's `.done`, the item's `.done` and the final response. Each
// place gets its own filter (the first message text the request's Filter, every
// other one a filter from NewFilter, by kind); deltas go through it as they come, what
// it holds back is released as one more delta before the `.done` event, and every
// whole copy of the text is replaced by what the filter released (a copy that says
// something else is filtered on its own). Log probabilities, which spell the tokens
// out, are dropped. A delta of a type the gateway does not know ends the stream: the
// text in it could not be checked; so does an answer of a shape it cannot read.

// place is where a text sits in a Responses answer: the output item (its index in
// `output`, which stream events name as output_index), then the part.
type place struct {
	out   int
	index int    // content, summary or part index; 0 for tool input
	part  byte   // 'c' output text, 'r' refusal, 's' reasoning summary, 't' reasoning text, 'a' tool input, 'g' another string
	path  string // 'g': where the string sits in its item
}

func (p place) kind() TextKind {
	switch p.part {
	case 'r':
		return TextRefusal
	case 's', 't':
		return TextReasoning
	case 'a', 'g':
		return TextToolArguments
	}
	return TextContent
}

// errUnreadable ends a filtered answer whose shape the filter cannot read.
var errUnreadable = fmt.Errorf("response filter: %w: an answer of an unexpected shape", ErrUpstreamBadResponse)

// respFilter filters the texts of one native Responses answer.
type respFilter struct {
	req      *Request
	mainUsed bool
	filters  map[place]ContentFilter
	// raw is the text each place's filter was given, out what it released; closed
	// says the filter was flushed.
	raw, out map[place]*strings.Builder
	closed   map[place]bool
	// seq is the number of the next event relayed (see numbered).
	seq       int
	numbering bool
}

func newRespFilter(req *Request) *respFilter {
	return &respFilter{req: req, filters: map[place]ContentFilter{}, raw: map[place]*strings.Builder{},
		out: map[place]*strings.Builder{}, closed: map[place]bool{}}
}

// fresh returns a new filter for a text of the kind (never the request's Filter);
// nil lets it through.
func (f *respFilter) fresh(k TextKind) (ContentFilter, error) {
	if f.req.NewFilter != nil {
		return f.req.NewFilter(k), nil
	}
	if k == TextContent || k == TextRefusal {
		return nil, errNoChoiceFilter
	}
	return nil, nil
}

// open returns the place's filter, made on first use.
func (f *respFilter) open(p place) (ContentFilter, error) {
	if cf, ok := f.filters[p]; ok {
		return cf, nil
	}
	var cf ContentFilter
	var err error
	if p.kind() == TextContent && !f.mainUsed {
		cf, f.mainUsed = f.req.Filter, true
	} else if cf, err = f.fresh(p.kind()); err != nil {
		return nil, err
	}
	f.filters[p], f.raw[p], f.out[p] = cf, &strings.Builder{}, &strings.Builder{}
	return cf, nil
}

// delta filters the next piece of the place's text.
func (f *respFilter) delta(p place, d string) (string, error) {
	if f.closed[p] {
		return "", fmt.Errorf("response filter: %w: text after its end", ErrUpstreamBadResponse)
	}
	cf, err := f.open(p)
	if err != nil {
		return "", err
	}
	out := d
	if cf != nil {
		if out, err = cf.Filter(d); err != nil {
			return "", err
		}
	}
	f.raw[p].WriteString(d)
	f.out[p].WriteString(out)
	return out, nil
}

// end flushes the place's filter: what it held back, and the whole filtered text.
func (f *respFilter) end(p place) (rest, whole string, err error) {
	if f.closed[p] {
		return "", f.out[p].String(), nil
	}
	cf, err := f.open(p)
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

// whole returns the filtered form of a complete text at p. A text that came as deltas
// is what its filter released (the rest given to it first when the copy says more);
// an empty text at a place not begun is left for its deltas; a copy that disagrees
// with what the place's filter was given is filtered on its own.
func (f *respFilter) whole(p place, text string) (string, error) {
	_, begun := f.filters[p]
	switch {
	case !begun && text == "":
		return "", nil
	case begun && f.closed[p] && f.raw[p].String() == text:
		return f.out[p].String(), nil
	case begun && (f.closed[p] || !strings.HasPrefix(text, f.raw[p].String())):
		cf, err := f.fresh(p.kind())
		if err != nil || cf == nil {
			return text, err
		}
		return filterWhole(cf, text)
	}
	if _, err := f.delta(p, text[f.rawLen(p):]); err != nil {
		return "", err
	}
	_, whole, err := f.end(p)
	return whole, err
}

func (f *respFilter) rawLen(p place) int {
	if b, ok := f.raw[p]; ok {
		return b.Len()
	}
	return 0
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

// index reads a non-negative integer member (0 when absent).
func (o *object) index(k string) (int, error) {
	v, ok := o.m[k]
	if !ok {
		return 0, nil
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
	if err != nil || n < 0 {
		return 0, errUnreadable
	}
	return n, nil
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

// dropLogprobs empties the log probabilities of o, which spell its tokens out.
func (o *object) dropLogprobs() {
	if v, ok := o.m["logprobs"]; ok && !isNull(v) {
		o.set("logprobs", []any{})
	}
}

// text filters the string member k of o, a complete text at p.
func (f *respFilter) text(o *object, k string, p place) error {
	v, ok := o.m[k]
	if !ok || isNull(v) {
		return nil
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return errUnreadable
	}
	out, err := f.whole(p, s)
	if err != nil {
		return err
	}
	o.set(k, out)
	return nil
}

// parts filters the texts of the array member k of o (content parts or summaries) of
// output item out.
func (f *respFilter) parts(o *object, k string, out int, part func(typ string) (byte, string)) error {
	v, ok := o.m[k]
	if !ok || isNull(v) {
		return nil
	}
	var list []json.RawMessage
	if json.Unmarshal(v, &list) != nil {
		return errUnreadable
	}
	changed := false
	for j, raw := range list {
		po, ok := decodeObject(raw)
		if !ok {
			return errUnreadable
		}
		po.dropLogprobs()
		kind, member := part(po.str("type"))
		var err error
		if kind != 0 {
			err = f.text(po, member, place{out: out, index: j, part: kind})
		} else {
			// A part of a type the filter does not know: its strings are checked.
			err = f.checkStrings(po, out, k+"."+strconv.Itoa(j)+".")
		}
		if err != nil {
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

// itemKeys are the members of an item that name or frame it rather than say
// something: the strings of other members are checked.
var itemKeys = map[string]bool{"type": true, "id": true, "status": true, "call_id": true, "name": true, "role": true,
	"object": true, "item_id": true, "server_label": true, "approval_request_id": true, "encrypted_content": true, "result": true,
	"partial_image_b64": true, "annotations": true, "obfuscation": true}

// item filters the texts of output item out.
func (f *respFilter) item(out int, raw []byte) ([]byte, error) {
	o, ok := decodeObject(raw)
	if !ok {
		return nil, errUnreadable
	}
	var err error
	switch o.str("type") {
	case "message":
		if err = f.parts(o, "content", out, contentPartText); err == nil {
			err = f.others(o, out, "item.", "content")
		}
	case "reasoning":
		if err = f.parts(o, "summary", out, summaryPartText); err == nil {
			err = f.parts(o, "content", out, contentPartText)
		}
		if err == nil {
			err = f.others(o, out, "item.", "summary", "content")
		}
	case "function_call":
		if err = f.text(o, "arguments", place{out: out, part: 'a'}); err == nil {
			err = f.others(o, out, "item.", "arguments")
		}
	case "custom_tool_call":
		if err = f.text(o, "input", place{out: out, part: 'a'}); err == nil {
			err = f.others(o, out, "item.", "input")
		}
	default:
		// A hosted tool's call (a search query, code, a command, a patch, an MCP
		// call's arguments and output): every string it holds is checked.
		err = f.checkStrings(o, out, "")
	}
	if err != nil {
		return nil, err
	}
	return o.encode(raw), nil
}

// checkStrings filters every string in o's members but its itemKeys, each a text at a
// place of its own (prefix and its path in o). Numbers keep their digits.
func (f *respFilter) checkStrings(o *object, out int, prefix string) error {
	for _, k := range slices.Sorted(maps.Keys(o.m)) {
		if itemKeys[k] && isScalar(o.m[k]) {
			continue
		}
		var v any
		d := json.NewDecoder(bytes.NewReader(o.m[k]))
		d.UseNumber()
		if d.Decode(&v) != nil {
			return errUnreadable
		}
		nv, changed, err := f.walk(v, out, prefix+k)
		if err != nil {
			return err
		}
		if changed {
			o.set(k, nv)
		}
	}
	return nil
}

func (f *respFilter) walk(v any, out int, path string) (any, bool, error) {
	switch v := v.(type) {
	case string:
		s, err := f.whole(place{out: out, part: 'g', path: path}, v)
		return s, s != v, err
	case []any:
		changed := false
		for i, x := range v {
			nx, c, err := f.walk(x, out, path+"."+strconv.Itoa(i))
			if err != nil {
				return nil, false, err
			}
			v[i], changed = nx, changed || c
		}
		return v, changed, nil
	case map[string]any:
		changed := false
		for _, k := range slices.Sorted(maps.Keys(v)) {
			if _, isString := v[k].(string); itemKeys[k] && (isString || v[k] == nil) {
				continue
			}
			nx, c, err := f.walk(v[k], out, path+"."+k)
			if err != nil {
				return nil, false, err
			}
			v[k], changed = nx, changed || c
		}
		return v, changed, nil
	}
	return v, false, nil
}

// isScalar reports whether raw is a JSON string, number, boolean or null: a value an
// item key may hold without the filter looking inside (an object or array under such
// a key is looked into all the same).
func isScalar(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] != '{' && raw[0] != '['
}

// response filters the texts of a response object's output.
func (f *respFilter) response(raw []byte) ([]byte, error) {
	o, ok := decodeObject(raw)
	if !ok {
		return nil, errUnreadable
	}
	v, ok := o.m["output"]
	if !ok || isNull(v) {
		return raw, nil
	}
	var items []json.RawMessage
	if json.Unmarshal(v, &items) != nil {
		return nil, errUnreadable
	}
	changed := false
	for i, it := range items {
		out, err := f.item(i, it)
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
func streamed(typ string, ev *object) (p place, whole string, delta, ok bool, err error) {
	base, isDelta := strings.CutSuffix(typ, ".delta")
	if !isDelta {
		var isDone bool
		if base, isDone = strings.CutSuffix(typ, ".done"); !isDone {
			return place{}, "", false, false, nil
		}
	}
	var part byte
	index := "content_index"
	switch base {
	case "response.output_text":
		part, whole = 'c', "text"
	case "response.refusal":
		part, whole = 'r', "refusal"
	case "response.reasoning_summary_text":
		part, whole, index = 's', "text", "summary_index"
	case "response.reasoning_text":
		part, whole = 't', "text"
	case "response.function_call_arguments":
		part, whole, index = 'a', "arguments", ""
	case "response.custom_tool_call_input":
		part, whole, index = 'a', "input", ""
	default:
		return place{}, "", false, false, nil
	}
	p = place{part: part}
	if p.out, err = ev.index("output_index"); err == nil && index != "" {
		p.index, err = ev.index(index)
	}
	return p, whole, isDelta, true, err
}

// event filters one stream event's data and returns the data to relay in its place:
// none, it, or a delta of held-back text and then it.
func (f *respFilter) event(data []byte) ([][]byte, error) {
	ev, ok := decodeObject(data)
	if !ok {
		return nil, errUnreadable
	}
	ev.dropLogprobs()
	typ := ev.str("type")
	p, member, isDelta, ok, err := streamed(typ, ev)
	switch {
	case err != nil:
		return nil, err
	case ok && isDelta:
		out, err := f.delta(p, ev.str("delta"))
		if err != nil || out == "" {
			return nil, err
		}
		ev.set("delta", out)
		if err := f.others(ev, p.out, "event.", "delta"); err != nil {
			return nil, err
		}
		return f.numbered(data, ev), nil
	case ok:
		if err := f.others(ev, p.out, "event.", member); err != nil {
			return nil, err
		}
		if _, begun := f.filters[p]; !begun {
			// A done event without deltas: its text is the whole of it.
			if err := f.text(ev, member, p); err != nil {
				return nil, err
			}
			return f.numbered(data, ev), nil
		}
		rest, whole, err := f.end(p)
		if err != nil {
			return nil, err
		}
		ev.set(member, whole)
		if rest == "" {
			return f.numbered(data, ev), nil
		}
		d := &object{m: map[string]json.RawMessage{}}
		for k, v := range ev.m {
			if k != member {
				d.m[k] = v
			}
		}
		d.set("type", strings.TrimSuffix(typ, ".done")+".delta")
		d.set("delta", rest)
		return f.numbered(data, d, ev), nil
	}
	out, err := ev.index("output_index")
	if err != nil {
		return nil, err
	}
	switch {
	case typ == "response.content_part.added" || typ == "response.content_part.done":
		if err = f.member(ev, "part", func(raw []byte) ([]byte, error) { return f.partOf(ev, raw, "content_index", contentPartText) }); err == nil {
			err = f.others(ev, out, "event.", "part")
		}
	case typ == "response.reasoning_summary_part.added" || typ == "response.reasoning_summary_part.done":
		if err = f.member(ev, "part", func(raw []byte) ([]byte, error) { return f.partOf(ev, raw, "summary_index", summaryPartText) }); err == nil {
			err = f.others(ev, out, "event.", "part")
		}
	case typ == "response.output_item.added" || typ == "response.output_item.done":
		if err = f.member(ev, "item", func(raw []byte) ([]byte, error) { return f.item(out, raw) }); err == nil {
			err = f.others(ev, out, "event.", "item")
		}
	case strings.HasPrefix(typ, "response.") && ev.m["response"] != nil:
		if err = f.member(ev, "response", f.response); err == nil {
			err = f.others(ev, out, "event.", "response")
		}
	case ev.m["delta"] != nil:
		return nil, &Refusal{Code: "content_unverifiable", Message: fmt.Sprintf("The model's answer carried a %q event, whose text this team's response guardrails cannot check.", typ)}
	case typ != "error" && typ != "response.output_text.annotation.added":
		// Another event of a hosted tool (arguments done, code done…): its strings
		// are checked as an item's are, at a place of their own.
		err = f.checkStrings(ev, out, "")
	}
	if err != nil {
		return nil, err
	}
	return f.numbered(data, ev), nil
}

// eventKeys are the members of a stream event that say where it belongs.
var eventKeys = map[string]bool{"type": true, "item_id": true, "output_index": true, "content_index": true,
	"summary_index": true, "sequence_number": true, "logprobs": true, "obfuscation": true}

// others checks the strings of o's members but those handled and those that say
// where it belongs: a member the filter does not know may carry text too.
func (f *respFilter) others(o *object, out int, prefix string, handled ...string) error {
	var rest *object
	for k, v := range o.m {
		// Emptied log probabilities (dropLogprobs) hold no text to check.
		if k == "logprobs" && (isNull(v) || string(v) == "[]") || slices.Contains(handled, k) || eventKeys[k] && isScalar(v) {
			continue
		}
		if rest == nil {
			rest = &object{m: map[string]json.RawMessage{}}
		}
		rest.m[k] = v
	}
	if rest == nil {
		return nil
	}
	if err := f.checkStrings(rest, out, prefix); err != nil {
		return err
	}
	if rest.changed {
		for k, v := range rest.m {
			o.m[k] = v
		}
		o.changed = true
	}
	return nil
}

// numbered numbers the events relayed one by one, from the stream's first number —
// the filter drops deltas it holds back and adds the ones it releases, and
// sequence_number counts the events the caller gets — and encodes them (data is the
// event as it came, relayed as it is when nothing in it changed).
func (f *respFilter) numbered(data []byte, evs ...*object) [][]byte {
	out := make([][]byte, len(evs))
	for i, o := range evs {
		if _, has := o.m["sequence_number"]; has {
			if n, err := o.index("sequence_number"); err == nil {
				if !f.numbering {
					f.seq, f.numbering = n, true
				}
				if n != f.seq {
					o.set("sequence_number", f.seq)
				}
				f.seq++
			}
		}
		out[i] = o.encode(data)
	}
	return out
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

// partOf filters the part of a part event: a complete text at the event's item and
// its index member.
func (f *respFilter) partOf(ev *object, raw []byte, index string, part func(string) (byte, string)) ([]byte, error) {
	po, ok := decodeObject(raw)
	if !ok {
		return nil, errUnreadable
	}
	po.dropLogprobs()
	kind, member := part(po.str("type"))
	p := place{part: kind}
	var err error
	if p.out, err = ev.index("output_index"); err == nil {
		p.index, err = ev.index(index)
	}
	switch {
	case err != nil:
	case kind == 0:
		// A part of a type the filter does not know: its strings are checked.
		err = f.checkStrings(po, p.out, strings.TrimSuffix(index, "_index")+"."+strconv.Itoa(p.index)+".")
	default:
		err = f.text(po, member, p)
	}
	if err != nil {
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
			if bytes.IndexByte(d, '\n') >= 0 {
				var c bytes.Buffer
				if json.Compact(&c, d) == nil {
					d = c.Bytes()
				}
			}
			typ := responsesEventType(d)
			var b []byte
			if name != nil {
				b = fmt.Appendf(b, "event: %s\n", typ)
			}
			b = fmt.Appendf(b, "data: %s\n\n", d)
			if s.req.CaptureText && typ == "response.output_text.delta" {
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
