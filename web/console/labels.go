package console

import (
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/a-h/templ"
)

// Display helpers of the limits, guardrail, routing and usage views.

// LimitsLabel is limits for display: "600 rpm · 100k tpm · 10 concurrent", leaving out the
// unlimited ones (empty or "0"), or "No limits". Whole numbers are shortened when nothing
// is lost (100000 → "100k", 1500000 → "1.5M", 1234 → "1,234"); anything else is shown as
// given.
func LimitsLabel(rpm, tpm, maxConcurrent string) string {
	var parts []string
	for _, p := range []struct{ v, unit string }{{rpm, "rpm"}, {tpm, "tpm"}, {maxConcurrent, "concurrent"}} {
		v := strings.TrimSpace(p.v)
		if v == "" || v == "0" {
			continue
		}
		parts = append(parts, compactCount(v)+" "+p.unit)
	}
	if len(parts) == 0 {
		return "No limits"
	}
	return strings.Join(parts, " · ")
}

// compactCount shortens a whole number: 100000 → "100k", 2500000 → "2.5M", 1234 → "1,234".
// Text that is not a whole number is returned as is.
func compactCount(s string) string {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return s
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var out string
	switch {
	case n >= 1_000_000_000 && n%100_000_000 == 0:
		out = tenths(n/100_000_000) + "B"
	case n >= 1_000_000 && n%100_000 == 0:
		out = tenths(n/100_000) + "M"
	case n >= 1_000 && n%100 == 0:
		out = tenths(n/100) + "k"
	default:
		out = groupThousands(n)
	}
	if neg {
		return "-" + out
	}
	return out
}

// tenths formats n tenths: 15 → "1.5", 20 → "2", 1000 → "100".
func tenths(n int64) string {
	whole := groupThousands(n / 10)
	if n%10 == 0 {
		return whole
	}
	return whole + "." + strconv.FormatInt(n%10, 10)
}

func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	lead := len(s) % 3
	if lead > 0 {
		b.WriteString(s[:lead])
	}
	for i := lead; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// RoutingSummary is a model's routing for display, e.g.
// "weighted · 2 deployments · 2 retries · fallback: gpt-mini". strategy empty = weighted;
// maxRetries empty or "0" (the gateway's default) is left out, as are no fallbacks.
func RoutingSummary(strategy string, deployments int, maxRetries string, fallbacks []string) string {
	parts := []string{orDefault(strategy, RoutingWeighted)}
	if deployments == 1 {
		parts = append(parts, "1 deployment")
	} else {
		parts = append(parts, strconv.Itoa(deployments)+" deployments")
	}
	switch r := strings.TrimSpace(maxRetries); r {
	case "", "0":
	case "1":
		parts = append(parts, "1 retry")
	default:
		parts = append(parts, r+" retries")
	}
	if len(fallbacks) > 0 {
		parts = append(parts, "fallback: "+strings.Join(fallbacks, ", "))
	}
	return strings.Join(parts, " · ")
}

// RoutingStrategyLabel is the human name of a routing strategy; empty is the default,
// weighted; unknown ones are shown as is.
func RoutingStrategyLabel(s string) string {
	switch s {
	case RoutingWeighted, "":
		return "Weighted"
	case RoutingLeastBusy:
		return "Least busy"
	case RoutingLatency:
		return "Lowest latency"
	}
	return s
}

// GuardrailDetectorLabel is the human name of a guardrail detector; unknown ones are
// shown as is.
func GuardrailDetectorLabel(d string) string {
	switch d {
	case DetectorEmail:
		return "Email addresses"
	case DetectorPhone:
		return "Phone numbers"
	case DetectorCard:
		return "Payment card numbers"
	case DetectorIBAN:
		return "IBANs"
	case DetectorAPIKey:
		return "API keys and tokens"
	case DetectorPrivateKey:
		return "Private keys (PEM)"
	case DetectorPromptInjection:
		return "Prompt injection"
	case DetectorCustomRegex:
		return "Custom pattern (regex)"
	}
	return d
}

// GuardrailModeLabel is the human name of a guardrail mode; unknown ones are shown as is.
func GuardrailModeLabel(m string) string {
	switch m {
	case GuardrailBlock:
		return "Block"
	case GuardrailRedact:
		return "Redact"
	case GuardrailAudit:
		return "Audit only"
	}
	return m
}

// GuardrailDirectionLabel is the human name of a guardrail direction; unknown ones are
// shown as is.
func GuardrailDirectionLabel(d string) string {
	switch d {
	case DirectionRequest:
		return "Requests"
	case DirectionResponse:
		return "Responses"
	case DirectionBoth:
		return "Requests and responses"
	}
	return d
}

// GuardrailTextsLabel says where a trigger's rule matched, from the texts its event
// lists (content, reasoning, arguments, refusal, request); empty when the gateway
// did not say.
func GuardrailTextsLabel(texts []string) string {
	labels := make([]string, len(texts))
	for i, t := range texts {
		switch t {
		case "content":
			labels[i] = "Answer"
		case "reasoning":
			labels[i] = "Reasoning"
		case "arguments":
			labels[i] = "Tool-call arguments"
		case "refusal":
			labels[i] = "Refusal"
		case "request":
			labels[i] = "Request"
		default:
			labels[i] = t
		}
	}
	return strings.Join(labels, ", ")
}

// UsageRangeLabel is the human name of a usage range; empty is the default, 24h.
func UsageRangeLabel(r string) string {
	switch r {
	case UsageRange1h:
		return "Last hour"
	case UsageRange24h, "":
		return "Last 24 hours"
	case UsageRange7d:
		return "Last 7 days"
	}
	return r
}

func guardrailModeTone(m string) string {
	switch m {
	case GuardrailBlock:
		return "danger"
	case GuardrailRedact:
		return "warning"
	case GuardrailAudit:
		return "info"
	}
	return "neutral"
}

func detectorOptions(current string) []option {
	var out []option
	for _, d := range []string{DetectorEmail, DetectorPhone, DetectorCard, DetectorIBAN, DetectorAPIKey,
		DetectorPrivateKey, DetectorPromptInjection, DetectorCustomRegex} {
		out = append(out, option{Value: d, Label: GuardrailDetectorLabel(d)})
	}
	return withCurrentLabel(out, current, GuardrailDetectorLabel)
}

func guardrailModeOptions(current string) []option {
	var out []option
	for _, m := range []string{GuardrailBlock, GuardrailRedact, GuardrailAudit} {
		out = append(out, option{Value: m, Label: GuardrailModeLabel(m)})
	}
	return withCurrentLabel(out, current, GuardrailModeLabel)
}

func guardrailDirectionOptions(current string) []option {
	var out []option
	for _, d := range []string{DirectionRequest, DirectionResponse, DirectionBoth} {
		out = append(out, option{Value: d, Label: GuardrailDirectionLabel(d)})
	}
	return withCurrentLabel(out, current, GuardrailDirectionLabel)
}

func routingStrategyOptions(current string) []option {
	var out []option
	for _, s := range []string{RoutingWeighted, RoutingLeastBusy, RoutingLatency} {
		out = append(out, option{Value: s, Label: RoutingStrategyLabel(s)})
	}
	return withCurrentLabel(out, current, RoutingStrategyLabel)
}

// fallbackCandidates are the models the model may fall back to: every other model of the
// org, then any current fallback no longer listed (so that a select never silently drops it).
func fallbackCandidates(v ModelView) []string {
	var out []string
	for _, m := range v.AllModels {
		if m != v.Model.Name && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	for _, f := range v.Routing.Fallbacks {
		if f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// fallbackSlots is how many fallback selects the routing form shows: one more than the
// current fallbacks (at least 3), but no more than there are candidates.
func fallbackSlots(v ModelView) int {
	n := max(len(v.Routing.Fallbacks)+1, 3)
	return max(min(n, len(fallbackCandidates(v))), len(v.Routing.Fallbacks))
}

// fallbackAt is the fallback in slot i, or "" (none).
func fallbackAt(f RoutingForm, i int) string {
	if i < len(f.Fallbacks) {
		return f.Fallbacks[i]
	}
	return ""
}

func nameOptions(names []string) []option {
	out := make([]option, 0, len(names))
	for _, n := range names {
		out = append(out, option{Value: n, Label: n})
	}
	return out
}

// orGatewayDefault shows a routing number with its unit, or "Gateway default".
func orGatewayDefault(v, unit string) string {
	if v == "" || v == "0" {
		return "Gateway default"
	}
	if unit == "" {
		return v
	}
	return v + " " + unit
}

// usageRange is the effective range: empty (or unknown) = 24h.
func usageRange(r string) string {
	switch r {
	case UsageRange1h, UsageRange7d:
		return r
	}
	return UsageRange24h
}

// usagePath is the usage page over range r, narrowed to the current team, if any.
func usagePath(s Shell, r string) templ.SafeURL {
	p := orgPath(s.CurrentOrg.Slug, "usage") + templ.SafeURL("?range="+r)
	if t, ok := currentTeam(s.Teams); ok {
		p += templ.SafeURL("&team=" + url.QueryEscape(t.Slug))
	}
	return p
}

// statusTone colours an HTTP status: 2xx success, 4xx warning, 5xx danger.
func statusTone(status string) string {
	switch {
	case strings.HasPrefix(status, "2"):
		return "success"
	case strings.HasPrefix(status, "4"):
		return "warning"
	case strings.HasPrefix(status, "5"):
		return "danger"
	}
	return "neutral"
}

// hasRetries says whether a retry count is worth showing.
func hasRetries(r string) bool {
	return r != "" && r != "0"
}
