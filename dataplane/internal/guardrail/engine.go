package guardrail

import (
	"slices"
	"strings"
	"unicode/utf8"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

// How streaming stays equal to whole-text checking
//
// Every detector defines its matches on the whole text as a leftmost-first sequence:
// the first match is the one starting at the smallest offset, the next one is searched
// from its end, and so on. Whether a match starts at offset q (and where it ends) may
// depend only on a bounded window: at most contextBytes before q and at most window()
// bytes from q. A finder reports a match only once no continuation of the text can
// change it, and otherwise says from which offset on the text must be kept (its hold).
// A stream filter therefore finds exactly the matches of the whole text, and it may
// release every byte before the smallest hold of the rules that change output.

// contextBytes is how far before its search offset a finder may look (word boundaries
// look at one byte; a little slack costs nothing).
const contextBytes = 4

// A finder finds the matches of one detector.
type finder interface {
	// next returns the leftmost match starting at or after from in s. If final is
	// false, more text may follow s: next then reports a match only when no
	// continuation can change it, and otherwise returns ok false and hold, the
	// smallest offset ≥ from at which a match may still start (len(s) if none can).
	// When final is true and there is no match, hold is len(s). s[from-contextBytes:]
	// is the real text before from unless from < contextBytes (then s starts the text).
	next(s string, from int, final bool) (start, end int, ok bool, hold int)
	// window bounds how many bytes from a match's start next reads to decide it; a
	// stream filter never holds back more than the largest window (plus context).
	window() int
}

// verdict is a detector's answer for one offset.
type verdict uint8

const (
	no    verdict = iota // no match starts here, whatever follows
	yes                  // a match starts here; its end is final
	maybe                // more text is needed to decide
)

// undecided is the verdict when a scan reaches the end of s: with more text to come
// the match may still happen; at the true end it does not.
func undecided(final bool) verdict {
	if final {
		return no
	}
	return maybe
}

// An offsetDetector decides matches offset by offset.
type offsetDetector interface {
	// candidate returns the first offset ≥ q at which at may answer yes or maybe, or
	// len(s). It lets the scan skip text cheaply.
	candidate(s string, q int, final bool) int
	// at decides whether a match starts at q and where it ends.
	at(s string, q int, final bool) (end int, v verdict)
	window() int
}

// positional adapts an offsetDetector to a finder: the first offset answering yes is
// the match, the first answering maybe is the hold.
type positional struct{ d offsetDetector }

func (p positional) next(s string, from int, final bool) (int, int, bool, int) {
	for q := from; ; q++ {
		q = p.d.candidate(s, q, final)
		if q >= len(s) {
			return 0, 0, false, len(s)
		}
		end, v := p.d.at(s, q, final)
		switch v {
		case yes:
			return q, end, true, q
		case maybe:
			return 0, 0, false, q
		}
	}
}

func (p positional) window() int { return p.d.window() }

// match is a decided match of a REDACT rule, in absolute offsets.
type match struct {
	start, end int
	rule       int
}

// scanner runs the rules of one direction over one text or one stream. Offsets are
// absolute (from the start of the text or stream); the text it is given is a window
// starting at base.
type scanner struct {
	set     *ruleSet
	pos     []int // per rule: matches before pos are found, none is undecided before it
	counts  []int // per rule: matches found
	scanned []int // per rule: where the text ended when the rule last ran
	pending []match
	// blocked is the lowest index of a BLOCK rule that matched, or -1.
	blocked int
	// cursor is where output stops: text before it was written or replaced.
	cursor int
	// regionEnd is the end of the text covered by the last placeholder written;
	// overlapping matches of other rules merge into it.
	regionEnd int
}

func newScanner(s *ruleSet) *scanner {
	n := len(s.rules)
	buf := make([]int, 3*n)
	return &scanner{set: s, pos: buf[:n:n], counts: buf[n : 2*n : 2*n], scanned: buf[2*n:], blocked: -1}
}

// reset prepares the scanner for a new text, keeping counts and blocked.
func (sc *scanner) reset() {
	clear(sc.pos)
	clear(sc.scanned)
	sc.pending = sc.pending[:0]
	sc.cursor, sc.regionEnd = 0, 0
}

// rescanEvery bounds how many bytes may arrive before a rule whose match is pending
// over a long span runs again.
const rescanEvery = 256

// slack is how far past its window a rule's stale hold may fall before the rule must
// run again; it adds to the stream filter's bound.
func slack(window int) int { return min(rescanEvery, window/8) }

// scan runs every rule over s (the text from absolute offset base on) and records the
// matches that are decided.
//
// A finder reads the whole pending span on every run, so a long pending match (a PEM
// block) would cost time quadratic in its length if rescanned on every delta. Before
// the final scan, a rule pending over a span of n bytes therefore runs again only once
// min(rescanEvery, n/8) new bytes have arrived, and as long as n stays within the rule's
// window plus slack. Skipping a run never changes a decision, it only delays it (and
// the output behind it) by at most rescanEvery bytes. Streaming thus costs at most
// about 8 times what checking the whole text does.
func (sc *scanner) scan(s string, base int, final bool) {
	end := base + len(s)
	for i, r := range sc.set.rules {
		if !final {
			span, fresh := end-sc.pos[i], end-sc.scanned[i]
			if w := r.find.window(); fresh < min(rescanEvery, span/8) && span < w+slack(w) {
				continue
			}
			sc.scanned[i] = end
		}
		for {
			start, end, ok, hold := r.find.next(s, sc.pos[i]-base, final)
			if !ok {
				sc.pos[i] = base + hold
				break
			}
			sc.counts[i]++
			sc.pos[i] = base + end
			switch r.mode {
			case gatehousev1.GuardrailMode_GUARDRAIL_MODE_BLOCK:
				if sc.blocked < 0 || i < sc.blocked {
					sc.blocked = i
				}
			case gatehousev1.GuardrailMode_GUARDRAIL_MODE_REDACT:
				sc.pending = append(sc.pending, match{start: base + start, end: base + end, rule: i})
			}
		}
	}
}

// release is the absolute offset before which output is final: no BLOCK or REDACT rule
// can still start a match before it. AUDIT rules never delay output.
func (sc *scanner) release(end int) int {
	r := end
	for i, rl := range sc.set.rules {
		if rl.mode != gatehousev1.GuardrailMode_GUARDRAIL_MODE_AUDIT {
			r = min(r, sc.pos[i])
		}
	}
	return r
}

// keep is the absolute offset before which the text is no longer needed.
func (sc *scanner) keep() int {
	k := sc.cursor
	for _, p := range sc.pos {
		k = min(k, p)
	}
	return k - contextBytes
}

// emit returns the output for the text from the cursor up to upTo (absolute), with
// REDACT matches replaced by placeholders. Overlapping matches (of different rules)
// merge into one placeholder, named by the match that starts first (on a tie, the
// earlier rule). s holds the text from base on. The output is a substring of s unless
// something was replaced.
func (sc *scanner) emit(s string, base, upTo int) string {
	// Never split a UTF-8 sequence between two outputs.
	for upTo > sc.cursor && upTo-base < len(s) && !utf8.RuneStart(s[upTo-base]) {
		upTo--
	}
	if len(sc.pending) == 0 || sc.pending[0].start >= upTo && len(sc.pending) == 1 {
		return sc.plain(s, base, upTo)
	}
	slices.SortFunc(sc.pending, func(a, b match) int {
		if a.start != b.start {
			return a.start - b.start
		}
		return a.rule - b.rule
	})
	var b strings.Builder
	n := 0
	for _, m := range sc.pending {
		if m.start >= upTo {
			break
		}
		n++
		if m.start < sc.regionEnd {
			sc.regionEnd = max(sc.regionEnd, m.end)
			sc.cursor = max(sc.cursor, sc.regionEnd)
			continue
		}
		b.WriteString(s[sc.cursor-base : m.start-base])
		b.WriteString(sc.set.rules[m.rule].placeholder)
		sc.regionEnd, sc.cursor = m.end, m.end
	}
	sc.pending = sc.pending[:copy(sc.pending, sc.pending[n:])]
	if n == 0 {
		return sc.plain(s, base, upTo)
	}
	b.WriteString(sc.plain(s, base, upTo))
	return b.String()
}

// plain returns the text from the cursor to upTo unchanged and advances the cursor.
func (sc *scanner) plain(s string, base, upTo int) string {
	if upTo <= sc.cursor {
		return ""
	}
	out := s[sc.cursor-base : upTo-base]
	sc.cursor = upTo
	return out
}

// events returns one event per rule that matched.
func (sc *scanner) events() []*gatehousev1.GuardrailEvent { return events(sc.set, sc.counts) }

// events returns one event per rule with a non-zero count, in policy order.
func events(set *ruleSet, counts []int) []*gatehousev1.GuardrailEvent {
	var evs []*gatehousev1.GuardrailEvent
	for i, c := range counts {
		if c == 0 {
			continue
		}
		r := set.rules[i]
		evs = append(evs, &gatehousev1.GuardrailEvent{
			RuleId:    r.id,
			Detector:  r.label,
			Mode:      r.modeName,
			Direction: set.direction,
			Matches:   int32(min(c, 1<<31-1)),
		})
	}
	return evs
}
