package guardrail

import (
	"testing"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

const (
	detEmail     = gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_EMAIL
	detPhone     = gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_PHONE
	detCard      = gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_CARD
	detIBAN      = gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_IBAN
	detAPIKey    = gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_API_KEY
	detPEM       = gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_PRIVATE_KEY
	detInjection = gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_PROMPT_INJECTION
	detCustom    = gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_CUSTOM_REGEX

	modeBlock  = gatehousev1.GuardrailMode_GUARDRAIL_MODE_BLOCK
	modeRedact = gatehousev1.GuardrailMode_GUARDRAIL_MODE_REDACT
	modeAudit  = gatehousev1.GuardrailMode_GUARDRAIL_MODE_AUDIT

	dirRequest  = gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_REQUEST
	dirResponse = gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_RESPONSE
	dirBoth     = gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_BOTH
)

func newRule(id string, d gatehousev1.GuardrailDetector, m gatehousev1.GuardrailMode, dir gatehousev1.GuardrailDirection) *gatehousev1.GuardrailRule {
	return &gatehousev1.GuardrailRule{Id: id, Name: id, Detector: d, Mode: m, Direction: dir}
}

func customRule(id, pattern string, m gatehousev1.GuardrailMode) *gatehousev1.GuardrailRule {
	r := newRule(id, detCustom, m, dirBoth)
	r.Pattern = pattern
	return r
}

func mustCompile(t testing.TB, rules ...*gatehousev1.GuardrailRule) *Policy {
	t.Helper()
	p, err := Compile(rules)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

// redactAll redacts with every detector (both directions).
func redactAll(t testing.TB) *Policy {
	return mustCompile(t,
		newRule("email", detEmail, modeRedact, dirBoth),
		newRule("phone", detPhone, modeRedact, dirBoth),
		newRule("card", detCard, modeRedact, dirBoth),
		newRule("iban", detIBAN, modeRedact, dirBoth),
		newRule("key", detAPIKey, modeRedact, dirBoth),
		newRule("pem", detPEM, modeRedact, dirBoth),
		newRule("inj", detInjection, modeRedact, dirBoth),
		customRule("acme", `ACME-\d{4,8}`, modeRedact),
		customRule("word", `(?i)\bproject[ -]?falcon\b`, modeRedact),
	)
}

// streamed feeds chunks to a new stream filter and returns the concatenated output,
// whether it blocked and the most bytes it buffered.
func streamed(p *Policy, chunks ...string) (string, bool, int) {
	f := p.NewStreamFilter()
	var out []byte
	most := 0
	for _, c := range chunks {
		o, blocked := f.Write(c)
		most = max(most, f.buffered())
		if blocked {
			return string(out), true, most
		}
		out = append(out, o...)
	}
	o, blocked := f.Flush()
	return string(append(out, o...)), blocked, most
}

func whole(p *Policy, text string) (string, bool) {
	o := p.CheckResponse([]string{text})
	if o.Blocked != nil {
		return "", true
	}
	return o.Texts[0], false
}
