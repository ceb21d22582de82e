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

// TestUpdateProviderEntra switches an Azure OpenAI provider between its API key and
// Microsoft Entra ID: each switch needs a new credential in the same edit (a stored API
// key never becomes a client secret, nor the reverse), changing only the ids keeps the
// stored secret, an Entra ID provider cannot lose its secret, refused edits change
// nothing, and the audit log records the switch without the secret.
func TestUpdateProviderEntra(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := cptest.Store(t)
	org, _ := seed(t, st)
	oai := providerNamed(t, st, org.ID, "openai")
	p, err := st.CreateProvider(ctx, actor, org.ID, azureProvider("azure", "", "", "azure-api-key-111"))
	if err != nil {
		t.Fatal(err)
	}
	entra := func(tenant, client string) store.ProviderChange {
		return store.ProviderChange{AzureTenantID: &tenant, AzureClientID: &client}
	}
	withKey := func(in store.ProviderChange, key string) store.ProviderChange { in.APIKey = &key; return in }
	type refused = map[string]struct {
		id    string
		in    store.ProviderChange
		field string
	}
	refuse := func(state string, cases refused) {
		t.Helper()
		before, _ := st.FilterAudit(ctx, org.ID, store.AuditFilter{Limit: 100})
		for name, tc := range cases {
			var ve *store.ValidationError
			if _, err := st.UpdateProvider(ctx, actor, org.ID, tc.id, tc.in); !errors.As(err, &ve) || ve.Fields[tc.field] == "" {
				t.Errorf("%s, %s: err = %v, want a validation error on %s", state, name, err, tc.field)
			}
		}
		if after, _ := st.FilterAudit(ctx, org.ID, store.AuditFilter{Limit: 100}); len(after) != len(before) {
			t.Fatalf("%s: refused edits wrote %d audit rows", state, len(after)-len(before))
		}
	}

	refuse("API key", refused{
		"to Entra ID keeping the API key":   {p.ID, entra(entraTenant, entraClient), "api_key"},
		"to Entra ID removing the API key":  {p.ID, withKey(entra(entraTenant, entraClient), ""), "api_key"},
		"tenant only":                       {p.ID, withKey(store.ProviderChange{AzureTenantID: ptr(entraTenant)}, "s"), "azure_client_id"},
		"client id not a GUID":              {p.ID, withKey(entra(entraTenant, "nope"), "s"), "azure_client_id"},
		"tenant not a directory":            {p.ID, withKey(entra("https://login.example/x", entraClient), "s"), "azure_tenant_id"},
		"Entra ID on an openai-compatible":  {oai.ID, withKey(entra(entraTenant, entraClient), "s"), "azure_tenant_id"},
		"client id on an openai-compatible": {oai.ID, store.ProviderChange{AzureClientID: ptr(entraClient)}, "azure_client_id"},
	})
	if cp := configProvider(t, st, org.ID, p.ID); cp.APIKey != "azure-api-key-111" || cp.AzureTenantID != "" || cp.AzureClientID != "" {
		t.Fatalf("after refused switches: %+v", cp)
	}
	// Clearing ids it does not have is no switch: the API key stays.
	if up, err := st.UpdateProvider(ctx, actor, org.ID, p.ID, entra("", "")); err != nil || !up.HasCredential {
		t.Fatalf("clearing absent ids: %+v, %v", up, err)
	}

	// To Entra ID, with the client secret.
	up, err := st.UpdateProvider(ctx, actor, org.ID, p.ID, withKey(entra(" "+entraTenant, entraClient+" "), "entra-secret-222"))
	if err != nil || up.AzureTenantID != entraTenant || up.AzureClientID != entraClient || !up.HasCredential {
		t.Fatalf("to Entra ID: %+v, %v", up, err)
	}
	if cp := configProvider(t, st, org.ID, p.ID); cp.APIKey != "entra-secret-222" || cp.AzureTenantID != entraTenant {
		t.Fatalf("snapshot provider after the switch: %+v", cp)
	}
	// The audit entry shows the switch: no ids before; the ids and a replaced credential after.
	entries, err := st.FilterAudit(ctx, org.ID, store.AuditFilter{Action: "provider.update", Limit: 1})
	if err != nil || len(entries) != 1 {
		t.Fatalf("audit = %+v, %v", entries, err)
	}
	var was, is map[string]any
	if json.Unmarshal(entries[0].Before, &was) != nil || json.Unmarshal(entries[0].After, &is) != nil || was["azure_tenant_id"] != nil ||
		is["azure_tenant_id"] != entraTenant || is["azure_client_id"] != entraClient || is["credential"] != "replaced" {
		t.Fatalf("audit before %s after %s", entries[0].Before, entries[0].After)
	}

	// Another tenant keeps the stored secret (the app is the same); another client id is
	// another app, whose secret must come with it; a rotation of the secret alone works.
	if up, err := st.UpdateProvider(ctx, actor, org.ID, p.ID, store.ProviderChange{AzureTenantID: ptr("contoso.onmicrosoft.com")}); err != nil || up.AzureTenantID != "contoso.onmicrosoft.com" {
		t.Fatalf("new tenant: %+v, %v", up, err)
	}
	const otherClient = "bbbbbbbb-cccc-4ddd-8eee-ffffffffffff"
	var ve *store.ValidationError
	if _, err := st.UpdateProvider(ctx, actor, org.ID, p.ID, store.ProviderChange{AzureClientID: ptr(otherClient)}); !errors.As(err, &ve) || ve.Fields["api_key"] == "" {
		t.Fatalf("new client id, the old app's secret kept: %v", err)
	}
	if up, err := st.UpdateProvider(ctx, actor, org.ID, p.ID, store.ProviderChange{AzureClientID: ptr(otherClient), APIKey: ptr("entra-secret-222b")}); err != nil || up.AzureClientID != otherClient {
		t.Fatalf("new client id with its secret: %+v, %v", up, err)
	}
	if cp := configProvider(t, st, org.ID, p.ID); cp.APIKey != "entra-secret-222b" || cp.AzureTenantID != "contoso.onmicrosoft.com" || cp.AzureClientID != otherClient {
		t.Fatalf("snapshot provider after new ids: %+v", cp)
	}
	if _, err := st.UpdateProvider(ctx, actor, org.ID, p.ID, store.ProviderChange{APIKey: ptr("entra-secret-333")}); err != nil {
		t.Fatal(err)
	}

	refuse("Entra ID", refused{
		"removing the client secret":        {p.ID, store.ProviderChange{APIKey: ptr("")}, "api_key"},
		"to the API key keeping the secret": {p.ID, entra("", ""), "api_key"},
		"clearing the tenant only":          {p.ID, withKey(store.ProviderChange{AzureTenantID: ptr("")}, "k"), "azure_tenant_id"},
		"new host, stored secret kept":      {p.ID, store.ProviderChange{BaseURL: ptr("https://other.openai.azure.com")}, "api_key"},
		"new ids, removing the secret":      {p.ID, withKey(entra(entraTenant, entraClient), ""), "api_key"},
		"API version still checked":         {p.ID, store.ProviderChange{APIVersion: ptr(" ")}, "api_version"},
		"native Responses still not for it": {p.ID, store.ProviderChange{NativeResponses: ptr(true)}, "native_responses"},
	})
	if cp := configProvider(t, st, org.ID, p.ID); cp.APIKey != "entra-secret-333" || cp.AzureTenantID != "contoso.onmicrosoft.com" {
		t.Fatalf("after refused edits: %+v", cp)
	}

	// Back to an API key, with the new key.
	up, err = st.UpdateProvider(ctx, actor, org.ID, p.ID, withKey(entra("", " "), "azure-api-key-444"))
	if err != nil || up.AzureTenantID != "" || up.AzureClientID != "" || !up.HasCredential {
		t.Fatalf("back to the API key: %+v, %v", up, err)
	}
	if cp := configProvider(t, st, org.ID, p.ID); cp.APIKey != "azure-api-key-444" || cp.AzureTenantID != "" {
		t.Fatalf("snapshot provider back on the API key: %+v", cp)
	}
	// Leaving Entra ID may also drop the credential altogether (nothing is reused).
	if _, err := st.UpdateProvider(ctx, actor, org.ID, p.ID, withKey(entra(entraTenant, entraClient), "entra-secret-555")); err != nil {
		t.Fatal(err)
	}
	if up, err := st.UpdateProvider(ctx, actor, org.ID, p.ID, withKey(entra("", ""), "")); err != nil || up.HasCredential || up.AzureTenantID != "" {
		t.Fatalf("leaving Entra ID without a credential: %+v, %v", up, err)
	}
	for _, s := range []string{"entra-secret-222", "entra-secret-333", "azure-api-key-444", "entra-secret-555"} {
		assertNowhereInClear(t, st, s)
	}
}
