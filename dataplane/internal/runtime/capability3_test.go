package runtime

import (
	"strings"
	"testing"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/google/go-cmp/cmp"
)

// llmSnapshot is registrySnapshot with every capability 3 feature in use: limits,
// guardrails, content logging, deployments, routing and fallbacks.
func llmSnapshot(orgID string) *gatehousev1.Snapshot {
	s := registrySnapshot(orgID)
	s.Teams[0].Limits = &gatehousev1.Limits{Rpm: 60, Tpm: 100_000, MaxConcurrent: 4}
	s.Teams[0].LogContents = true
	s.Teams[0].Guardrails = []*gatehousev1.GuardrailRule{
		{Id: "g1", Name: "no emails", Detector: gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_EMAIL,
			Mode: gatehousev1.GuardrailMode_GUARDRAIL_MODE_REDACT, Direction: gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_BOTH},
		{Id: "g2", Detector: gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_CUSTOM_REGEX, Pattern: `project-[0-9]+`,
			Mode: gatehousev1.GuardrailMode_GUARDRAIL_MODE_BLOCK, Direction: gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_RESPONSE},
	}
	s.Keys[0].Limits = &gatehousev1.Limits{Rpm: 10}
	small := s.Models[0]
	small.Limits = &gatehousev1.Limits{Tpm: 5000}
	small.Deployments = []*gatehousev1.Deployment{
		{Id: "d-azure", ProviderId: "p3", UpstreamModel: "small-deploy", Weight: 3},
		{Id: "d-claude", ProviderId: "p2", UpstreamModel: "claude-small"},
	}
	small.Routing = &gatehousev1.Routing{Strategy: gatehousev1.RoutingStrategy_ROUTING_STRATEGY_LATENCY, MaxRetries: 3,
		RetryBackoffMs: 100, TimeoutMs: 30_000, TtftTimeoutMs: 2000, StreamIdleTimeoutMs: 15_000, BreakerFailures: 5, BreakerCooldownMs: 10_000}
	// small → big → claude, small → gemini; big → claude; team2-only is not visible to t1.
	small.Fallbacks = []string{"big", "gemini", "team2-only", "us-only"}
	s.Models[1].Fallbacks = []string{"claude"}
	return s
}

func TestCapability3Compile(t *testing.T) {
	t.Parallel()
	rt := mustRuntime(t, llmSnapshot("o1"))
	token, _ := keyFor("aaaaaaaaaaaa")
	k, err := rt.Authenticate(token, time.UnixMilli(5000))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Limits{RPM: 60, TPM: 100_000, MaxConcurrent: 4}, k.Team.Limits); diff != "" {
		t.Errorf("team limits (-want +got):\n%s", diff)
	}
	if k.Limits != (Limits{RPM: 10}) || !k.Team.LogContents {
		t.Errorf("key limits %+v, log contents %v", k.Limits, k.Team.LogContents)
	}
	if len(k.Team.Guardrails) != 2 || !k.Team.Guardrails[0].OnRequest() || !k.Team.Guardrails[0].OnResponse() ||
		k.Team.Guardrails[1].OnRequest() || k.Team.Guardrails[1].Regexp == nil || !k.Team.Guardrails[1].Regexp.MatchString("see project-42") {
		t.Errorf("guardrails = %+v", k.Team.Guardrails)
	}
	m, ok := k.Org.Model("small")
	if !ok {
		t.Fatal("no model small")
	}
	if m.Limits != (Limits{TPM: 5000}) {
		t.Errorf("model limits = %+v", m.Limits)
	}
	var deps []string
	for _, d := range m.Deployments {
		deps = append(deps, d.ID+" "+d.Provider.ID+" "+d.UpstreamModel+" "+d.StateKey+" "+string(rune('0'+d.Weight)))
	}
	if diff := cmp.Diff([]string{"m1 p1 gpt-small o1/m1 1", "d-azure p3 small-deploy o1/d-azure 3", "d-claude p2 claude-small o1/d-claude 1"}, deps); diff != "" {
		t.Errorf("deployments (-want +got):\n%s", diff)
	}
	want := Routing{Strategy: gatehousev1.RoutingStrategy_ROUTING_STRATEGY_LATENCY, MaxRetries: 3, RetryBackoff: 100 * time.Millisecond,
		Timeout: 30 * time.Second, TTFTTimeout: 2 * time.Second, StreamIdleTimeout: 15 * time.Second, BreakerFailures: 5, BreakerCooldown: 10 * time.Second}
	if diff := cmp.Diff(want, m.Routing); diff != "" {
		t.Errorf("routing (-want +got):\n%s", diff)
	}
	names := func(ms []*Model) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Name)
		}
		return out
	}
	if diff := cmp.Diff([]string{"big", "claude", "gemini", "team2-only"}, names(m.Fallbacks)); diff != "" {
		t.Errorf("fallback chain (-want +got):\n%s", diff)
	}
	// The key's team may not use team2-only: it is no candidate.
	if diff := cmp.Diff([]string{"small", "big", "claude", "gemini"}, names(k.Candidates(m))); diff != "" {
		t.Errorf("candidates (-want +got):\n%s", diff)
	}
	big, _ := k.Org.Model("big")
	if big.Routing.Strategy != gatehousev1.RoutingStrategy_ROUTING_STRATEGY_WEIGHTED || len(big.Deployments) != 1 {
		t.Errorf("default routing %+v, deployments %d", big.Routing, len(big.Deployments))
	}
	azure, _ := k.Org.Model("azure")
	if azure.Provider.APIVersion != "2024-10-21" {
		t.Errorf("azure api version = %q", azure.Provider.APIVersion)
	}
}

func TestCapability3CompileRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(s *gatehousev1.Snapshot)
		want   string
	}{
		{"negative team limit", func(s *gatehousev1.Snapshot) { s.Teams[0].Limits.Rpm = -1 }, "limits must not be negative"},
		{"negative key limit", func(s *gatehousev1.Snapshot) { s.Keys[0].Limits.Rpm = -1 }, `key "aaaaaaaaaaaa": limits`},
		{"negative model limit", func(s *gatehousev1.Snapshot) { s.Models[0].Limits.MaxConcurrent = -2 }, `model "m1": limits`},
		{"guardrail without id", func(s *gatehousev1.Snapshot) { s.Teams[0].Guardrails[0].Id = "" }, "guardrail with empty id"},
		{"duplicate guardrail", func(s *gatehousev1.Snapshot) { s.Teams[0].Guardrails[1].Id = "g1" }, "duplicate guardrail"},
		{"guardrail detector", func(s *gatehousev1.Snapshot) { s.Teams[0].Guardrails[0].Detector = 0 }, "unsupported detector"},
		{"guardrail mode", func(s *gatehousev1.Snapshot) { s.Teams[0].Guardrails[0].Mode = 9 }, "unsupported mode"},
		{"guardrail direction", func(s *gatehousev1.Snapshot) { s.Teams[0].Guardrails[0].Direction = 0 }, "unsupported direction"},
		{"guardrail bad regex", func(s *gatehousev1.Snapshot) { s.Teams[0].Guardrails[1].Pattern = "(" }, "pattern"},
		{"guardrail empty regex", func(s *gatehousev1.Snapshot) { s.Teams[0].Guardrails[1].Pattern = "" }, "custom pattern"},
		{"guardrail stray pattern", func(s *gatehousev1.Snapshot) { s.Teams[0].Guardrails[0].Pattern = "x" }, "only for custom_regex"},
		{"deployment unknown provider", func(s *gatehousev1.Snapshot) { s.Models[0].Deployments[0].ProviderId = "ghost" }, `deployment "d-azure": unknown provider`},
		{"deployment without id", func(s *gatehousev1.Snapshot) { s.Models[0].Deployments[0].Id = "" }, "deployment with empty id"},
		{"deployment without upstream", func(s *gatehousev1.Snapshot) { s.Models[0].Deployments[1].UpstreamModel = "" }, "upstream_model"},
		{"duplicate deployment", func(s *gatehousev1.Snapshot) { s.Models[0].Deployments[1].Id = "d-azure" }, "deployment id"},
		{"deployment id of a model", func(s *gatehousev1.Snapshot) { s.Models[0].Deployments[1].Id = "m2" }, "deployment id"},
		{"deployment weight", func(s *gatehousev1.Snapshot) { s.Models[0].Deployments[0].Weight = 2_000_000 }, "weight"},
		{"routing strategy", func(s *gatehousev1.Snapshot) { s.Models[0].Routing.Strategy = 7 }, "routing strategy"},
		{"routing retries", func(s *gatehousev1.Snapshot) { s.Models[0].Routing.MaxRetries = 11 }, "max_retries"},
		{"routing negative backoff", func(s *gatehousev1.Snapshot) { s.Models[0].Routing.RetryBackoffMs = -1 }, "retry_backoff_ms"},
		{"routing huge timeout", func(s *gatehousev1.Snapshot) { s.Models[0].Routing.TimeoutMs = 100 * 3600 * 1000 }, "timeout_ms"},
		{"routing ttft over timeout", func(s *gatehousev1.Snapshot) { s.Models[0].Routing.TtftTimeoutMs = 40_000 }, "exceeds timeout_ms"},
		{"negative stream idle timeout", func(s *gatehousev1.Snapshot) { s.Models[0].Routing.StreamIdleTimeoutMs = -1 }, "stream_idle_timeout_ms"},
		{"routing breaker failures", func(s *gatehousev1.Snapshot) { s.Models[0].Routing.BreakerFailures = 5000 }, "breaker_failures"},
		{"fallback unknown", func(s *gatehousev1.Snapshot) { s.Models[0].Fallbacks = []string{"ghost"} }, `fallback names unknown model "ghost"`},
		{"fallback to itself", func(s *gatehousev1.Snapshot) { s.Models[0].Fallbacks = []string{"small"} }, "itself"},
		{"fallback duplicate", func(s *gatehousev1.Snapshot) { s.Models[0].Fallbacks = []string{"big", "big"} }, "duplicate fallback"},
		{"fallback cycle", func(s *gatehousev1.Snapshot) { s.Models[3].Fallbacks = []string{"small"} }, "fallback cycle [big claude small big]"},
		{"azure api version", func(s *gatehousev1.Snapshot) { s.Providers[2].ApiVersion = "1&x=2" }, "api_version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			snap := llmSnapshot("o1")
			tt.mutate(snap)
			_, err := Compile(testMeta("o1"), snap)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// TestFallbackShadowedByAlias: a key allowed "big", where "big" is a team alias of
// small, may not be served by the org's own model big as small's fallback: the
// allow-list entry means the alias.
func TestFallbackShadowedByAlias(t *testing.T) {
	t.Parallel()
	s := llmSnapshot("o1") // its team's alias "big" names small
	s.Keys[0].AllowedModels = []string{"big"}
	rt := mustRuntime(t, s)
	token, _ := keyFor("aaaaaaaaaaaa")
	k, err := rt.Authenticate(token, time.UnixMilli(5000))
	if err != nil {
		t.Fatal(err)
	}
	m, err := k.Model("big")
	if err != nil || m.Name != "small" {
		t.Fatalf("big resolves to %v, %v; want the alias's small", m, err)
	}
	var names []string
	for _, c := range k.Candidates(m) {
		names = append(names, c.Name)
	}
	if diff := cmp.Diff([]string{"small"}, names); diff != "" {
		t.Errorf("candidates (-want +got):\n%s", diff)
	}
}
