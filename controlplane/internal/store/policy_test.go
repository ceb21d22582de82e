package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/cptest"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
)

func TestPolicies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := cptest.Store(t)
	org, team := seed(t, st)
	for _, name := range []string{"b", "c"} {
		if _, err := st.CreateModel(ctx, actor, org.ID, store.NewModel{Name: name, Provider: "openai"}); err != nil {
			t.Fatal(err)
		}
	}
	models, err := st.ListModels(ctx, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	id := map[string]string{}
	for _, m := range models {
		id[m.Name] = m.ID
	}
	field := func(err error) string {
		var ve *store.ValidationError
		if !errors.As(err, &ve) {
			return ""
		}
		for f := range ve.Fields {
			return f
		}
		return ""
	}
	if _, err := st.SetModelRouting(ctx, actor, org.ID, id["gpt-demo"], store.Routing{Strategy: "latency", MaxRetries: 2, Fallbacks: []string{"b", "c"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetModelRouting(ctx, actor, org.ID, id["b"], store.Routing{Fallbacks: []string{"c"}}); err != nil {
		t.Fatal(err)
	}
	// The stream idle bound is stored and read back with the rest of the routing.
	if m, err := st.SetModelRouting(ctx, actor, org.ID, id["c"], store.Routing{StreamIdleTimeoutMs: 30_000}); err != nil || m.Routing.StreamIdleTimeoutMs != 30_000 {
		t.Fatalf("stream idle timeout set: %+v, %v", m.Routing, err)
	}
	models, err = st.ListModels(ctx, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range models {
		if m.ID == id["c"] && m.Routing.StreamIdleTimeoutMs != 30_000 {
			t.Fatalf("stream idle timeout read back: %+v", m.Routing)
		}
	}
	if _, err := st.SetModelRouting(ctx, actor, org.ID, id["c"], store.Routing{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		err   error
		field string
	}{
		{"cycle", func() error {
			_, err := st.SetModelRouting(ctx, actor, org.ID, id["c"], store.Routing{Fallbacks: []string{"gpt-demo"}})
			return err
		}(), "fallbacks"},
		{"self", func() error {
			_, err := st.SetModelRouting(ctx, actor, org.ID, id["c"], store.Routing{Fallbacks: []string{"c"}})
			return err
		}(), "fallbacks"},
		{"unknown fallback", func() error {
			_, err := st.SetModelRouting(ctx, actor, org.ID, id["c"], store.Routing{Fallbacks: []string{"nope"}})
			return err
		}(), "fallbacks"},
		{"bad strategy", func() error {
			_, err := st.SetModelRouting(ctx, actor, org.ID, id["c"], store.Routing{Strategy: "random"})
			return err
		}(), "strategy"},
		{"stream idle timeout over a day", func() error {
			_, err := st.SetModelRouting(ctx, actor, org.ID, id["c"], store.Routing{StreamIdleTimeoutMs: 24*60*60*1000 + 1})
			return err
		}(), "timeouts"},
		{"negative stream idle timeout", func() error {
			_, err := st.SetModelRouting(ctx, actor, org.ID, id["c"], store.Routing{StreamIdleTimeoutMs: -1})
			return err
		}(), "timeouts"},
		{"too many retries", func() error {
			_, err := st.SetModelRouting(ctx, actor, org.ID, id["c"], store.Routing{MaxRetries: 11})
			return err
		}(), "max_retries"},
		{"negative limit", func() error {
			_, err := st.SetTeamLimits(ctx, actor, org.ID, team.ID, store.Limits{RPM: -1})
			return err
		}(), "limits"},
		{"bad regex", func() error {
			_, err := st.CreateGuardrail(ctx, actor, org.ID, team.ID, store.Guardrail{Name: "x", Detector: "custom_regex", Mode: "block", Pattern: "(["})
			return err
		}(), "pattern"},
		{"regex without pattern", func() error {
			_, err := st.CreateGuardrail(ctx, actor, org.ID, team.ID, store.Guardrail{Name: "x", Detector: "custom_regex", Mode: "block"})
			return err
		}(), "pattern"},
		{"unknown detector", func() error {
			_, err := st.CreateGuardrail(ctx, actor, org.ID, team.ID, store.Guardrail{Name: "x", Detector: "ssn", Mode: "block"})
			return err
		}(), "detector"},
		{"bad deployment provider", func() error {
			_, err := st.CreateDeployment(ctx, actor, org.ID, id["b"], "nope", "x", 1)
			return err
		}(), "provider"},
	}
	for _, tc := range tests {
		if got := field(tc.err); got != tc.field {
			t.Errorf("%s: err = %v (field %q), want field %q", tc.name, tc.err, got, tc.field)
		}
	}
	if _, err := st.SetTeamLimits(ctx, actor, org.ID, team.ID, store.Limits{RPM: 600, TPM: 100000, MaxConcurrent: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateGuardrail(ctx, actor, org.ID, team.ID, store.Guardrail{Name: "no-emails", Detector: "email", Mode: "redact"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateDeployment(ctx, actor, org.ID, id["gpt-demo"], "openai", "gpt-4o-mini-2", 3); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.CreateKey(ctx, actor, org.ID, team.ID, store.NewKey{Name: "limited", Limits: store.Limits{RPM: 60}}); err != nil {
		t.Fatal(err)
	}
	cfg, err := st.LoadOrgConfig(ctx, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Guardrails) != 1 || len(cfg.Deployments) != 1 || cfg.Teams[0].Limits.RPM != 600 || cfg.Keys[0].Limits.RPM != 60 {
		t.Fatalf("config: guardrails %v deployments %v team %+v key %+v", cfg.Guardrails, cfg.Deployments, cfg.Teams[0].Limits, cfg.Keys[0].Limits)
	}
	var gpt store.Model
	for _, m := range cfg.Models {
		if m.Name == "gpt-demo" {
			gpt = m
		}
	}
	if gpt.Routing.Strategy != "latency" || gpt.Routing.MaxRetries != 2 || len(gpt.Routing.Fallbacks) != 2 {
		t.Fatalf("routing = %+v", gpt.Routing)
	}
}
