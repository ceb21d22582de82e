package guardrail

import (
	"unsafe"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

// StreamFilter applies the response rules to one streamed text (one choice of one
// response), delta by delta. It is not safe for concurrent use.
//
// It releases text as soon as no BLOCK or REDACT rule can still match over it, so the
// caller sees all of the text, redacted, only a little later. What is held depends on
// the detector: the word being written (e-mail: from a local part on; API keys: a
// token with or towards a known prefix; phone, card, IBAN: a run of digits, separators
// or capitals), from "-----BEGIN" to the end of a PEM body, from a word that may begin
// an injection phrase (or from an open cluster of weak signals), and for custom
// patterns their width from a byte that may start a match. On ordinary chat text with
// every detector on, that is about 5 bytes on average and under 20 at most; HoldBack is
// the hard bound. AUDIT rules never hold text back.
type StreamFilter struct {
	set *ruleSet
	sc  *scanner
	// buf is the text not yet dropped, from absolute offset base on. It only grows at
	// the end and is resliced at the front, so a delta costs its own length, not the
	// buffer's, and every byte of its arrays is written once and never changed: strings
	// viewing it (text) are immutable, and outputs may share its memory. It is dropped
	// (set to nil), never truncated for reuse.
	buf     []byte
	base    int
	blocked *BlockedError
	done    bool
}

// minBuffer is the smallest array a stream filter buffers text in.
const minBuffer = 1 << 10

// NewStreamFilter returns a filter for one streamed response text. With no response
// rules it passes deltas through untouched.
func (p *Policy) NewStreamFilter() *StreamFilter {
	if p == nil {
		return &StreamFilter{}
	}
	return newStreamFilter(p.response)
}

// newStreamFilter returns a filter applying set, or passing text through if it is nil.
func newStreamFilter(set *ruleSet) *StreamFilter {
	if set == nil {
		return &StreamFilter{}
	}
	return &StreamFilter{set: set, sc: newScanner(set)}
}

// NewArgumentsFilter returns a filter for the JSON arguments of one tool call, streamed
// or whole: the BLOCK rules of the response cut them and the AUDIT rules count them,
// like text, but REDACT rules do not apply. A placeholder written into JSON could end up
// outside a string (a card number written as a JSON number) and break the arguments,
// and a redacted argument would silently change what the tool does; a team that wants
// secrets kept out of tool calls uses a BLOCK rule. The filter only holds text back for
// BLOCK rules, and what it releases is always the text it was given. Escaped characters
// are matched as written (a JSON escape such as \u0040 is not decoded).
func (p *Policy) NewArgumentsFilter() *StreamFilter {
	if p == nil {
		return &StreamFilter{}
	}
	return newStreamFilter(p.arguments)
}

// HoldBack is the most bytes a StreamFilter of this policy ever buffers: over its
// response rules, the largest window (how far past its start a match is read: see each
// detector) plus slack (min(256, window/8): how late a rule pending over a long span
// may run again), plus 7 bytes of context and UTF-8 alignment. It is 0 without
// response rules.
func (p *Policy) HoldBack() int {
	if p == nil || p.response == nil {
		return 0
	}
	return p.response.hold
}

// Write takes the next delta and returns the text that is now final, redacted. When a
// BLOCK rule matches it returns blocked true and no text: the caller must stop the
// stream (and send its error event, with the message of Blocked()); later calls return
// blocked again. Out may be empty while text is held back; concatenated, the outputs
// of Write and Flush are the whole text, redacted.
func (f *StreamFilter) Write(delta string) (out string, blocked bool) {
	if f.blocked != nil {
		return "", true
	}
	if f.set == nil {
		return delta, false
	}
	if f.done || delta == "" {
		return "", false
	}
	if cap(f.buf)-len(f.buf) < len(delta) {
		// Grow into a fresh array, with room for many deltas: dropping text from the
		// front eats the capacity of small arrays fast.
		b := make([]byte, len(f.buf), max(2*(len(f.buf)+len(delta)), minBuffer))
		copy(b, f.buf)
		f.buf = b
	}
	f.buf = append(f.buf, delta...)
	s := f.text()
	f.sc.scan(s, f.base, false)
	if f.sc.blocked >= 0 {
		return "", f.block()
	}
	out = f.sc.emit(s, f.base, f.sc.release(f.base+len(s)))
	if keep := f.sc.keep(); keep > f.base {
		f.buf = f.buf[keep-f.base:]
		f.base = keep
	}
	return out, false
}

// text views the buffer as a string without copying it; see buf for why that is safe.
func (f *StreamFilter) text() string { return unsafe.String(unsafe.SliceData(f.buf), len(f.buf)) }

// Flush ends the text: it decides what was held back and returns it, redacted, or
// reports that a BLOCK rule matched at the very end. Call it once, after the last
// delta; Write does nothing afterwards.
func (f *StreamFilter) Flush() (out string, blocked bool) {
	if f.blocked != nil {
		return "", true
	}
	if f.set == nil || f.done {
		return "", false
	}
	f.done = true
	s := f.text()
	f.sc.scan(s, f.base, true)
	if f.sc.blocked >= 0 {
		return "", f.block()
	}
	out = f.sc.emit(s, f.base, f.base+len(s))
	f.buf = nil
	return out, false
}

func (f *StreamFilter) block() bool {
	f.blocked = f.set.blockedError(f.sc.blocked)
	f.buf = nil
	return true
}

// Blocked returns the error describing the BLOCK rule that cut the stream, or nil.
func (f *StreamFilter) Blocked() *BlockedError { return f.blocked }

// Events returns one event per rule that matched so far, in policy order. After a
// block, matches in text that was never released may be missing.
func (f *StreamFilter) Events() []*gatehousev1.GuardrailEvent {
	if f.sc == nil {
		return nil
	}
	return f.sc.events()
}

// buffered is how many bytes the filter holds (for tests).
func (f *StreamFilter) buffered() int { return len(f.buf) }
