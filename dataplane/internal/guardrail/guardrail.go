// Package guardrail applies a team's guardrail rules (config.proto GuardrailRule) to the
// text of LLM requests and responses: it finds e-mail addresses, phone numbers, card
// numbers (Luhn-checked), IBANs (mod-97-checked), API keys, PEM private keys, prompt
// injection attempts and custom RE2 patterns, and blocks, redacts or only counts them.
//
// Compile turns the snapshot's rules into an immutable Policy, safe for concurrent use.
// Requests are checked whole (CheckRequest on texts, or CheckRequestJSON on a raw body);
// responses whole (CheckResponse, CheckResponseJSON) or as a stream of text deltas
// through a StreamFilter (ChatStream wraps one per choice around OpenAI chat chunks),
// which holds back only the tail that could still be part of a match and gives exactly
// the output of the whole-text check for any split of the text. Each text of a
// response (its content, each block of reasoning) gets a StreamFilter of its own; the
// JSON arguments of a tool call get an ArgumentsFilter, which blocks and counts but
// never rewrites them.
//
// It reports what matched as usage GuardrailEvents (rule, detector, mode, direction,
// count), never the matched text. It does not read SSE framing, render errors or record
// usage: callers do, with the safe message of a BlockedError.
package guardrail

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

// Policy is a compiled set of guardrail rules. It is immutable and safe for concurrent
// use; a nil *Policy or one compiled from no rules lets everything through at the cost of
// a nil check.
type Policy struct {
	request  *ruleSet // nil when no rule applies to requests
	response *ruleSet // nil when no rule applies to responses
	// arguments are the response rules that apply to tool call arguments: all but the
	// REDACT ones (see NewArgumentsFilter); nil when there are none.
	arguments *ruleSet
}

// ruleSet is the rules of one direction, in policy order.
type ruleSet struct {
	direction string
	rules     []*rule
	hold      int // the most bytes a stream filter may buffer (see StreamFilter)
}

type rule struct {
	id, name    string
	label       string // detector name in events and placeholders, e.g. "api_key"
	mode        gatehousev1.GuardrailMode
	modeName    string
	placeholder string // "[REDACTED:<label>]"
	find        finder
}

// BlockedError reports that a BLOCK rule matched. Its message names the rule and the
// detector, never the matched text, and is safe to show to the caller.
type BlockedError struct {
	RuleID    string
	RuleName  string
	Detector  string // "api_key", "email", …
	Direction string // "request" or "response"
}

func (e *BlockedError) Error() string {
	name := e.RuleName
	if name == "" {
		name = e.RuleID
	}
	return fmt.Sprintf("%s blocked by guardrail %q (%s)", e.Direction, name, e.Detector)
}

// Outcome is the verdict on the texts of a request or of a complete response.
type Outcome struct {
	// Blocked is set when a BLOCK rule matched; the request must be refused (or the
	// response withheld) and Texts is nil.
	Blocked *BlockedError
	// Texts are the checked texts after redaction, index for index. When nothing was
	// redacted it is the slice passed in.
	Texts []string
	// Changed reports that at least one text was redacted.
	Changed bool
	// Events has one event per rule that matched, in policy order, with the number of
	// matches over all texts; nil when nothing matched.
	Events []*gatehousev1.GuardrailEvent
}

// Compile validates rules and compiles them. Every rule needs an id (unique), a known
// detector, mode and direction, and CUSTOM_REGEX rules a valid RE2 pattern that cannot
// match empty text (see custom.go for how long matches are bounded). pattern is ignored
// for the other detectors. All problems are reported together.
func Compile(rules []*gatehousev1.GuardrailRule) (*Policy, error) {
	req := &ruleSet{direction: "request"}
	resp := &ruleSet{direction: "response"}
	var errs []error
	seen := make(map[string]bool, len(rules))
	for i, pr := range rules {
		r, err := compileRule(pr)
		if err != nil {
			if id := pr.GetId(); strings.TrimSpace(id) != "" {
				errs = append(errs, fmt.Errorf("rule %q: %w", id, err))
			} else {
				errs = append(errs, fmt.Errorf("rule %d: %w", i, err))
			}
			continue
		}
		if seen[r.id] {
			errs = append(errs, fmt.Errorf("rule %q: duplicate id", r.id))
			continue
		}
		seen[r.id] = true
		switch pr.GetDirection() {
		case gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_REQUEST:
			req.add(r)
		case gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_RESPONSE:
			resp.add(r)
		default: // BOTH, checked by compileRule
			req.add(r)
			resp.add(r)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("compile guardrails: %w", err)
	}
	p := &Policy{}
	if len(req.rules) > 0 {
		p.request = req
	}
	if len(resp.rules) > 0 {
		p.response = resp
	}
	args := &ruleSet{direction: resp.direction}
	for _, r := range resp.rules {
		if r.mode != gatehousev1.GuardrailMode_GUARDRAIL_MODE_REDACT {
			args.add(r)
		}
	}
	if len(args.rules) > 0 {
		p.arguments = args
	}
	return p, nil
}

func (s *ruleSet) add(r *rule) {
	s.rules = append(s.rules, r)
	// The filter keeps context before the earliest hold, may run a rule late (slack)
	// and may stop its output up to three bytes early so as not to split a UTF-8
	// sequence.
	w := r.find.window()
	s.hold = max(s.hold, w+slack(w)+contextBytes+utf8.UTFMax-1)
}

func compileRule(pr *gatehousev1.GuardrailRule) (*rule, error) {
	if pr == nil {
		return nil, errors.New("rule is nil")
	}
	if strings.TrimSpace(pr.Id) == "" {
		return nil, errors.New("id is required")
	}
	r := &rule{id: pr.Id, name: pr.Name, mode: pr.Mode}
	switch pr.Mode {
	case gatehousev1.GuardrailMode_GUARDRAIL_MODE_BLOCK:
		r.modeName = "block"
	case gatehousev1.GuardrailMode_GUARDRAIL_MODE_REDACT:
		r.modeName = "redact"
	case gatehousev1.GuardrailMode_GUARDRAIL_MODE_AUDIT:
		r.modeName = "audit"
	default:
		return nil, fmt.Errorf("unknown mode %v", pr.Mode)
	}
	switch pr.Direction {
	case gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_REQUEST,
		gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_RESPONSE,
		gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_BOTH:
	default:
		return nil, fmt.Errorf("unknown direction %v", pr.Direction)
	}
	switch pr.Detector {
	case gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_EMAIL:
		r.label, r.find = "email", positional{emailDetector{}}
	case gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_PHONE:
		r.label, r.find = "phone", positional{phoneDetector{}}
	case gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_CARD:
		r.label, r.find = "card", positional{cardDetector{}}
	case gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_IBAN:
		r.label, r.find = "iban", positional{ibanDetector{}}
	case gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_API_KEY:
		r.label, r.find = "api_key", positional{apiKeyDetector{}}
	case gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_PRIVATE_KEY:
		r.label, r.find = "private_key", positional{privateKeyDetector{}}
	case gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_PROMPT_INJECTION:
		r.label, r.find = "prompt_injection", injectionFinder{}
	case gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_CUSTOM_REGEX:
		f, err := compileCustom(pr.Pattern)
		if err != nil {
			return nil, err
		}
		r.label, r.find = "custom_regex", f
	default:
		return nil, fmt.Errorf("unknown detector %v", pr.Detector)
	}
	r.placeholder = "[REDACTED:" + r.label + "]"
	return r, nil
}

// CheckRequest applies the request rules to texts: each on its own, and then all of
// them as one text, as the text parts of one message's content are read (a card number
// split over two parts counts too). It does not modify texts.
func (p *Policy) CheckRequest(texts []string) Outcome {
	if p == nil {
		return Outcome{Texts: texts}
	}
	joins := make([]bool, len(texts))
	for i := 1; i < len(joins); i++ {
		joins[i] = true
	}
	return p.request.checkTexts(texts, joins)
}

// CheckResponse applies the response rules to complete response texts (one per choice),
// each checked on its own. For any text t and any split of t into deltas, a StreamFilter
// fed those deltas writes exactly CheckResponse([]string{t}).Texts[0] and blocks exactly
// when this blocks.
func (p *Policy) CheckResponse(texts []string) Outcome {
	if p == nil {
		return Outcome{Texts: texts}
	}
	return p.response.check(texts)
}

// HasRequestRules reports whether any rule applies to requests, so callers can skip
// extracting request text altogether.
func (p *Policy) HasRequestRules() bool { return p != nil && p.request != nil }

// HasResponseRules reports whether any rule applies to responses.
func (p *Policy) HasResponseRules() bool { return p != nil && p.response != nil }

func (s *ruleSet) check(texts []string) Outcome { return s.checkTexts(texts, nil) }

// checkTexts checks each text on its own and the matches that cross from one text into
// the next where joins[k] says texts[k] continues texts[k-1] (see across); nil joins
// none.
func (s *ruleSet) checkTexts(texts []string, joins []bool) Outcome {
	if s == nil {
		return Outcome{Texts: texts}
	}
	sc := newScanner(s)
	var out []string
	for i, t := range texts {
		sc.reset()
		sc.scan(t, 0, true)
		if sc.blocked >= 0 {
			// No output is needed any more, but keep counting over the other texts
			// so the events are complete.
			continue
		}
		red := sc.emit(t, 0, len(t))
		if out == nil && red != t {
			out = make([]string, len(texts))
			copy(out, texts[:i])
		}
		if out != nil {
			out[i] = red
		}
	}
	if joins != nil && sc.blocked < 0 && slices.Contains(joins, true) {
		cur := texts
		if out != nil {
			cur = out
		}
		if next := s.across(sc, cur, joins); next != nil {
			out = next
		}
	}
	o := Outcome{Events: sc.events()}
	if sc.blocked >= 0 {
		o.Blocked = s.blockedError(sc.blocked)
		return o
	}
	if out != nil {
		o.Texts, o.Changed = out, true
	} else {
		o.Texts = texts
	}
	return o
}

// across finds the matches that cross from one of texts into the next when they are
// read as one string — only where joins[k] says texts[k] continues texts[k-1] —
// counting them on sc (and blocking). A crossing REDACT match is replaced by its
// placeholder in each text it covers part of. It returns the redacted texts, or nil
// when nothing changed. Matches within one text were found (and redacted) by the check
// of each text.
func (s *ruleSet) across(sc *scanner, texts []string, joins []bool) []string {
	bounds := make([]int, len(texts)+1)
	var b strings.Builder
	for i, t := range texts {
		bounds[i] = b.Len()
		b.WriteString(t)
	}
	bounds[len(texts)] = b.Len()
	joined := b.String()
	// in returns the index of the text holding joined[at] (the last of several that
	// start there: the others are empty).
	in := func(at int) int {
		k, _ := slices.BinarySearch(bounds, at+1)
		return k - 1
	}
	var regions []match
	for i, r := range s.rules {
		// Each run of joined texts is read as a text of its own: what comes before or
		// after it (another message) neither starts nor ends a match. A match is
		// decided within window bytes of its start, so one crossing the boundary at b
		// starts after b-window and is decided before b+window: only that much around
		// each boundary is read again, the spans of boundaries closer than that
		// merged into one.
		w := r.find.window()
		for k0 := 0; k0 < len(texts); {
			k1 := k0
			for k1+1 < len(texts) && joins[k1+1] {
				k1++
			}
			runLo, runHi := bounds[k0], bounds[k1+1]
			for k := k0 + 1; k <= k1; {
				lo, hi := max(bounds[k]-w, runLo), min(bounds[k]+w, runHi)
				for k++; k <= k1 && bounds[k]-w < hi; k++ {
					hi = min(bounds[k]+w, runHi)
				}
				base := max(lo-contextBytes, runLo)
				sub := joined[base:hi]
				for from := lo - base; from < len(sub); {
					start, end, ok, _ := r.find.next(sub, from, true)
					if !ok {
						break
					}
					from = max(end, start+1)
					start, end = start+base, end+base
					first, last := in(start), in(end-1)
					if first == last || extends(r.find, texts[first], start-bounds[first], -1) ||
						extends(r.find, texts[last], -1, end-bounds[last]) {
						continue
					}
					sc.counts[i]++
					switch r.mode {
					case gatehousev1.GuardrailMode_GUARDRAIL_MODE_BLOCK:
						if sc.blocked < 0 || i < sc.blocked {
							sc.blocked = i
						}
					case gatehousev1.GuardrailMode_GUARDRAIL_MODE_REDACT:
						regions = append(regions, match{start: start, end: end, rule: i})
					}
				}
			}
			k0 = k1 + 1
		}
	}
	if sc.blocked >= 0 || len(regions) == 0 {
		return nil
	}
	// Overlapping matches merge into one placeholder, named by the first.
	slices.SortFunc(regions, func(a, b match) int {
		if a.start != b.start {
			return a.start - b.start
		}
		return a.rule - b.rule
	})
	merged := regions[:1]
	for _, m := range regions[1:] {
		if last := &merged[len(merged)-1]; m.start < last.end {
			last.end = max(last.end, m.end)
			continue
		}
		merged = append(merged, m)
	}
	out := make([]string, len(texts))
	for k := range texts {
		lo, hi := bounds[k], bounds[k+1]
		var tb strings.Builder
		pos := lo
		for _, m := range merged {
			if lo == hi || m.end <= lo || m.start >= hi {
				continue
			}
			// Each text keeps a placeholder for its part of the match: none is left
			// empty (Anthropic refuses an empty text block).
			tb.WriteString(joined[pos:max(m.start, lo)])
			tb.WriteString(s.rules[m.rule].placeholder)
			pos = min(m.end, hi)
		}
		tb.WriteString(joined[pos:hi])
		out[k] = tb.String()
	}
	return out
}

// extends reports whether f matches within t alone at the same start (start ≥ 0) or
// with the same end (end ≥ 0): a match across texts that only runs on from such a match
// (an email followed by a word in the next text) is not one of its own.
func extends(f finder, t string, start, end int) bool {
	if start >= 0 {
		s, _, ok, _ := f.next(t, start, true)
		return ok && s == start
	}
	for from := 0; from < len(t); {
		s, e, ok, _ := f.next(t, from, true)
		if !ok || s >= end {
			return false
		}
		if e == end {
			return true
		}
		from = max(e, s+1)
	}
	return false
}

func (s *ruleSet) blockedError(i int) *BlockedError {
	r := s.rules[i]
	return &BlockedError{RuleID: r.id, RuleName: r.name, Detector: r.label, Direction: s.direction}
}
