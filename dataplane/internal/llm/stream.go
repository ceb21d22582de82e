package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// relayStream relays a stream whose first data event was read; it returns when the
// stream ended. Failures end the caller's stream with an error event. firstToken,
// when not nil, is called when the first token comes by, and waiting, when not nil,
// with true before each read from the upstream and false after it.
func (c *Client) relayStream(ctx, actx context.Context, w http.ResponseWriter, req *Request, res *Result, wk wire, rd *sseReader, prelude []sseEvent,
	firstToken func(), waiting func(bool)) error {
	commit(w, req, res)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	res.Status = http.StatusOK
	// The head goes out with the first event, which is already here.
	rc := http.NewResponseController(w)
	s := &streamRelay{c: c, ctx: ctx, actx: actx, w: w, rc: rc, req: req, res: res, wk: wk, rd: rd, pending: prelude, firstToken: firstToken, waiting: waiting}
	var err error
	switch {
	case req.Filter == nil && !req.CaptureText && req.Surface == SurfaceChat && wk == wireOpenAI:
		err = s.raw(chatTextKeys, s.chatUsage)
	case req.Filter == nil && !req.CaptureText && req.Surface == SurfaceMessages && wk == wireAnthropic:
		err = s.raw(anthropicTextKeys, s.anthropicUsage)
	case wk == wireResponses && req.Filter != nil:
		err = s.responsesFiltered()
	case wk == wireResponses:
		err = s.raw(responsesTextKeys, s.responsesEvent)
	default:
		err = s.translate()
	}
	if s.unflushed && !errors.Is(err, ErrClientGone) {
		// The last events went out behind something that was not relayed (a comment
		// after [DONE]): flush them now, not when the handler returns.
		_ = s.flush()
	}
	if !s.sawUsage {
		// The provider never reported the whole usage (the caller left, or the stream
		// broke): charge an estimate of what was used, with what the provider did
		// report (the input counts of Anthropic's message_start, Gemini's counts so
		// far) where it says more.
		u := Usage{PromptTokens: req.promptTokensEstimate(), CompletionTokens: int64(s.chars+3) / 4}
		if s.reported {
			reported := res.Usage
			reported.PromptTokens = max(reported.PromptTokens, u.PromptTokens)
			reported.CompletionTokens = max(reported.CompletionTokens, u.CompletionTokens)
			u = reported
		}
		res.Usage, res.UsageEstimated = u, true
	}
	return err
}

// promptTokensEstimate estimates the prompt's tokens (characters divided by 4).
func (r *Request) promptTokensEstimate() int64 {
	if r.Chat == nil {
		return 0
	}
	return r.Chat.promptEstimate()
}

type streamRelay struct {
	c    *Client
	ctx  context.Context
	actx context.Context
	w    http.ResponseWriter
	rc   *http.ResponseController
	req  *Request
	res  *Result
	wk   wire
	rd   *sseReader
	// pending are events read before the answer began, relayed first.
	pending []sseEvent
	// firstToken is called when the first token comes by, unless it had; waiting,
	// when set, with true before each read from the upstream and false after it
	// (the idle bound).
	firstToken func()
	waiting    func(bool)
	// unflushed: bytes were written and not flushed, because the next event was
	// already buffered.
	unflushed bool
	flushed   bool
	sawUsage  bool
	// tierTold: the stream said which tier serves it (eventServiceTier); no more
	// events are read for it.
	tierTold bool
	// reported: res.Usage holds what the provider reported so far, not all of it
	// unless sawUsage; anthropic accumulates Anthropic's counts.
	reported  bool
	anthropic anthropicUsage
	chars     int
	text      strings.Builder
}

var (
	chatTextKeys      = [][]byte{[]byte(`"content":"`), []byte(`"arguments":"`), []byte(`"reasoning_content":"`), []byte(`"reasoning":"`)}
	anthropicTextKeys = [][]byte{[]byte(`"text":"`), []byte(`"partial_json":"`), []byte(`"thinking":"`)}
)

// textLen counts the bytes of the JSON string values that follow keys in data, without
// decoding it: enough to estimate the tokens of a stream cut short.
func textLen(data []byte, keys [][]byte) int {
	n := 0
	for _, k := range keys {
		rest := data
		for {
			i := bytes.Index(rest, k)
			if i < 0 {
				break
			}
			rest = rest[i+len(k):]
			j := 0
			for j < len(rest) && rest[j] != '"' {
				if rest[j] == '\\' {
					j++
				}
				j++
			}
			n += min(j, len(rest))
			rest = rest[min(j, len(rest)):]
		}
	}
	return n
}

// send writes b and flushes it, unless the upstream's next event is already here:
// events that arrived together leave together, in one write, and none waits for
// the upstream.
func (s *streamRelay) send(b []byte) error {
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("stream: write: %w: %w", ErrClientGone, err)
	}
	if s.flushed && (len(s.pending) > 0 || s.rd.ready()) {
		s.unflushed = true
		return nil
	}
	return s.flush()
}

func (s *streamRelay) flush() error {
	s.unflushed, s.flushed = false, true
	if err := s.rc.Flush(); err != nil {
		return fmt.Errorf("stream: flush: %w: %w", ErrClientGone, err)
	}
	return nil
}

// readErr classifies an error reading the upstream stream.
func (s *streamRelay) readErr(err error) error {
	switch {
	case errors.Is(err, ErrClientGone):
		return err
	case s.ctx.Err() != nil:
		return fmt.Errorf("stream: %w: %w", ErrClientGone, err)
	case s.actx.Err() != nil:
		return fmt.Errorf("stream: %w: %w", ErrUpstreamTimeout, err)
	}
	return fmt.Errorf("stream: %w: %w", ErrUpstreamStream, err)
}

// chatUsage reads the usage a chat chunk carries; it reports whether the chunk goes
// on to the caller (a usage chunk the caller did not ask for does not).
func (s *streamRelay) chatUsage(data []byte) bool {
	before := s.res.Usage
	forward := inspectData(data, s.req.Chat.IncludeUsage, &s.res.Usage)
	if s.res.Usage != before {
		s.sawUsage = true
	}
	return forward
}

// raw relays events unchanged (the caller speaks the provider's format); inspect
// reads what the gateway needs of each (usage) and says whether it goes on.
func (s *streamRelay) raw(keys [][]byte, inspect func(data []byte) bool) error {
	for {
		raw, name, data, end, err := s.nextEvent()
		if end {
			return err
		}
		forward := true
		if data != nil {
			s.chars += textLen(data, keys)
			forward = inspect(data)
		}
		if s.wk == wireResponses {
			raw = s.req.Responses.sealer.apply(raw)
		}
		if errorEvent(name, data) {
			raw = scrubOperator(raw)
		}
		if forward {
			if err := s.send(raw); err != nil {
				return err
			}
		}
	}
}

// errorEvent reports whether an upstream event reports an error: Anthropic's and the
// Responses API's error events, a failed response, and OpenAI's in-stream error JSON.
func errorEvent(name, data []byte) bool {
	switch string(name) {
	case "error", "response.failed":
		return true
	}
	return bytes.HasPrefix(bytes.TrimLeft(data, " "), []byte(`{"error"`))
}

// nextEvent is next for a relay that passes the provider's events on: end reports the
// stream's end, and a stream the provider broke is ended for the caller with an error
// event (err says why).
func (s *streamRelay) nextEvent() (raw, name, data []byte, end bool, err error) {
	raw, name, data, err = s.next()
	switch {
	case err == io.EOF:
		return nil, nil, nil, true, nil
	case err != nil:
		err = s.readErr(err)
		switch {
		case errors.Is(err, ErrClientGone):
		case errors.Is(err, ErrUpstreamTimeout):
			_ = s.send(s.failEvent("upstream_timeout", "The model provider did not finish in time."))
		default:
			_ = s.send(s.failEvent("upstream_stream_broken", "The model provider broke off the stream."))
		}
		return nil, nil, nil, true, err
	}
	return raw, name, data, false, nil
}

// next returns the next upstream event: the held-back ones first. What was written
// and not flushed (its next event was already here) is flushed before next could
// wait for the upstream: an event that was not forwarded (a stripped usage chunk)
// must not leave the one before it waiting.
func (s *streamRelay) next() (raw, name, data []byte, err error) {
	if s.unflushed && len(s.pending) == 0 && !s.rd.ready() {
		if err := s.flush(); err != nil {
			return nil, nil, nil, err
		}
	}
	if len(s.pending) > 0 {
		ev := s.pending[0]
		s.pending = s.pending[1:]
		raw, name, data = ev.raw, ev.name, ev.data
	} else {
		if s.waiting != nil {
			s.waiting(true)
		}
		raw, name, data, err = s.rd.next()
		if s.waiting != nil {
			s.waiting(false)
		}
		if err != nil {
			return nil, nil, nil, err
		}
	}
	if s.firstToken != nil && data != nil && firstToken(s.wk, data) {
		s.firstToken()
		s.firstToken = nil
	}
	if data != nil && !s.tierTold {
		var t string
		if t, s.tierTold = eventServiceTier(s.wk, name, data); t != "" && t != s.res.ServiceTier {
			s.res.ServiceTier = t
		}
	}
	return raw, name, data, nil
}

// sseEvent is an upstream event held back until the answer began.
type sseEvent struct{ raw, name, data []byte }

// maxPrelude bounds the events held back waiting for the first token.
const maxPrelude = 64

func cloneEvent(raw, name, data []byte) sseEvent {
	buf := make([]byte, 0, len(raw)+len(name)+len(data))
	buf = append(buf, raw...)
	buf = append(buf, name...)
	buf = append(buf, data...)
	ev := sseEvent{raw: buf[:len(raw):len(raw)], name: buf[len(raw) : len(raw)+len(name) : len(raw)+len(name)], data: buf[len(raw)+len(name):]}
	if data == nil {
		ev.data = nil
	}
	return ev
}

var (
	toolCallsKey    = []byte(`"tool_calls"`)
	finishReasonKey = []byte(`"finish_reason":"`)
	errorKey        = []byte(`"error"`)
)

// firstToken reports whether an event carries the answer's first token (or ends or
// fails the answer): the time to it is the time to first token.
func firstToken(wk wire, data []byte) bool {
	switch wk {
	case wireAnthropic:
		var ev struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(data, &ev) != nil {
			return true
		}
		switch ev.Type {
		case "message_start", "content_block_start", "ping":
			return false
		}
		return true
	case wireGemini:
		return true
	case wireResponses:
		return responsesFirstToken(data)
	}
	return textLen(data, chatTextKeys) > 0 || bytes.Contains(data, toolCallsKey) || bytes.Equal(data, doneData) ||
		hasUsage(data) || bytes.Contains(data, finishReasonKey) || bytes.Contains(data, errorKey)
}

var (
	messageStartType = []byte(`"message_start"`)
	messageDeltaType = []byte(`"message_delta"`)
)

// anthropicUsage reads usage from message_start and message_delta events; every
// event goes on.
func (s *streamRelay) anthropicUsage(data []byte) bool {
	if !bytes.Contains(data, messageStartType) && !bytes.Contains(data, messageDeltaType) {
		return true
	}
	var ev struct {
		Type    string `json:"type"`
		Message struct {
			Usage *anthropicUsage `json:"usage"`
		} `json:"message"`
		Usage *anthropicUsage `json:"usage"`
	}
	if json.Unmarshal(data, &ev) != nil {
		return true
	}
	switch {
	case ev.Type == "message_start" && ev.Message.Usage != nil:
		s.anthropic = *ev.Message.Usage
		s.report(s.anthropic.usage(), false)
	case ev.Type == "message_delta" && ev.Usage != nil:
		s.anthropic.merge(ev.Usage)
		s.report(s.anthropic.usage(), true)
	}
	return true
}

// report records the usage the provider reported so far; final says it is the
// answer's whole usage. What a stream cut short reported is kept (see relayStream).
func (s *streamRelay) report(u Usage, final bool) {
	s.res.Usage, s.reported = u, true
	s.sawUsage = s.sawUsage || final
}

// failEvent renders an in-stream error in the caller's format.
func (s *streamRelay) failEvent(code, msg string) []byte {
	if s.wk == wireResponses {
		// The provider's own stream began the response: only an error event follows
		// (a fresh response.created would reset what clients accumulated).
		b, _ := json.Marshal(map[string]any{"type": "error", "code": code, "message": msg, "param": nil})
		return fmt.Appendf(nil, "event: error\ndata: %s\n\n", b)
	}
	switch s.req.Surface {
	case SurfaceMessages:
		e := &messagesEncoder{}
		return append([]byte(nil), e.fail(code, msg)...)
	case SurfaceResponses:
		e := &responsesEncoder{req: s.req.Responses.body, model: s.req.Chat.Model}
		return append([]byte(nil), e.fail(code, msg)...)
	}
	return (&chatEncoder{}).fail(code, msg)
}

// streamDecoder turns an upstream's stream events into chat chunks.
type streamDecoder interface {
	decode(name, data []byte) (chunks []chatChunk, done bool, err error)
	// usage returns the usage the stream reported, if it did.
	usage() (Usage, bool)
	// partial returns what of the usage the stream reported so far, if anything.
	partial() (Usage, bool)
}

// streamEncoder renders chat chunks in the caller's format.
type streamEncoder interface {
	chunk(c *chatChunk) []byte
	end(id string, u Usage) []byte
	fail(code, msg string) []byte
}

// translate relays a stream through chat chunks: decoded from the provider's format,
// filtered, encoded in the caller's.
func (s *streamRelay) translate() error {
	var dec streamDecoder
	created := s.c.now().Unix()
	switch s.wk {
	case wireAnthropic:
		dec = &anthropicDecoder{d: anthropicStreamDecoder{created: created}}
	case wireGemini:
		dec = &geminiDecoder{d: geminiStreamDecoder{created: created, model: s.res.modelName()}}
	default:
		dec = &openAIDecoder{}
	}
	var enc streamEncoder
	switch s.req.Surface {
	case SurfaceMessages:
		enc = &messagesEncoder{model: s.req.Messages.Model, input: s.req.promptTokensEstimate()}
	case SurfaceResponses:
		enc = &responsesEncoder{req: s.req.Responses.body, model: s.req.Responses.Model}
	default:
		enc = &chatEncoder{includeUsage: s.req.Chat.IncludeUsage}
	}
	id := ""
	cut := func(err error) error {
		// What was reported before the cut is a floor, not the whole: Gemini's
		// counts are cumulative and an early chunk's may leave the answer out.
		if u, ok := dec.partial(); ok {
			s.report(u, false)
		}
		code, msg := "upstream_stream_broken", "The model provider broke off the stream."
		var ref *Refusal
		var se *streamError
		switch {
		case errors.As(err, &ref):
			code, msg = ref.Code, ref.Message
		case errors.As(err, &se):
			msg = string(scrubOperator([]byte(se.msg)))
		case errors.Is(err, ErrUpstreamTimeout):
			code, msg = "upstream_timeout", "The model provider did not finish in time."
		}
		if !errors.Is(err, ErrClientGone) {
			_ = s.send(enc.fail(code, msg))
		}
		return err
	}
	// Each choice is filtered on its own (see choiceFilters), by index.
	choices := map[int]*answerFilters{}
	filters := func(i int) (*answerFilters, error) {
		if af, ok := choices[i]; ok {
			return af, nil
		}
		if i < 0 || i >= maxChoices {
			return nil, errTooManyChoices
		}
		af, err := choiceFilters(s.req, i == 0)
		if err != nil {
			return nil, err
		}
		choices[i] = af
		return af, nil
	}
	emit := func(c *chatChunk) error {
		if c.ID != "" {
			id = c.ID
		}
		if s.req.Surface != SurfaceChat {
			// A Message or a Response is one answer: the first choice (the encoders
			// show no other).
			c.Choices = slices.DeleteFunc(c.Choices, func(ch chunkChoice) bool { return ch.Index != 0 })
		}
		had := len(c.Choices) > 0
		kept := c.Choices[:0]
		for _, ch := range c.Choices {
			af, err := filters(ch.Index)
			if err != nil {
				return err
			}
			if af.finished {
				// The choice ended: what an upstream sends for it after its finish
				// reason is dropped.
				continue
			}
			before, err := s.filterChoice(af, c, &ch, false)
			if err != nil {
				return err
			}
			if before != nil {
				if err := s.send(enc.chunk(before)); err != nil {
					return err
				}
			}
			kept = append(kept, ch)
		}
		if c.Choices = kept; had && len(kept) == 0 {
			return nil
		}
		if b := enc.chunk(c); len(b) > 0 {
			return s.send(b)
		}
		return nil
	}
	for {
		_, name, data, err := s.next()
		if err == io.EOF {
			if s.wk != wireGemini && !s.sawAny(dec) {
				return cut(fmt.Errorf("stream: %w: %w", ErrUpstreamStream, io.ErrUnexpectedEOF))
			}
			break
		}
		if err != nil {
			return cut(s.readErr(err))
		}
		if data != nil {
			chunks, end, err := dec.decode(name, data)
			if err != nil {
				return cut(err)
			}
			for i := range chunks {
				if chunks[i].Usage != nil && len(chunks[i].Choices) == 0 {
					continue
				}
				if err := emit(&chunks[i]); err != nil {
					return cut(err)
				}
			}
			if end {
				break
			}
		}
	}
	// The answer ended without a finish reason: release what the filters still hold,
	// choice by choice.
	for _, i := range slices.Sorted(maps.Keys(choices)) {
		if choices[i].finished {
			continue
		}
		last := chatChunk{ID: id, Object: "chat.completion.chunk", Choices: []chunkChoice{{Index: i}}}
		before, err := s.filterChoice(choices[i], &last, &last.Choices[0], true)
		if err != nil {
			return cut(err)
		}
		for _, c := range []*chatChunk{before, &last} {
			if c == nil {
				continue
			}
			if d := c.Choices[0].Delta; d.Content != nil || d.ReasoningContent != nil || d.ToolCalls != nil || d.Refusal != nil || d.ThinkingBlocks != nil {
				if err := s.send(enc.chunk(c)); err != nil {
					return err
				}
			}
		}
	}
	if u, ok := dec.usage(); ok {
		s.res.Usage, s.sawUsage = u, true
	} else {
		s.res.Usage = Usage{PromptTokens: s.req.promptTokensEstimate(), CompletionTokens: int64(s.chars+3) / 4}
		s.res.UsageEstimated = true
		s.sawUsage = true
	}
	return s.send(enc.end(id, s.res.Usage))
}

// filterChoice filters the texts of one choice ch of c in place, through the choice's
// filters af; end (or a finish reason) ends them all. A tool call's arguments last
// until anything but more of them come (another tool call in the same delta too).
// The content and the reasoning last until the choice ends on the chat surface, whose
// callers join all of a choice's content, and all of its reasoning, into one string
// whatever comes between (its thinking blocks wait for the end: settleThinking); on
// the others the content ends where a tool call, a thinking block or reasoning begins
// a block (Messages) or output item (Responses) of its own, and a reasoning block
// where anything else comes. What a
// filter held back leaves before what ended it. When texts this chunk does not continue end, it returns a chunk with
// what their filters held back, to send first.
func (s *streamRelay) filterChoice(af *answerFilters, c *chatChunk, ch *chunkChoice, end bool) (before *chatChunk, err error) {
	d := &ch.Delta
	finish := end || ch.FinishReason != nil && *ch.FinishReason != ""
	reasoning := d.ReasoningContent != nil && *d.ReasoningContent != ""
	content := d.Content != nil && *d.Content != ""
	other := content || len(d.ToolCalls) > 0 || len(d.ThinkingBlocks) > 0 || finish
	breaksContent := s.req.Surface != SurfaceChat && (reasoning || len(d.ToolCalls) > 0 || len(d.ThinkingBlocks) > 0)
	// Where each tool call of this delta comes last: its arguments end there when
	// another call's come next, and those of calls it does not continue end before it.
	var last map[int]int
	if len(d.ToolCalls) > 0 {
		last = make(map[int]int, len(d.ToolCalls))
		for i, tc := range d.ToolCalls {
			last[toolIndex(tc)] = i
		}
	}
	var tails []toolCall
	if reasoning || other {
		tails, err = af.endArguments(func(i int) bool { _, ok := last[i]; return ok })
		if err != nil {
			return nil, err
		}
	}
	contentTail := ""
	if breaksContent && !content && af.contentOpen {
		// The content ends before what this chunk begins: what its filter held back
		// goes first, not after a tool call or a thinking block.
		if contentTail, err = af.endContent(); err != nil {
			return nil, err
		}
	}
	if tails != nil || contentTail != "" {
		before = &chatChunk{ID: c.ID, Object: "chat.completion.chunk", Created: c.Created, Model: c.Model,
			Choices: []chunkChoice{{Index: ch.Index, Delta: chunkDelta{ToolCalls: tails}}}}
		if contentTail != "" {
			before.Choices[0].Delta.Content = &contentTail
		}
	}
	if reasoning {
		// Reasoning is output too: a stream cut short before usage is charged for it.
		s.chars += len(*d.ReasoningContent)
		out, err := af.reason(*d.ReasoningContent)
		if err != nil {
			return nil, err
		}
		d.ReasoningContent = &out
	}
	if finish || other && !af.span {
		tail, err := af.endReasoning()
		if err != nil {
			return nil, err
		}
		if tail != "" {
			d.ReasoningContent = ptr(deref(d.ReasoningContent) + tail)
		}
	}
	if af.span && af.on() {
		// The chat surface's reasoning is one text until the choice ends: its thinking
		// blocks wait for it (settleThinking).
		for _, tb := range d.ThinkingBlocks {
			af.holdThinking(tb)
		}
		d.ThinkingBlocks = nil
		if finish {
			if d.ThinkingBlocks, err = af.settleThinking(); err != nil {
				return nil, err
			}
		}
	} else {
		for i := range d.ThinkingBlocks {
			if err := af.thinking(&d.ThinkingBlocks[i]); err != nil {
				return nil, err
			}
		}
	}
	if content {
		s.chars += len(*d.Content)
		out, err := af.filterContent(*d.Content)
		if err != nil {
			return nil, err
		}
		if breaksContent && !finish {
			// A tool call or reasoning comes in this very chunk, after the content.
			tail, err := af.endContent()
			if err != nil {
				return nil, err
			}
			out += tail
		}
		d.Content = &out
	}
	if d.Refusal != nil && *d.Refusal != "" {
		s.chars += len(*d.Refusal)
		out, ok, err := af.filterRefusal(*d.Refusal)
		if err != nil {
			return nil, err
		}
		d.Refusal = nil
		if ok {
			d.Refusal = &out
		}
	}
	for i := range d.ToolCalls {
		tc := &d.ToolCalls[i]
		s.chars += len(tc.Function.Arguments)
		if tc.Function.Arguments, err = af.arguments(toolIndex(*tc), tc.Function.Arguments); err != nil {
			return nil, err
		}
		if i+1 < len(d.ToolCalls) && last[toolIndex(*tc)] == i {
			// Another tool call of this delta comes next and this one does not come
			// again: its arguments end here, whole in its own block.
			tail, err := af.endArgument(toolIndex(*tc))
			if err != nil {
				return nil, err
			}
			tc.Function.Arguments += tail
		}
	}
	if finish {
		tails, err := af.endArguments(nil)
		if err != nil {
			return nil, err
		}
		for _, t := range tails {
			if j := slices.IndexFunc(d.ToolCalls, func(tc toolCall) bool { return toolIndex(tc) == *t.Index }); j >= 0 {
				d.ToolCalls[j].Function.Arguments += t.Function.Arguments
			} else {
				d.ToolCalls = append(d.ToolCalls, t)
			}
		}
		tail, err := af.endContent()
		if err != nil {
			return nil, err
		}
		if tail != "" {
			d.Content = ptr(deref(d.Content) + tail)
		}
		if tail, err = af.endRefusal(); err != nil {
			return nil, err
		}
		if tail != "" {
			d.Refusal = ptr(deref(d.Refusal) + tail)
		}
		af.finished = !end
	}
	if d.Content != nil && ch.Index == 0 {
		// Content logging keeps the first choice's text.
		s.capture(*d.Content)
	}
	return before, nil
}

// sawAny reports whether an OpenAI or Anthropic stream ended properly: OpenAI streams
// end with [DONE] or at EOF after usage; Anthropic ones with message_stop.
func (s *streamRelay) sawAny(dec streamDecoder) bool {
	if d, ok := dec.(*openAIDecoder); ok {
		return d.sawUsage || d.sawDone || d.sawFinish
	}
	return false
}

func (s *streamRelay) capture(t string) {
	if s.req.CaptureText {
		s.text.WriteString(t)
		s.res.Text = s.text.String()
	}
}

func (r *Result) modelName() string {
	if r.Deployment != nil {
		return r.Deployment.UpstreamModel
	}
	return ""
}

type openAIDecoder struct {
	u                            Usage
	sawUsage, sawDone, sawFinish bool
	// calls numbers the tool calls of each choice that come without an index.
	calls map[int]*toolNumbers
}

// toolNumbers numbers the streamed tool calls of one choice. OpenAI gives each an
// index; a server that gives none is numbered here, so that the filters, the encoders
// and the relayed chunks agree on which call a delta continues: a call with a new id
// (or a second call in one delta) is the next one, a delta with neither index nor id
// continues the last.
type toolNumbers struct {
	ids  map[string]int
	next int
	last int
}

func (n *toolNumbers) number(tcs []toolCall) {
	for i := range tcs {
		tc := &tcs[i]
		switch {
		case tc.Index != nil:
		case tc.ID != "":
			if j, ok := n.ids[tc.ID]; ok {
				tc.Index = ptr(j)
			} else {
				tc.Index = ptr(n.next)
			}
		case i == 0 && n.next > 0:
			tc.Index = ptr(n.last)
		default:
			tc.Index = ptr(n.next)
		}
		if tc.ID != "" {
			n.ids[tc.ID] = *tc.Index
		}
		n.last, n.next = *tc.Index, max(n.next, *tc.Index+1)
	}
}

func (d *openAIDecoder) decode(_, data []byte) ([]chatChunk, bool, error) {
	if bytes.Equal(data, doneData) {
		d.sawDone = true
		return nil, true, nil
	}
	if errorEvent(nil, data) {
		// An error in the stream ({"error": {...}}, as OpenAI and vLLM send it).
		var e struct {
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != nil {
			msg := e.Error.Message
			if msg == "" {
				msg = "The model provider reported an error in the stream."
			}
			return nil, false, &streamError{msg: msg}
		}
	}
	var c chatChunk
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, false, fmt.Errorf("stream: %w: chunk: %w", ErrUpstreamBadResponse, err)
	}
	if c.Usage != nil {
		d.u, d.sawUsage = c.Usage.usage(), true
	}
	for i := range c.Choices {
		ch := &c.Choices[i]
		if ch.FinishReason != nil {
			d.sawFinish = true
		}
		ch.Delta.ThinkingBlocks = foreignThinking(ch.Delta.ThinkingBlocks)
		if len(ch.Delta.ToolCalls) > 0 {
			n := d.calls[ch.Index]
			if n == nil {
				if d.calls == nil {
					d.calls = map[int]*toolNumbers{}
				}
				n = &toolNumbers{ids: map[string]int{}}
				d.calls[ch.Index] = n
			}
			n.number(ch.Delta.ToolCalls)
		}
	}
	return []chatChunk{c}, false, nil
}

func (d *openAIDecoder) usage() (Usage, bool) { return d.u, d.sawUsage }

func (d *openAIDecoder) partial() (Usage, bool) { return d.usage() }

type anthropicDecoder struct {
	d    anthropicStreamDecoder
	seen bool
}

func (a *anthropicDecoder) decode(_, data []byte) ([]chatChunk, bool, error) {
	chunks, end, err := a.d.decode(data)
	if end {
		a.seen = true
	}
	return chunks, end, err
}

func (a *anthropicDecoder) usage() (Usage, bool) {
	if !a.seen {
		return Usage{}, false
	}
	return a.d.usage.usage(), true
}

// partial is the usage of message_start and the message_deltas so far.
func (a *anthropicDecoder) partial() (Usage, bool) {
	u := a.d.usage.usage()
	return u, u != Usage{}
}

type geminiDecoder struct{ d geminiStreamDecoder }

func (g *geminiDecoder) decode(_, data []byte) ([]chatChunk, bool, error) {
	chunks, err := g.d.decode(data)
	return chunks, false, err
}

func (g *geminiDecoder) usage() (Usage, bool) {
	if g.d.usage == nil {
		return Usage{}, false
	}
	return g.d.usage.usage(), true
}

// partial is Gemini's cumulative counts so far.
func (g *geminiDecoder) partial() (Usage, bool) { return g.usage() }

// chatEncoder renders chat chunks as a chat completions stream.
type chatEncoder struct {
	includeUsage bool
	id, model    string
	created      int64
	buf          []byte
}

func (e *chatEncoder) chunk(c *chatChunk) []byte {
	e.id, e.model, e.created = c.ID, c.Model, c.Created
	c.Object = "chat.completion.chunk"
	c.Usage = nil
	data, _ := json.Marshal(c)
	e.buf = appendEvent(e.buf[:0], "", data)
	return e.buf
}

func (e *chatEncoder) end(id string, u Usage) []byte {
	e.buf = e.buf[:0]
	if e.includeUsage {
		data, _ := json.Marshal(chatChunk{ID: e.id, Object: "chat.completion.chunk", Created: e.created, Model: e.model, Choices: []chunkChoice{}, Usage: u.json()})
		e.buf = appendEvent(e.buf, "", data)
	}
	return appendEvent(e.buf, "", doneData)
}

func (e *chatEncoder) fail(code, msg string) []byte {
	data, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": "server_error", "param": nil, "code": code}})
	return appendEvent(nil, "", data)
}
