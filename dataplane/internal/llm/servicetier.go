package llm

import (
	"bytes"
	"strings"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// serviceTierName is the member providers name their processing tier by: OpenAI at the
// top of a chat completion, a chunk or a Response; Anthropic in a message's usage.
var serviceTierName = []byte(`"service_tier"`)

// maxServiceTier bounds a reported tier (OpenAI's and Anthropic's are short words).
const maxServiceTier = 32

// answerServiceTier returns the processing tier a complete upstream answer of wire wk
// reports where its API puts it — OpenAI's top-level member, Anthropic's usage member —
// or "". Only there: the same name deeper in an answer (a tool's arguments, a
// Response's echoed prompt variables) is the caller's, not the provider's.
func answerServiceTier(wk wire, body []byte) string {
	if !bytes.Contains(body, serviceTierName) {
		return "" // most providers report none: no scan
	}
	switch wk {
	case wireOpenAI, wireResponses:
		return tierMember(body)
	case wireAnthropic:
		if v, ok := members(body, "usage"); ok && v[0] != nil {
			return tierMember(v[0])
		}
	}
	return ""
}

// eventServiceTier returns the processing tier a stream event of wire wk named name
// reports, and whether the stream says no more about it: an OpenAI chunk's top-level
// member (every chunk repeats it), the final state of a Response (response.completed,
// .incomplete or .failed: the earlier events echo the tier asked for), Anthropic's
// message_start usage.
func eventServiceTier(wk wire, name, data []byte) (tier string, final bool) {
	switch wk {
	case wireOpenAI:
		if !bytes.Contains(data, serviceTierName) {
			return "", false
		}
		t := tierMember(data)
		return t, t != ""
	case wireResponses:
		switch string(name) {
		case "response.completed", "response.incomplete", "response.failed":
			if v, ok := members(data, "response"); ok && v[0] != nil {
				return tierMember(v[0]), true
			}
		}
		return "", false
	case wireAnthropic:
		if string(name) != "message_start" {
			return "", false
		}
		if v, ok := members(data, "message"); ok && v[0] != nil {
			if u, ok := members(v[0], "usage"); ok && u[0] != nil {
				return tierMember(u[0]), true
			}
		}
		return "", true
	}
	return "", true // Gemini reports no tier
}

// tierMember reads the service_tier member of a JSON object: a short lower-case word,
// or "" for anything else.
func tierMember(obj []byte) string {
	v, ok := members(obj, "service_tier")
	if !ok || len(v[0]) < 3 || v[0][0] != '"' || len(v[0]) > maxServiceTier+2 {
		return ""
	}
	t := v[0][1 : len(v[0])-1]
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return ""
		}
	}
	return string(t)
}

// TierCost is the cost of an answer a provider served in tier at cost micro-USD by the
// model's catalog prices: OpenAI's flex processing is billed at half its standard
// prices (as its Batch API), rounded up; every other tier, and flex elsewhere (Groq's
// costs what on-demand does), at the catalog's — which are a provider's standard
// prices, so priority tiers cost more than they say.
func TierCost(p *runtime.Provider, tier string, cost int64) int64 {
	if tier == "flex" && p != nil && p.Type == gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE &&
		p.BaseURL != nil && strings.EqualFold(p.BaseURL.Hostname(), "api.openai.com") {
		return (cost + 1) / 2
	}
	return cost
}
