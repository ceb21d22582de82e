package llm

import "bytes"

// serviceTierKey is the member providers name their processing tier by: OpenAI at the
// top of a chat completion, a chunk or a Response; Anthropic in its usage object.
var serviceTierKey = []byte(`"service_tier":`)

// maxServiceTier bounds a reported tier (OpenAI's and Anthropic's are short words).
const maxServiceTier = 32

// serviceTier returns the processing tier an upstream answer (or one of its stream
// events) reports, or "" when it reports none or something that is not a tier. The
// bytes `"service_tier":` can only be a member name in JSON — inside a string value
// the quotes would be escaped — so no text of the answer can forge it.
func serviceTier(data []byte) string {
	i := bytes.Index(data, serviceTierKey)
	if i < 0 {
		return ""
	}
	rest := bytes.TrimLeft(data[i+len(serviceTierKey):], " \t\r\n")
	if len(rest) == 0 || rest[0] != '"' {
		return "" // null, or not a string
	}
	rest = rest[1:]
	for j := 0; j < len(rest) && j <= maxServiceTier; j++ {
		switch c := rest[j]; {
		case c == '"':
			if j == 0 {
				return ""
			}
			return string(rest[:j])
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return ""
		}
	}
	return ""
}

// TierCost is the cost of an answer served in tier at cost micro-USD by the model's
// catalog prices: OpenAI's flex processing is billed at half the standard prices (as
// its Batch API), rounded up; every other tier at the catalog's (which are a
// provider's standard prices — priority tiers cost more than they say).
func TierCost(tier string, cost int64) int64 {
	if tier == "flex" {
		return (cost + 1) / 2
	}
	return cost
}
