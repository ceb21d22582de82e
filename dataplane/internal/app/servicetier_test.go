package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// TestServiceTierIsRecorded: the tier an OpenAI-compatible answer reports rides on the
// usage event, streamed or not. Flex is priced at the catalog's prices here: only
// OpenAI's own API (api.openai.com, which a test cannot reach) bills it at half —
// TestTierCost covers that rule.
func TestServiceTierIsRecorded(t *testing.T) {
	t.Parallel()
	// An OpenAI-compatible provider that serves the tier it is asked for.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Stream      bool   `json:"stream"`
			ServiceTier string `json:"service_tier"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		tier := req.ServiceTier
		if tier == "" || tier == "auto" {
			tier = "default"
		}
		usage := `{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500}`
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":%s,"service_tier":%q}`, usage, tier)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, d := range []string{
			`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","service_tier":%q,"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}`,
			`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","service_tier":%q,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
			`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","service_tier":%q,"choices":[],"usage":` + usage + `}`,
		} {
			fmt.Fprintf(w, "data: "+d+"\n\n", tier)
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(up.Close)
	h := startHarness(t, harnessOptions{extra: func(s *gatehousev1.Snapshot) {
		s.Providers = append(s.Providers, &gatehousev1.Provider{Id: "tiered", Name: "tiered", Type: gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE,
			BaseUrl: up.URL + "/v1", ApiKey: upstreamKey})
		s.Models = append(s.Models, &gatehousev1.Model{Id: "m-tiered", Name: "tiered", ProviderId: "tiered", UpstreamModel: "m",
			InputPricePerMtokMicros: 2_000_000, OutputPricePerMtokMicros: 8_000_000})
	}})
	ctx := context.Background()
	for _, stream := range []bool{false, true} {
		for tier, want := range map[string]struct {
			recorded string
			cost     int64
		}{
			"":         {"default", 6000}, // 1,000 in at $2/M + 500 out at $8/M
			"flex":     {"flex", 6000},
			"priority": {"priority", 6000}, // the catalog's prices: standard ones
		} {
			params := openai.ChatCompletionNewParams{Model: "tiered", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}
			if tier != "" {
				params.ServiceTier = openai.ChatCompletionNewParamsServiceTier(tier)
			}
			var resp *http.Response
			if stream {
				s := h.client(h.fx.key).Chat.Completions.NewStreaming(ctx, params, option.WithResponseInto(&resp))
				for s.Next() {
				}
				if err := s.Err(); err != nil {
					t.Fatal(err)
				}
			} else if _, err := h.client(h.fx.key).Chat.Completions.New(ctx, params, option.WithResponseInto(&resp)); err != nil {
				t.Fatal(err)
			}
			ev := h.waitUsage(t, resp.Header.Get("X-Request-Id"))
			if ev.ServiceTier != want.recorded || ev.CostMicros != want.cost || ev.Streamed != stream {
				t.Errorf("tier %q, streamed %v: recorded %q at %d micro-USD, want %q at %d", tier, stream, ev.ServiceTier, ev.CostMicros, want.recorded, want.cost)
			}
		}
	}
}
