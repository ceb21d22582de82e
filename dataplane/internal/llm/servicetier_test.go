package llm

import "testing"

func TestServiceTier(t *testing.T) {
	for in, want := range map[string]string{
		`{"id":"c","choices":[],"usage":{"prompt_tokens":1},"service_tier":"flex","system_fingerprint":null}`: "flex",
		`{"id":"c","object":"chat.completion.chunk","service_tier":"default","choices":[]}`:                   "default",
		`{"usage":{"input_tokens":3,"output_tokens":1,"service_tier":"standard"}}`:                            "standard",
		`{"service_tier": "priority"}`:                        "priority",
		`{"service_tier":null}`:                               "",
		`{"service_tier":3}`:                                  "",
		`{"service_tier":""}`:                                 "",
		`{"service_tier":"Flex"}`:                             "", // not a tier word
		`{"service_tier":"a\"b"}`:                             "",
		`{"service_tier":"` + string(make([]byte, 40)) + `"}`: "",
		`{"choices":[{"message":{"content":"\"service_tier\":\"flex\""}}]}`: "", // text cannot forge it
		`{"service_tier":"flex`: "",
		``:                      "",
	} {
		if got := serviceTier([]byte(in)); got != want {
			t.Errorf("serviceTier(%q) = %q, want %q", in, got, want)
		}
	}
	for tier, want := range map[string]int64{"flex": 3, "default": 5, "priority": 5, "": 5} {
		if got := TierCost(tier, 5); got != want {
			t.Errorf("TierCost(%q, 5) = %d, want %d", tier, got, want)
		}
	}
}
