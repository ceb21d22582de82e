package store

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store/dbq"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
)

// ProviderTypes lists the provider types the registry accepts.
var ProviderTypes = []string{"openai-compatible", "anthropic", "azure-openai", "gemini"}

// Sharing says which teams of the org may use a registry entry.
type Sharing struct {
	// All shares with every team (now and later); otherwise only Teams (ids).
	All   bool     `json:"all"`
	Teams []string `json:"teams"`
}

// Provider is an upstream LLM endpoint. The credential is never returned.
type Provider struct {
	ID         string `json:"id"`
	OrgID      string `json:"org_id"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	BaseURL    string `json:"base_url"`
	APIVersion string `json:"api_version,omitempty"`
	// NativeResponses: every Responses request goes to the provider's own
	// /responses (OpenAI-compatible only).
	NativeResponses bool      `json:"native_responses"`
	HasCredential   bool      `json:"has_credential"`
	SharedWith      Sharing   `json:"shared_with"`
	CreatedAt       time.Time `json:"created_at"`
	// AzureTenantID and AzureClientID name the Microsoft Entra ID app registration an
	// Azure OpenAI provider authenticates as (both or neither); the credential is then
	// its client secret, which gateways send to the token endpoint only.
	AzureTenantID string `json:"azure_tenant_id,omitempty"`
	AzureClientID string `json:"azure_client_id,omitempty"`
}

// NewProvider describes a provider to create. APIKey is sealed before it is stored.
type NewProvider struct {
	Name       string
	Type       string
	BaseURL    string
	APIKey     string
	APIVersion string
	// NativeResponses: see Provider.
	NativeResponses bool
	// AzureTenantID and AzureClientID: see Provider. With them, APIKey is the app
	// registration's client secret (required).
	AzureTenantID string
	AzureClientID string
	// Share nil means all teams.
	Share *Sharing
}

// Model is a model an org offers.
type Model struct {
	ID                            string    `json:"id"`
	OrgID                         string    `json:"org_id"`
	Name                          string    `json:"name"`
	ProviderID                    string    `json:"provider_id"`
	UpstreamModel                 string    `json:"upstream_model"`
	InputPricePerMTokMicros       int64     `json:"input_price_per_mtok_micros"`
	OutputPricePerMTokMicros      int64     `json:"output_price_per_mtok_micros"`
	CachedInputPricePerMTokMicros int64     `json:"cached_input_price_per_mtok_micros"`
	ContextWindow                 int64     `json:"context_window"`
	Regions                       []string  `json:"regions"`
	SharedWith                    Sharing   `json:"shared_with"`
	Limits                        Limits    `json:"limits"`
	Routing                       Routing   `json:"routing"`
	CreatedAt                     time.Time `json:"created_at"`
}

func providerFromRow(r dbq.Provider) Provider {
	return Provider{
		ID: r.ID, OrgID: r.OrgID, Name: r.Name, Type: r.Type, BaseURL: r.BaseUrl, APIVersion: r.ApiVersion, NativeResponses: r.NativeResponses,
		AzureTenantID: r.AzureTenantID, AzureClientID: r.AzureClientID,
		HasCredential: r.ApiKeySealed != nil, SharedWith: Sharing{All: r.SharedWithAll, Teams: []string{}}, CreatedAt: r.CreatedAt.Time.UTC(),
	}
}

func modelFromRow(r dbq.Model) Model {
	return Model{
		ID: r.ID, OrgID: r.OrgID, Name: r.Name, ProviderID: r.ProviderID, UpstreamModel: r.UpstreamModel,
		InputPricePerMTokMicros: r.InputPricePerMtokMicros, OutputPricePerMTokMicros: r.OutputPricePerMtokMicros,
		CachedInputPricePerMTokMicros: r.CachedInputPricePerMtokMicros, ContextWindow: r.ContextWindow, Regions: r.Regions,
		SharedWith: Sharing{All: r.SharedWithAll, Teams: []string{}}, CreatedAt: r.CreatedAt.Time.UTC(),
		Limits: Limits{RPM: r.Rpm, TPM: r.Tpm, MaxConcurrent: r.MaxConcurrent},
		Routing: Routing{Strategy: r.RoutingStrategy, MaxRetries: r.MaxRetries, RetryBackoffMs: r.RetryBackoffMs, TimeoutMs: r.TimeoutMs,
			TTFTTimeoutMs: r.TtftTimeoutMs, StreamIdleTimeoutMs: r.StreamIdleTimeoutMs, BreakerFailures: r.BreakerFailures,
			BreakerCooldownMs: r.BreakerCooldownMs, Fallbacks: r.Fallbacks},
	}
}

// credentialAAD binds a sealed credential to its org and kind, so a ciphertext copied
// into another org's (or another kind's) row does not open.
func credentialAAD(orgID string) []byte { return []byte("gatehouse/provider-credential/" + orgID) }

// entraSecretAAD binds the client secret of a provider authenticated by Microsoft
// Entra ID: sealed apart from API keys, so that code which knows only API keys (an
// older release, during a rolling upgrade) cannot open it and send it as one.
func entraSecretAAD(orgID string) []byte { return []byte("gatehouse/provider-entra-secret/" + orgID) }

// providerAAD is the AAD of a provider's credential: an API key's, or a client
// secret's when the provider authenticates by Entra ID.
func providerAAD(orgID string, entra bool) []byte {
	if entra {
		return entraSecretAAD(orgID)
	}
	return credentialAAD(orgID)
}

func entryAAD(kind, orgID string) []byte { return []byte("gatehouse/" + kind + "-credential/" + orgID) }

// apiVersionRE is what an Azure OpenAI api-version looks like; the gateway puts it in
// a query string and refuses a snapshot whose version could change the URL.
var apiVersionRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)

// checkAPIVersion: Azure OpenAI needs a version, and a version is a plain token.
func checkAPIVersion(typ, v string) error {
	switch {
	case typ == "azure-openai" && v == "":
		return invalid("api_version", "is required for azure-openai (e.g. 2024-10-21)")
	case v != "" && !apiVersionRE.MatchString(v):
		return invalid("api_version", "must be a version such as 2024-10-21 (letters, digits, dots, dashes)")
	}
	return nil
}

// entraSecretRequired is what a Microsoft Entra ID provider without its client secret hears.
const entraSecretRequired = "with azure_tenant_id and azure_client_id, api_key must be the app registration's client secret"

// checkEntra: a Microsoft Entra ID app registration authenticates Azure OpenAI providers
// only, named by both its ids or not at all, checked as the gateway checks them.
func checkEntra(typ, tenant, client string) error {
	switch {
	case tenant == "" && client == "":
		return nil
	case typ != "azure-openai" && tenant != "":
		return invalid("azure_tenant_id", "is only for azure-openai providers")
	case typ != "azure-openai":
		return invalid("azure_client_id", "is only for azure-openai providers")
	case tenant == "":
		return invalid("azure_tenant_id", "is required with azure_client_id (leave both empty to authenticate with the API key)")
	case client == "":
		return invalid("azure_client_id", "is required with azure_tenant_id (leave both empty to authenticate with the API key)")
	}
	if err := wire.ValidEntraTenant(tenant); err != nil {
		return invalid("azure_tenant_id", err.Error())
	}
	if err := wire.ValidEntraClient(client); err != nil {
		return invalid("azure_client_id", err.Error())
	}
	return nil
}

// ValidateBaseURL checks an upstream base URL's shape (no network lookups).
func ValidateBaseURL(raw string) error {
	return (&Store{allowLinkLocal: true}).checkUpstreamURL(context.Background(), "base_url", raw)
}

// seal seals a credential, or returns nils for an empty one.
func (s *Store) seal(plain string, aad []byte) ([]byte, *string, error) {
	if plain == "" {
		return nil, nil, nil
	}
	kid, b, err := s.secrets.SealBytes([]byte(plain), aad)
	if err != nil {
		return nil, nil, err
	}
	return b, &kid, nil
}

// share resolves a Sharing to (all, team ids) and checks the teams belong to org.
func (s *Store) share(ctx context.Context, q *dbq.Queries, orgID string, sh *Sharing) (bool, []string, error) {
	if sh == nil || sh.All {
		return true, nil, nil
	}
	teams, err := q.ListTeams(ctx, orgID)
	if err != nil {
		return false, nil, err
	}
	var ids []string
	for _, ref := range sh.Teams {
		found := ""
		for _, t := range teams {
			if t.ID == ref || t.Slug == ref {
				found = t.ID
			}
		}
		if found == "" {
			return false, nil, invalid("shared_with", "no such team: "+ref)
		}
		if !slices.Contains(ids, found) {
			ids = append(ids, found)
		}
	}
	return false, ids, nil
}

func setShares(ctx context.Context, q *dbq.Queries, orgID, kind, entryID string, teams []string) error {
	if err := q.DeleteShares(ctx, dbq.DeleteSharesParams{Kind: kind, EntryID: entryID}); err != nil {
		return err
	}
	for _, t := range teams {
		if err := q.InsertShare(ctx, dbq.InsertShareParams{OrgID: orgID, Kind: kind, EntryID: entryID, TeamID: t}); err != nil {
			return err
		}
	}
	return nil
}

// shares returns kind → entry id → team ids for org.
func (s *Store) shares(ctx context.Context, q *dbq.Queries, orgID string) (map[string]map[string][]string, error) {
	rows, err := q.ListShares(ctx, orgID)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string][]string{}
	for _, r := range rows {
		if out[r.Kind] == nil {
			out[r.Kind] = map[string][]string{}
		}
		out[r.Kind][r.EntryID] = append(out[r.Kind][r.EntryID], r.TeamID)
	}
	return out, nil
}

func fillShare(sh *Sharing, m map[string][]string, id string) {
	if !sh.All {
		sh.Teams = append([]string{}, m[id]...)
	}
}

// CreateProvider registers an upstream provider for org.
func (s *Store) CreateProvider(ctx context.Context, actor Actor, orgID string, in NewProvider) (Provider, error) {
	in.Name, in.BaseURL = strings.TrimSpace(in.Name), strings.TrimRight(strings.TrimSpace(in.BaseURL), "/")
	if in.Type == "" {
		in.Type = "openai-compatible"
	}
	if !slices.Contains(ProviderTypes, in.Type) {
		return Provider{}, invalid("type", "must be one of "+strings.Join(ProviderTypes, ", "))
	}
	if in.NativeResponses && in.Type != "openai-compatible" {
		return Provider{}, invalid("native_responses", "is for openai-compatible providers only")
	}
	if err := checkAPIVersion(in.Type, strings.TrimSpace(in.APIVersion)); err != nil {
		return Provider{}, err
	}
	in.AzureTenantID, in.AzureClientID = strings.TrimSpace(in.AzureTenantID), strings.TrimSpace(in.AzureClientID)
	if err := checkEntra(in.Type, in.AzureTenantID, in.AzureClientID); err != nil {
		return Provider{}, err
	}
	if in.AzureTenantID != "" && in.APIKey == "" {
		return Provider{}, invalid("api_key", entraSecretRequired)
	}
	if err := s.checkUpstreamURL(ctx, "base_url", in.BaseURL); err != nil {
		return Provider{}, err
	}
	sealed, keyID, err := s.seal(in.APIKey, providerAAD(orgID, in.AzureTenantID != ""))
	if err != nil {
		return Provider{}, err
	}
	var out Provider
	err = s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		all, teams, err := s.share(ctx, q, orgID, in.Share)
		if err != nil {
			return err
		}
		row, err := q.CreateProvider(ctx, dbq.CreateProviderParams{
			OrgID: orgID, Name: in.Name, Type: in.Type, BaseUrl: in.BaseURL, ApiKeySealed: sealed, ApiKeyKeyID: keyID,
			ApiVersion: strings.TrimSpace(in.APIVersion), SharedWithAll: all, NativeResponses: in.NativeResponses,
			AzureTenantID: in.AzureTenantID, AzureClientID: in.AzureClientID,
		})
		if err != nil {
			return err
		}
		if err := setShares(ctx, q, orgID, "provider", row.ID, teams); err != nil {
			return err
		}
		out = providerFromRow(row)
		out.SharedWith.Teams = append(out.SharedWith.Teams, teams...)
		ch.targetID, ch.after = out.ID, out
		return nil
	}, change{actor: actor, orgID: orgID, action: "provider.create", targetType: "provider"})
	return out, err
}

// DeleteProvider deletes a provider no model uses.
func (s *Store) DeleteProvider(ctx context.Context, actor Actor, orgID, id string) error {
	return s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		row, err := q.DeleteProvider(ctx, dbq.DeleteProviderParams{ID: id, OrgID: orgID})
		if err != nil {
			return inUse(err, "the provider is still used by models; delete them first")
		}
		ch.before = providerFromRow(row)
		return q.DeleteShares(ctx, dbq.DeleteSharesParams{Kind: "provider", EntryID: id})
	}, change{actor: actor, orgID: orgID, action: "provider.delete", targetType: "provider", targetID: id})
}

// ListProviders lists the providers of org.
func (s *Store) ListProviders(ctx context.Context, orgID string) ([]Provider, error) {
	q := dbq.New(s.pool)
	rows, err := q.ListProviders(ctx, orgID)
	if err != nil {
		return nil, mapError(err)
	}
	sh, err := s.shares(ctx, q, orgID)
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]Provider, len(rows))
	for i, r := range rows {
		out[i] = providerFromRow(r)
		fillShare(&out[i].SharedWith, sh["provider"], r.ID)
	}
	return out, nil
}

// NewModel describes a model to create. Provider is the provider's id or name.
type NewModel struct {
	Name                          string
	Provider                      string
	UpstreamModel                 string
	InputPricePerMTokMicros       int64
	OutputPricePerMTokMicros      int64
	CachedInputPricePerMTokMicros int64
	ContextWindow                 int64
	Regions                       []string
	Share                         *Sharing
}

// CreateModel registers a model for org.
func (s *Store) CreateModel(ctx context.Context, actor Actor, orgID string, in NewModel) (Model, error) {
	in.Name, in.UpstreamModel = strings.TrimSpace(in.Name), strings.TrimSpace(in.UpstreamModel)
	if in.UpstreamModel == "" {
		in.UpstreamModel = in.Name
	}
	if in.ContextWindow < 0 {
		return Model{}, invalid("context_window", "cannot be negative")
	}
	regions, err := s.checkRegions(ctx, "regions", in.Regions)
	if err != nil {
		return Model{}, err
	}
	providers, err := s.ListProviders(ctx, orgID)
	if err != nil {
		return Model{}, err
	}
	providerID := ""
	for _, p := range providers {
		if p.ID == in.Provider || p.Name == in.Provider {
			providerID = p.ID
		}
	}
	if providerID == "" {
		return Model{}, invalid("provider", "no such provider in this organization")
	}
	var out Model
	err = s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		all, teams, err := s.share(ctx, q, orgID, in.Share)
		if err != nil {
			return err
		}
		row, err := q.CreateModel(ctx, dbq.CreateModelParams{
			OrgID: orgID, Name: in.Name, ProviderID: providerID, UpstreamModel: in.UpstreamModel,
			InputPricePerMtokMicros: in.InputPricePerMTokMicros, OutputPricePerMtokMicros: in.OutputPricePerMTokMicros,
			CachedInputPricePerMtokMicros: in.CachedInputPricePerMTokMicros, ContextWindow: in.ContextWindow,
			Regions: regions, SharedWithAll: all,
		})
		if err != nil {
			return err
		}
		if err := setShares(ctx, q, orgID, "model", row.ID, teams); err != nil {
			return err
		}
		out = modelFromRow(row)
		out.SharedWith.Teams = append(out.SharedWith.Teams, teams...)
		ch.targetID, ch.after = out.ID, out
		return nil
	}, change{actor: actor, orgID: orgID, action: "model.create", targetType: "model"})
	return out, err
}

// DeleteModel deletes a model no alias uses.
func (s *Store) DeleteModel(ctx context.Context, actor Actor, orgID, id string) error {
	return s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		row, err := q.DeleteModel(ctx, dbq.DeleteModelParams{ID: id, OrgID: orgID})
		if err != nil {
			return inUse(err, "the model is still used by team aliases; delete them first")
		}
		ch.before = modelFromRow(row)
		return q.DeleteShares(ctx, dbq.DeleteSharesParams{Kind: "model", EntryID: id})
	}, change{actor: actor, orgID: orgID, action: "model.delete", targetType: "model", targetID: id})
}

// ListModels lists the models of org.
func (s *Store) ListModels(ctx context.Context, orgID string) ([]Model, error) {
	q := dbq.New(s.pool)
	rows, err := q.ListModels(ctx, orgID)
	if err != nil {
		return nil, mapError(err)
	}
	sh, err := s.shares(ctx, q, orgID)
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]Model, len(rows))
	for i, r := range rows {
		out[i] = modelFromRow(r)
		fillShare(&out[i].SharedWith, sh["model"], r.ID)
	}
	return out, nil
}

// checkRegions normalises a region list and checks every region is known.
func (s *Store) checkRegions(ctx context.Context, field string, in []string) ([]string, error) {
	known, err := dbq.New(s.pool).ListRegions(ctx)
	if err != nil {
		return nil, mapError(err)
	}
	out := []string{}
	for _, r := range in {
		r = strings.ToLower(strings.TrimSpace(r))
		if r == "" || slices.Contains(out, r) {
			continue
		}
		if !slices.Contains(known, r) {
			return nil, invalid(field, "unknown region "+r+" (known: "+strings.Join(known, ", ")+")")
		}
		out = append(out, r)
	}
	slices.Sort(out)
	return out, nil
}

// EnsureRegions records regions (the control plane's configured ones) as known.
func (s *Store) EnsureRegions(ctx context.Context, names []string) error {
	q := dbq.New(s.pool)
	for _, n := range names {
		if err := q.UpsertRegion(ctx, n); err != nil {
			return mapError(err)
		}
	}
	return nil
}

// ListRegions lists the known regions.
func (s *Store) ListRegions(ctx context.Context) ([]string, error) {
	r, err := dbq.New(s.pool).ListRegions(ctx)
	return r, mapError(err)
}
