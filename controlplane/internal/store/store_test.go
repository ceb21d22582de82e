package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/cptest"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
)

const actor store.Actor = "test"

// seed creates an org with a team, a provider and a model.
func seed(t *testing.T, st *store.Store) (store.Org, store.Team) {
	t.Helper()
	ctx := context.Background()
	org, err := st.CreateOrg(ctx, actor, "acme", "Acme")
	if err != nil {
		t.Fatal(err)
	}
	team, err := st.CreateTeam(ctx, actor, org.ID, "search", "Search")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateProvider(ctx, actor, org.ID, store.NewProvider{Name: "openai", BaseURL: "https://api.example.com/v1/", APIKey: "sk-upstream-secret-123"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateModel(ctx, actor, org.ID, store.NewModel{Name: "gpt-demo", Provider: "openai", UpstreamModel: "gpt-4o-mini", InputPricePerMTokMicros: 150_000}); err != nil {
		t.Fatal(err)
	}
	return org, team
}

func TestCreateAndLoadConfig(t *testing.T) {
	t.Parallel()
	st := cptest.Store(t)
	ctx := context.Background()
	org, team := seed(t, st)

	key, secret, err := st.CreateKey(ctx, actor, org.ID, team.ID, store.NewKey{Name: "ci", AllowedModels: []string{"gpt-demo", " "}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "gate_"+key.ID+"_") {
		t.Fatalf("secret %q does not embed id %q", secret, key.ID)
	}
	if got := key.AllowedModels; len(got) != 1 || got[0] != "gpt-demo" {
		t.Fatalf("allowed models = %v", got)
	}
	revoked, _, err := st.CreateKey(ctx, actor, org.ID, team.ID, store.NewKey{Name: "old"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RevokeKey(ctx, actor, org.ID, team.ID, revoked.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RevokeKey(ctx, actor, org.ID, team.ID, revoked.ID); err != nil {
		t.Fatalf("second revoke: %v", err)
	}

	cfg, err := st.LoadOrgConfig(ctx, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Keys) != 1 || cfg.Keys[0].ID != key.ID {
		t.Fatalf("active keys = %+v, want only %s", cfg.Keys, key.ID)
	}
	sum := sha256.Sum256([]byte(secret))
	if !bytes.Equal(cfg.Keys[0].SecretSHA256, sum[:]) {
		t.Fatal("stored hash is not the SHA-256 of the secret")
	}
	if len(cfg.Providers) != 1 || cfg.Providers[0].APIKey != "sk-upstream-secret-123" || cfg.Providers[0].BaseURL != "https://api.example.com/v1" {
		t.Fatalf("providers = %+v", cfg.Providers)
	}
	cfg2, err := st.LoadOrgConfig(ctx, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cfg2.Version <= cfg.Version {
		t.Fatalf("version did not increase: %d then %d", cfg.Version, cfg2.Version)
	}
}

func TestSecretsAtRest(t *testing.T) {
	t.Parallel()
	st := cptest.Store(t)
	ctx := context.Background()
	org, team := seed(t, st)
	_, secret, err := st.CreateKey(ctx, actor, org.ID, team.ID, store.NewKey{Name: "k"})
	if err != nil {
		t.Fatal(err)
	}
	// Dump every table as text and look for the secrets.
	var dump string
	err = st.Pool().QueryRow(ctx, `select string_agg(t::text, E'\n') from (
		select row_to_json(p)::text as t from providers p
		union all select row_to_json(k)::text from api_keys k
		union all select row_to_json(a)::text from audit_log a) x`).Scan(&dump)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"sk-upstream-secret-123", secret} {
		if strings.Contains(dump, s) {
			t.Errorf("secret %q stored in clear", s)
		}
	}
}

func TestAuditAndOutboxInSameTransaction(t *testing.T) {
	t.Parallel()
	st := cptest.Store(t)
	ctx := context.Background()
	org, _ := seed(t, st)
	entries, err := st.FilterAudit(ctx, org.ID, store.AuditFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
		if e.Actor != string(actor) {
			t.Errorf("audit actor = %q", e.Actor)
		}
	}
	want := "model.create provider.create team.create org.create"
	if got := strings.Join(actions, " "); got != want {
		t.Fatalf("audit actions = %q, want %q", got, want)
	}
	pending, err := st.PendingConfig(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].OrgID != org.ID {
		t.Fatalf("pending = %+v", pending)
	}
	// A failed change leaves neither an audit row nor an outbox row.
	if _, err := st.CreateTeam(ctx, actor, org.ID, "search", "dup"); err == nil {
		t.Fatal("duplicate team accepted")
	}
	entries2, _ := st.FilterAudit(ctx, org.ID, store.AuditFilter{Limit: 100})
	if len(entries2) != len(entries) {
		t.Fatalf("failed change wrote audit rows: %d -> %d", len(entries), len(entries2))
	}
	if _, err := st.Pool().Exec(ctx, "delete from audit_log"); err == nil {
		t.Fatal("audit log accepted a delete")
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	st := cptest.Store(t)
	ctx := context.Background()
	org, team := seed(t, st)
	past := time.Now().Add(-time.Hour)
	tests := []struct {
		name     string
		do       func() error
		field    string
		conflict bool
	}{
		{"duplicate org slug", func() error { _, err := st.CreateOrg(ctx, actor, "acme", "x"); return err }, "slug", true},
		{"bad org slug", func() error { _, err := st.CreateOrg(ctx, actor, "Not A Slug", "x"); return err }, "slug", false},
		{"duplicate team", func() error { _, err := st.CreateTeam(ctx, actor, org.ID, "search", ""); return err }, "slug", true},
		{"bad base url", func() error {
			_, err := st.CreateProvider(ctx, actor, org.ID, store.NewProvider{Name: "p", BaseURL: "ftp://x"})
			return err
		}, "base_url", false},
		{"credentials in url", func() error {
			_, err := st.CreateProvider(ctx, actor, org.ID, store.NewProvider{Name: "p", BaseURL: "https://u:p@x"})
			return err
		}, "base_url", false},
		{"unknown provider", func() error {
			_, err := st.CreateModel(ctx, actor, org.ID, store.NewModel{Name: "m", Provider: "nope"})
			return err
		}, "provider", false},
		{"duplicate model", func() error {
			_, err := st.CreateModel(ctx, actor, org.ID, store.NewModel{Name: "gpt-demo", Provider: "openai"})
			return err
		}, "name", true},
		{"negative price", func() error {
			_, err := st.CreateModel(ctx, actor, org.ID, store.NewModel{Name: "m2", Provider: "openai", InputPricePerMTokMicros: -1})
			return err
		}, "prices", false},
		{"key without name", func() error { _, _, err := st.CreateKey(ctx, actor, org.ID, team.ID, store.NewKey{}); return err }, "name", false},
		{"expired key", func() error {
			_, _, err := st.CreateKey(ctx, actor, org.ID, team.ID, store.NewKey{Name: "k", ExpiresAt: &past})
			return err
		}, "expires_at", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			var ve *store.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want ValidationError", err)
			}
			if _, ok := ve.Fields[tc.field]; !ok || ve.Conflict != tc.conflict {
				t.Fatalf("fields = %v conflict = %v, want field %q conflict %v", ve.Fields, ve.Conflict, tc.field, tc.conflict)
			}
		})
	}
	if _, err := st.ResolveOrg(ctx, "00000000-0000-0000-0000-000000000000"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing org: %v", err)
	}
	if _, err := st.RevokeKey(ctx, actor, org.ID, team.ID, "nosuchkey123"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
}
