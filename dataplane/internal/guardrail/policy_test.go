package guardrail

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

func TestCompileRejectsInvalidRules(t *testing.T) {
	t.Parallel()
	valid := newRule("ok", detEmail, modeRedact, dirBoth)
	withID := func(id string) *gatehousev1.GuardrailRule {
		r := newRule(id, detEmail, modeRedact, dirBoth)
		return r
	}
	for _, tc := range []struct {
		name  string
		rules []*gatehousev1.GuardrailRule
		want  []string // substrings of the error
	}{
		{"nil rule", []*gatehousev1.GuardrailRule{nil}, []string{"rule 0: rule is nil"}},
		{"empty id", []*gatehousev1.GuardrailRule{valid, withID(" ")}, []string{"rule 1: id is required"}},
		{"duplicate id", []*gatehousev1.GuardrailRule{valid, withID("ok")}, []string{`rule "ok": duplicate id`}},
		{"unspecified detector", []*gatehousev1.GuardrailRule{newRule("d", 0, modeRedact, dirBoth)},
			[]string{`rule "d": unknown detector GUARDRAIL_DETECTOR_UNSPECIFIED`}},
		{"unknown detector", []*gatehousev1.GuardrailRule{newRule("d", 99, modeRedact, dirBoth)}, []string{`rule "d": unknown detector 99`}},
		{"unspecified mode", []*gatehousev1.GuardrailRule{newRule("m", detEmail, 0, dirBoth)},
			[]string{`rule "m": unknown mode GUARDRAIL_MODE_UNSPECIFIED`}},
		{"unknown direction", []*gatehousev1.GuardrailRule{newRule("x", detEmail, modeAudit, 7)}, []string{`rule "x": unknown direction 7`}},
		{"no pattern", []*gatehousev1.GuardrailRule{customRule("c", "", modeRedact)}, []string{`rule "c": custom_regex needs a pattern`}},
		{"bad regex", []*gatehousev1.GuardrailRule{customRule("c", "a(b", modeRedact)}, []string{`rule "c": bad pattern`, "missing closing )"}},
		{"lookahead is not RE2", []*gatehousev1.GuardrailRule{customRule("c", "a(?=b)", modeRedact)}, []string{`rule "c": bad pattern`}},
		{"matches empty", []*gatehousev1.GuardrailRule{customRule("c", "a*", modeRedact)}, []string{"can match empty text"}},
		{"assertion only", []*gatehousev1.GuardrailRule{customRule("c", `\b`, modeRedact)}, []string{"can match empty text"}},
		{"too wide", []*gatehousev1.GuardrailRule{customRule("c", `.{1000}.{1000}`, modeRedact)}, []string{"over the limit of 1024"}},
		{"too complex", []*gatehousev1.GuardrailRule{customRule("c", `[a-z]{1,200}[0-9]{1,200}`, modeRedact)}, []string{"too complex"}},
		{"unbounded repeats are capped", []*gatehousev1.GuardrailRule{customRule("c", `(?s).+.+.+.+.+`, modeRedact)}, []string{"1280 bytes long"}},
		{"nested unbounded", []*gatehousev1.GuardrailRule{customRule("c", `(a+b+)+`, modeRedact)}, []string{`rule "c": bad pattern`}},
		{"all reported", []*gatehousev1.GuardrailRule{withID(""), newRule("d", 0, modeBlock, dirBoth)},
			[]string{"rule 0: id is required", `rule "d": unknown detector`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := Compile(tc.rules)
			if err == nil {
				t.Fatalf("Compile succeeded: %+v", p)
			}
			if !strings.HasPrefix(err.Error(), "compile guardrails: ") {
				t.Errorf("error %q lacks the operation prefix", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// Not parallel: it measures allocations.
func TestNoRulesCostNothing(t *testing.T) {
	var nilPolicy *Policy
	empty := mustCompile(t)
	reqOnly := mustCompile(t, newRule("r", detEmail, modeBlock, dirRequest))
	texts := []string{"mail a@b.io", "x"}
	for name, p := range map[string]*Policy{"nil": nilPolicy, "empty": empty, "request rules only": reqOnly} {
		o := p.CheckResponse(texts)
		if o.Blocked != nil || o.Changed || o.Events != nil || &o.Texts[0] != &texts[0] {
			t.Errorf("%s: CheckResponse = %+v, want the texts back untouched", name, o)
		}
		f := p.NewStreamFilter()
		if out, blocked := f.Write("a@b.io"); out != "a@b.io" || blocked {
			t.Errorf("%s: Write = %q, %v", name, out, blocked)
		}
		if out, blocked := f.Flush(); out != "" || blocked || f.Events() != nil {
			t.Errorf("%s: Flush = %q, %v", name, out, blocked)
		}
		if p.HasResponseRules() || p.HoldBack() != 0 {
			t.Errorf("%s: reports response rules", name)
		}
	}
	if o := nilPolicy.CheckRequest(texts); &o.Texts[0] != &texts[0] || nilPolicy.HasRequestRules() {
		t.Errorf("nil policy: CheckRequest = %+v", o)
	}
	if allocs := testing.AllocsPerRun(100, func() { empty.CheckRequest(texts) }); allocs != 0 {
		t.Errorf("empty policy allocates %v times per check", allocs)
	}
}

func TestModes(t *testing.T) {
	t.Parallel()
	in := []string{"mail john@example.com or jane@example.com", "no address", "ops@example.org"}
	for _, tc := range []struct {
		mode    gatehousev1.GuardrailMode
		blocked *BlockedError
		texts   []string
		changed bool
	}{
		{mode: modeBlock, blocked: &BlockedError{RuleID: "pii", RuleName: "No PII", Detector: "email", Direction: "request"}},
		{mode: modeRedact, texts: []string{"mail [REDACTED:email] or [REDACTED:email]", "no address", "[REDACTED:email]"}, changed: true},
		{mode: modeAudit, texts: in},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			t.Parallel()
			r := newRule("pii", detEmail, tc.mode, dirRequest)
			r.Name = "No PII"
			got := mustCompile(t, r).CheckRequest(in)
			want := Outcome{
				Blocked: tc.blocked,
				Texts:   tc.texts,
				Changed: tc.changed,
				Events: []*gatehousev1.GuardrailEvent{{
					RuleId: "pii", Detector: "email", Mode: strings.ToLower(strings.TrimPrefix(tc.mode.String(), "GUARDRAIL_MODE_")),
					Direction: "request", Matches: 3,
				}},
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("CheckRequest (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBlockedError(t *testing.T) {
	t.Parallel()
	p := mustCompile(t,
		&gatehousev1.GuardrailRule{Id: "k1", Name: "no-secrets", Detector: detAPIKey, Mode: modeBlock, Direction: dirBoth},
		&gatehousev1.GuardrailRule{Id: "pem-rule", Detector: detPEM, Mode: modeBlock, Direction: dirBoth},
	)
	o := p.CheckRequest([]string{"my key is " + openAIKey})
	if got, want := o.Blocked.Error(), `request blocked by guardrail "no-secrets" (api_key)`; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	var be *BlockedError
	if !errors.As(error(o.Blocked), &be) || be.RuleID != "k1" {
		t.Errorf("errors.As: %+v", be)
	}
	// Without a name the id stands in; both rules matched, the first in policy order wins.
	o = p.CheckResponse([]string{pemRSA + " " + awsKey})
	if got, want := o.Blocked.Error(), `response blocked by guardrail "no-secrets" (api_key)`; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	o = p.CheckResponse([]string{pemRSA})
	if got, want := o.Blocked.Error(), `response blocked by guardrail "pem-rule" (private_key)`; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	if len(o.Events) != 1 || o.Events[0].Matches != 1 || o.Texts != nil {
		t.Errorf("outcome = %+v", o)
	}
}

func TestDirections(t *testing.T) {
	t.Parallel()
	p := mustCompile(t,
		newRule("req", detEmail, modeRedact, dirRequest),
		newRule("resp", detPhone, modeRedact, dirResponse),
		newRule("both", detCard, modeAudit, dirBoth),
	)
	text := []string{"a@b.io, 415-555-2671, 4111111111111111"}
	req := p.CheckRequest(text)
	resp := p.CheckResponse(text)
	if got, want := req.Texts[0], "[REDACTED:email], 415-555-2671, 4111111111111111"; got != want {
		t.Errorf("request text = %q, want %q", got, want)
	}
	if got, want := resp.Texts[0], "a@b.io, [REDACTED:phone], 4111111111111111"; got != want {
		t.Errorf("response text = %q, want %q", got, want)
	}
	wantReq := []*gatehousev1.GuardrailEvent{
		{RuleId: "req", Detector: "email", Mode: "redact", Direction: "request", Matches: 1},
		{RuleId: "both", Detector: "card", Mode: "audit", Direction: "request", Matches: 1},
	}
	wantResp := []*gatehousev1.GuardrailEvent{
		{RuleId: "resp", Detector: "phone", Mode: "redact", Direction: "response", Matches: 1},
		{RuleId: "both", Detector: "card", Mode: "audit", Direction: "response", Matches: 1},
	}
	if diff := cmp.Diff(wantReq, req.Events, protocmp.Transform()); diff != "" {
		t.Errorf("request events (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantResp, resp.Events, protocmp.Transform()); diff != "" {
		t.Errorf("response events (-want +got):\n%s", diff)
	}
	s := p.NewStreamFilter()
	out, _ := s.Write(text[0])
	tail, _ := s.Flush()
	if out+tail != resp.Texts[0] {
		t.Errorf("stream = %q, want %q", out+tail, resp.Texts[0])
	}
	if diff := cmp.Diff(wantResp, s.Events(), protocmp.Transform()); diff != "" {
		t.Errorf("stream events (-want +got):\n%s", diff)
	}
}

func TestOverlappingMatchesMerge(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		rules []*gatehousev1.GuardrailRule
		in    string
		want  string
	}{
		{"earlier start names the placeholder",
			[]*gatehousev1.GuardrailRule{newRule("email", detEmail, modeRedact, dirBoth), customRule("c", `to: \w+`, modeRedact)},
			"send to: john@example.com now", "send [REDACTED:custom_regex] now"},
		{"same start: earlier rule",
			[]*gatehousev1.GuardrailRule{customRule("c", `john@\w+`, modeRedact), newRule("email", detEmail, modeRedact, dirBoth)},
			"john@example.com", "[REDACTED:custom_regex]"},
		{"chain of overlaps is one region",
			[]*gatehousev1.GuardrailRule{customRule("a", `aa bb`, modeRedact), customRule("b", `bb cc`, modeRedact), customRule("c", `cc dd`, modeRedact)},
			"xx aa bb cc dd ee", "xx [REDACTED:custom_regex] ee"},
		{"adjacent matches stay apart",
			[]*gatehousev1.GuardrailRule{customRule("a", `ab`, modeRedact), customRule("b", `cd`, modeRedact)},
			"abcd", "[REDACTED:custom_regex][REDACTED:custom_regex]"},
		{"audit never rewrites",
			[]*gatehousev1.GuardrailRule{newRule("email", detEmail, modeAudit, dirBoth), customRule("c", `\.com`, modeRedact)},
			"john@example.com", "john@example[REDACTED:custom_regex]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkRedacts(t, mustCompile(t, tc.rules...), tc.in, tc.want)
		})
	}
}

func TestCheckRequestAliasesUnchangedTexts(t *testing.T) {
	t.Parallel()
	p := redactAll(t)
	texts := []string{"hello", "nothing to see"}
	o := p.CheckRequest(texts)
	if o.Changed || &o.Texts[0] != &texts[0] || o.Events != nil {
		t.Errorf("outcome = %+v, want the input slice", o)
	}
	texts = []string{"hello", "a@b.io"}
	o = p.CheckRequest(texts)
	if !o.Changed || o.Texts[0] != "hello" || o.Texts[1] != "[REDACTED:email]" || texts[1] != "a@b.io" {
		t.Errorf("outcome = %+v (input %q)", o, texts)
	}
}

func TestPolicyIsSafeForConcurrentUse(t *testing.T) {
	t.Parallel()
	p := redactAll(t)
	in := "john@example.com " + openAIKey + " 4111 1111 1111 1111"
	want, _ := whole(p, in)
	done := make(chan string)
	for range 8 {
		go func() {
			got, _, _ := streamed(p, in[:7], in[7:30], in[30:])
			if o := p.CheckResponse([]string{in}); o.Texts[0] != got {
				got = "mismatch"
			}
			done <- got
		}()
	}
	for range 8 {
		if got := <-done; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

// TestMatchesAcrossTexts: request texts are also read as one, so a value split over
// two parts is found, and redacted in each (none left empty); a match within one text that merely runs on into
// the next is not counted twice.
func TestMatchesAcrossTexts(t *testing.T) {
	t.Parallel()
	const card = "4111 1111 1111 1111"
	for _, tc := range []struct {
		name    string
		rule    *gatehousev1.GuardrailRule
		in      []string
		blocked bool
		texts   []string // nil: unchanged
		matches int32    // 0: no event
	}{
		{name: "card split in two, blocked", rule: newRule("card", detCard, modeBlock, dirRequest),
			in: []string{"my card is " + card[:9], card[9:] + " thanks"}, blocked: true, matches: 1},
		{name: "card over three texts, redacted", rule: newRule("card", detCard, modeRedact, dirRequest),
			in:    []string{"pay with " + card[:5], card[5:10], "", card[10:] + " today"},
			texts: []string{"pay with [REDACTED:card]", "[REDACTED:card]", "", "[REDACTED:card] today"}, matches: 1},
		{name: "email split mid-word, redacted", rule: newRule("email", detEmail, modeRedact, dirRequest),
			in: []string{"write to john.doe@exa", "mple.com please"}, texts: []string{"write to [REDACTED:email]", "[REDACTED:email] please"}, matches: 1},
		{name: "key split, audited", rule: newRule("key", detAPIKey, modeAudit, dirRequest),
			in: []string{"key " + openAIKey[:20], openAIKey[20:]}, matches: 1},
		{name: "an email running on into the next text counts once", rule: newRule("email", detEmail, modeAudit, dirRequest),
			in: []string{"mail jane@example.com", "now", "c@d.io", "e@f.io"}, matches: 3},
		{name: "within one text only", rule: newRule("card", detCard, modeRedact, dirRequest),
			in: []string{card, "1234"}, texts: []string{"[REDACTED:card]", "1234"}, matches: 1},
		{name: "digits on both sides that are no card", rule: newRule("card", detCard, modeBlock, dirRequest),
			in: []string{"order 4111", "1111 1111 1112"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := mustCompile(t, tc.rule).CheckRequest(tc.in)
			if (o.Blocked != nil) != tc.blocked {
				t.Fatalf("blocked = %v, want %v", o.Blocked, tc.blocked)
			}
			var got int32
			for _, e := range o.Events {
				got += e.Matches
			}
			if got != tc.matches {
				t.Errorf("matches = %d, want %d (%v)", got, tc.matches, o.Events)
			}
			if tc.blocked {
				return
			}
			want := tc.texts
			if want == nil {
				want = tc.in
			}
			if diff := cmp.Diff(want, o.Texts); diff != "" || o.Changed != (tc.texts != nil) {
				t.Errorf("texts (-want +got):\n%s (changed %v)", diff, o.Changed)
			}
		})
	}
	// Responses are checked text by text: a choice never runs on into the next.
	p := mustCompile(t, newRule("card", detCard, modeBlock, dirResponse))
	if o := p.CheckResponse([]string{card[:9], card[9:]}); o.Blocked != nil {
		t.Errorf("two choices read as one: %v", o.Blocked)
	}
}
