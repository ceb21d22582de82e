package llm

import (
	"net/url"
	"testing"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// The tier is read where each API puts it, never from the same name deeper in the
// answer (a tool's arguments, a Response's echoed prompt variables), which the caller
// could have put there.
func TestAnswerServiceTier(t *testing.T) {
	for _, tc := range []struct {
		wk   wire
		body string
		want string
	}{
		{wireOpenAI, `{"id":"c","choices":[],"usage":{"prompt_tokens":1},"service_tier":"flex","system_fingerprint":null}`, "flex"},
		{wireOpenAI, `{"service_tier": "priority"}`, "priority"},
		{wireOpenAI, `{"choices":[{"message":{"tool_calls":[{"function":{"arguments":"{\"service_tier\":\"flex\"}"}}]}}],"service_tier":"default"}`, "default"},
		{wireOpenAI, `{"choices":[],"x":{"service_tier":"flex"}}`, ""},
		{wireOpenAI, `{"service_tier":null}`, ""},
		{wireOpenAI, `{"service_tier":3}`, ""},
		{wireOpenAI, `{"service_tier":""}`, ""},
		{wireOpenAI, `{"service_tier":"Flex"}`, ""},
		{wireOpenAI, `{"service_tier":"flex`, ""},
		{wireOpenAI, `{"service_tier":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}`, ""}, // 33 letters
		{wireResponses, `{"id":"r","prompt":{"variables":{"service_tier":"flex"}},"service_tier":"default","usage":{}}`, "default"},
		{wireAnthropic, `{"content":[{"type":"tool_use","input":{"service_tier":"flex"}}],"usage":{"input_tokens":3,"service_tier":"standard"}}`, "standard"},
		{wireAnthropic, `{"content":[{"type":"tool_use","input":{"service_tier":"flex"}}],"usage":{"input_tokens":3}}`, ""},
		{wireGemini, `{"candidates":[{"content":{"parts":[{"functionCall":{"args":{"service_tier":"flex"}}}]}}]}`, ""},
	} {
		if got := answerServiceTier(tc.wk, []byte(tc.body)); got != tc.want {
			t.Errorf("answerServiceTier(%d, %s) = %q, want %q", tc.wk, tc.body, got, tc.want)
		}
	}
}

func TestEventServiceTier(t *testing.T) {
	for _, tc := range []struct {
		wk         wire
		name, data string
		want       string
		final      bool
	}{
		{wireOpenAI, "", `{"id":"c","service_tier":"flex","choices":[{"delta":{"content":"x"}}]}`, "flex", true},
		{wireOpenAI, "", `{"id":"c","choices":[{"delta":{"content":"x"}}]}`, "", false},
		{wireResponses, "response.created", `{"type":"response.created","response":{"service_tier":"auto"}}`, "", false},
		{wireResponses, "response.completed", `{"type":"response.completed","response":{"prompt":{"variables":{"service_tier":"flex"}},"service_tier":"default"}}`, "default", true},
		{wireAnthropic, "message_start", `{"type":"message_start","message":{"usage":{"input_tokens":3,"service_tier":"priority"}}}`, "priority", true},
		{wireAnthropic, "content_block_delta", `{"type":"content_block_delta","delta":{"type":"input_json_delta","partial_json":"{\"service_tier\":\"flex\"}"}}`, "", false},
		{wireGemini, "", `{"candidates":[]}`, "", true},
	} {
		got, final := eventServiceTier(tc.wk, []byte(tc.name), []byte(tc.data))
		if got != tc.want || final != tc.final {
			t.Errorf("eventServiceTier(%d, %s, %s) = %q, %v, want %q, %v", tc.wk, tc.name, tc.data, got, final, tc.want, tc.final)
		}
	}
}

func TestTierCost(t *testing.T) {
	provider := func(typ gatehousev1.ProviderType, base string) *runtime.Provider {
		u, _ := url.Parse(base)
		return &runtime.Provider{Type: typ, BaseURL: u}
	}
	openAI := provider(gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE, "https://api.openai.com/v1")
	groq := provider(gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE, "https://api.groq.com/openai/v1")
	azure := provider(gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI, "https://x.openai.azure.com/openai")
	for _, tc := range []struct {
		p    *runtime.Provider
		tier string
		want int64
	}{
		{openAI, "flex", 3}, {openAI, "default", 5}, {openAI, "priority", 5}, {openAI, "", 5},
		{groq, "flex", 5}, {azure, "flex", 5}, {nil, "flex", 5},
	} {
		if got := TierCost(tc.p, tc.tier, 5); got != tc.want {
			t.Errorf("TierCost(%v, %q, 5) = %d, want %d", tc.p, tc.tier, got, tc.want)
		}
	}
}
