package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/cptest"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
)

func ptr[T any](v T) *T { return &v }

// TestUpdateProvider rotates, removes and edits a provider's settings: the snapshot
// carries the new credential, the database and the audit log never hold it in clear,
// every edit queues a snapshot, and a refused edit changes nothing.
func TestUpdateProvider(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := cptest.Store(t)
	org, team := seed(t, st)
	p := providerNamed(t, st, org.ID, "openai")

	ackAll(t, st)
	up, err := st.UpdateProvider(ctx, actor, org.ID, p.ID, store.ProviderChange{
		APIKey: ptr("sk-rotated-secret-456"), BaseURL: ptr(" https://eu.api.example.com/v1/ "), NativeResponses: ptr(true),
		Share: &store.Sharing{Teams: []string{"search"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if up.BaseURL != "https://eu.api.example.com/v1" || !up.NativeResponses || !up.HasCredential || up.Name != "openai" ||
		up.SharedWith.All || len(up.SharedWith.Teams) != 1 || up.SharedWith.Teams[0] != team.ID {
		t.Fatalf("updated = %+v", up)
	}
	if got := configProvider(t, st, org.ID, p.ID); got.APIKey != "sk-rotated-secret-456" || got.BaseURL != up.BaseURL || !got.NativeResponses ||
		got.SharedWith.All || len(got.SharedWith.Teams) != 1 {
		t.Fatalf("snapshot provider = %+v", got)
	}
	assertNowhereInClear(t, st, "sk-rotated-secret-456")
	entries, err := st.FilterAudit(ctx, org.ID, store.AuditFilter{Action: "provider.update", Limit: 10})
	if err != nil || len(entries) != 1 {
		t.Fatalf("audit = %+v, %v", entries, err)
	}
	var b, a struct {
		BaseURL    string `json:"base_url"`
		Credential string `json:"credential"`
	}
	if json.Unmarshal(entries[0].Before, &b) != nil || json.Unmarshal(entries[0].After, &a) != nil ||
		a.Credential != "replaced" || b.BaseURL != "https://api.example.com/v1" || a.BaseURL != up.BaseURL {
		t.Fatalf("audit before %s after %s", entries[0].Before, entries[0].After)
	}
	pending, err := st.PendingConfig(ctx, 10)
	if err != nil || len(pending) != 1 || pending[0].OrgID != org.ID {
		t.Fatalf("pending = %+v, %v", pending, err)
	}

	// Removing the credential, sharing with every team again; untouched fields stay.
	up, err = st.UpdateProvider(ctx, actor, org.ID, p.ID, store.ProviderChange{APIKey: ptr(""), Share: &store.Sharing{All: true}})
	if err != nil || up.HasCredential || !up.SharedWith.All || up.BaseURL != "https://eu.api.example.com/v1" || !up.NativeResponses {
		t.Fatalf("removed credential: %+v, %v", up, err)
	}
	if got := configProvider(t, st, org.ID, p.ID); got.APIKey != "" || !got.SharedWith.All {
		t.Fatalf("snapshot provider after removal = %+v", got)
	}
	// Without a credential, the provider may move anywhere (nothing follows it).
	if up, err := st.UpdateProvider(ctx, actor, org.ID, p.ID, store.ProviderChange{BaseURL: ptr("https://elsewhere.example/v1")}); err != nil || up.BaseURL != "https://elsewhere.example/v1" {
		t.Fatalf("keyless move: %+v, %v", up, err)
	}
	if _, err := st.UpdateProvider(ctx, actor, org.ID, p.ID, store.ProviderChange{BaseURL: ptr("https://eu.api.example.com/v1")}); err != nil {
		t.Fatal(err)
	}

	if _, err := st.UpdateProvider(ctx, actor, org.ID, p.ID, store.ProviderChange{APIKey: ptr("sk-back-again")}); err != nil {
		t.Fatal(err)
	}
	// The same host (another path) keeps the key; another host needs it again.
	if up, err := st.UpdateProvider(ctx, actor, org.ID, p.ID, store.ProviderChange{BaseURL: ptr("https://eu.api.example.com/v2")}); err != nil || !up.HasCredential {
		t.Fatalf("same-host move: %+v, %v", up, err)
	}
	// Refused edits change nothing and leave no audit row.
	other, err := st.CreateProvider(ctx, actor, org.ID, store.NewProvider{Name: "claude", Type: "anthropic", BaseURL: "https://anthropic.example"})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := st.FilterAudit(ctx, org.ID, store.AuditFilter{Limit: 100})
	for name, tc := range map[string]struct {
		id    string
		in    store.ProviderChange
		field string
	}{
		"type change":                {p.ID, store.ProviderChange{Type: ptr("anthropic")}, "type"},
		"native responses on claude": {other.ID, store.ProviderChange{NativeResponses: ptr(true)}, "native_responses"},
		"bad base url":               {p.ID, store.ProviderChange{BaseURL: ptr("ftp://x")}, "base_url"},
		"duplicate name":             {p.ID, store.ProviderChange{Name: ptr("claude")}, "name"},
		"empty name":                 {p.ID, store.ProviderChange{Name: ptr(" ")}, "name"},
		"unknown team":               {p.ID, store.ProviderChange{Share: &store.Sharing{Teams: []string{"nope"}}}, "shared_with"},
		"metadata address":           {p.ID, store.ProviderChange{BaseURL: ptr("http://169.254.169.254/v1"), APIKey: ptr("sk-x")}, "base_url"},
		"new host, stored key kept":  {p.ID, store.ProviderChange{BaseURL: ptr("https://collector.example/v1")}, "api_key"},
		"api version with a query":   {p.ID, store.ProviderChange{APIVersion: ptr("2024-10-21&x=1")}, "api_version"},
	} {
		var ve *store.ValidationError
		if _, err := st.UpdateProvider(ctx, actor, org.ID, tc.id, tc.in); !errors.As(err, &ve) || ve.Fields[tc.field] == "" {
			t.Errorf("%s: err = %v, want a validation error on %s", name, err, tc.field)
		}
	}
	if _, err := st.UpdateProvider(ctx, actor, org.ID, "00000000-0000-0000-0000-000000000000", store.ProviderChange{Name: ptr("x")}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown provider: %v", err)
	}
	// Another org's provider is not found from this org.
	org2, err := st.CreateOrg(ctx, actor, "globex", "Globex")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateProvider(ctx, actor, org2.ID, p.ID, store.ProviderChange{APIKey: ptr("sk-stolen")}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("cross-org edit: %v", err)
	}
	after, _ := st.FilterAudit(ctx, org.ID, store.AuditFilter{Limit: 100})
	if len(after) != len(before) {
		t.Fatalf("refused edits wrote %d audit rows", len(after)-len(before))
	}
	if got, err := st.GetProvider(ctx, org.ID, p.ID); err != nil || got.Name != "openai" || got.Type != "openai-compatible" || got.BaseURL != "https://eu.api.example.com/v2" || got.APIVersion != "" {
		t.Fatalf("provider after refused edits = %+v, %v", got, err)
	}
}

// TestUpdateModel changes a model's prices and settings: the snapshot carries them,
// and bad values are refused without a change.
func TestUpdateModel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := cptest.Store(t)
	if err := st.EnsureRegions(ctx, []string{"eu", "us"}); err != nil {
		t.Fatal(err)
	}
	org, _ := seed(t, st)
	models, err := st.ListModels(ctx, org.ID)
	if err != nil || len(models) != 1 {
		t.Fatalf("models = %+v, %v", models, err)
	}
	m := models[0]
	up, err := st.UpdateModel(ctx, actor, org.ID, m.ID, store.ModelChange{
		InputPricePerMTokMicros: ptr(int64(2_500_000)), OutputPricePerMTokMicros: ptr(int64(10_000_000)),
		CachedInputPricePerMTokMicros: ptr(int64(1_250_000)), UpstreamModel: ptr("gpt-4o"), ContextWindow: ptr(int64(128_000)),
		Regions: &[]string{"eu"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if up.InputPricePerMTokMicros != 2_500_000 || up.OutputPricePerMTokMicros != 10_000_000 || up.CachedInputPricePerMTokMicros != 1_250_000 ||
		up.UpstreamModel != "gpt-4o" || up.ContextWindow != 128_000 || len(up.Regions) != 1 || up.Name != "gpt-demo" || !up.SharedWith.All {
		t.Fatalf("updated = %+v", up)
	}
	cfg, err := st.LoadOrgConfig(ctx, org.ID)
	if err != nil || len(cfg.Models) != 1 || cfg.Models[0].OutputPricePerMTokMicros != 10_000_000 || cfg.Models[0].UpstreamModel != "gpt-4o" {
		t.Fatalf("snapshot models = %+v, %v", cfg.Models, err)
	}
	// Only the price given changes.
	up, err = st.UpdateModel(ctx, actor, org.ID, m.ID, store.ModelChange{InputPricePerMTokMicros: ptr(int64(0))})
	if err != nil || up.InputPricePerMTokMicros != 0 || up.OutputPricePerMTokMicros != 10_000_000 || up.UpstreamModel != "gpt-4o" {
		t.Fatalf("partial update = %+v, %v", up, err)
	}
	for name, tc := range map[string]struct {
		in    store.ModelChange
		field string
	}{
		"negative price":   {store.ModelChange{OutputPricePerMTokMicros: ptr(int64(-1))}, "output_price_per_mtok_micros"},
		"negative context": {store.ModelChange{ContextWindow: ptr(int64(-5))}, "context_window"},
		"empty upstream":   {store.ModelChange{UpstreamModel: ptr("  ")}, "upstream_model"},
		"unknown region":   {store.ModelChange{Regions: &[]string{"mars"}}, "regions"},
	} {
		var ve *store.ValidationError
		if _, err := st.UpdateModel(ctx, actor, org.ID, m.ID, tc.in); !errors.As(err, &ve) || ve.Fields[tc.field] == "" {
			t.Errorf("%s: err = %v, want a validation error on %s", name, err, tc.field)
		}
	}
	entries, err := st.FilterAudit(ctx, org.ID, store.AuditFilter{Action: "model.update", Limit: 10})
	if err != nil || len(entries) != 2 {
		t.Fatalf("model.update audit rows = %d, %v", len(entries), err)
	}
}

// TestConcurrentProviderEdits races a key rotation with a rename, again and again:
// the rotation always survives (the row is locked for the edit, so the rename starts
// from the rotated row instead of writing the old credential back).
func TestConcurrentProviderEdits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := cptest.Store(t)
	org, _ := seed(t, st)
	p := providerNamed(t, st, org.ID, "openai")
	for i := range 20 {
		key := fmt.Sprintf("sk-rotation-%d", i)
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		wg.Go(func() {
			_, err := st.UpdateProvider(ctx, actor, org.ID, p.ID, store.ProviderChange{APIKey: &key})
			errs <- err
		})
		wg.Go(func() {
			_, err := st.UpdateProvider(ctx, actor, org.ID, p.ID, store.ProviderChange{Name: ptr(fmt.Sprintf("openai-%d", i))})
			errs <- err
		})
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := configProvider(t, st, org.ID, p.ID); got.APIKey != key || got.Name != fmt.Sprintf("openai-%d", i) {
			t.Fatalf("round %d: snapshot has key %q name %q", i, got.APIKey, got.Name)
		}
	}
}

func ackAll(t *testing.T, st *store.Store) {
	t.Helper()
	pending, err := st.PendingConfig(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pending {
		if err := st.AckConfig(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
}

func providerNamed(t *testing.T, st *store.Store, orgID, name string) store.Provider {
	t.Helper()
	list, err := st.ListProviders(context.Background(), orgID)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range list {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no provider %q in %+v", name, list)
	return store.Provider{}
}

func configProvider(t *testing.T, st *store.Store, orgID, id string) store.ProviderWithSecret {
	t.Helper()
	cfg, err := st.LoadOrgConfig(context.Background(), orgID)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range cfg.Providers {
		if p.ID == id {
			return p
		}
	}
	t.Fatalf("provider %s not in the snapshot", id)
	return store.ProviderWithSecret{}
}

// assertNowhereInClear checks that no row of the providers and audit tables holds s.
func assertNowhereInClear(t *testing.T, st *store.Store, s string) {
	t.Helper()
	var n int
	err := st.Pool().QueryRow(context.Background(), `select (select count(*) from providers p where p::text like '%' || $1 || '%'
			or position(convert_to($1, 'UTF8') in coalesce(p.api_key_sealed, ''::bytea)) > 0)
		+ (select count(*) from audit_log a where a::text like '%' || $1 || '%')`, s).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d rows hold the credential in clear", n)
	}
}
