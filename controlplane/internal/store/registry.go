package store

import (
	"context"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store/dbq"
)

// ProviderTypes lists the provider types the gateway can speak to.
var ProviderTypes = []string{"openai-compatible"}

// Provider is an upstream LLM endpoint. The credential is never returned.
type Provider struct {
	ID            string    `json:"id"`
	OrgID         string    `json:"org_id"`
	Name          string    `json:"name"`
	Type          string    `json:"type"`
	BaseURL       string    `json:"base_url"`
	HasCredential bool      `json:"has_credential"`
	CreatedAt     time.Time `json:"created_at"`
}

// NewProvider describes a provider to create. APIKey is sealed before it is stored.
type NewProvider struct {
	Name    string
	Type    string
	BaseURL string
	APIKey  string
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
	CreatedAt                     time.Time `json:"created_at"`
}

func providerFromRow(r dbq.Provider) Provider {
	return Provider{
		ID: r.ID, OrgID: r.OrgID, Name: r.Name, Type: r.Type, BaseURL: r.BaseUrl,
		HasCredential: r.ApiKeySealed != nil, CreatedAt: r.CreatedAt.Time.UTC(),
	}
}

func modelFromRow(r dbq.Model) Model {
	return Model{
		ID: r.ID, OrgID: r.OrgID, Name: r.Name, ProviderID: r.ProviderID, UpstreamModel: r.UpstreamModel,
		InputPricePerMTokMicros: r.InputPricePerMtokMicros, OutputPricePerMTokMicros: r.OutputPricePerMtokMicros,
		CachedInputPricePerMTokMicros: r.CachedInputPricePerMtokMicros, CreatedAt: r.CreatedAt.Time.UTC(),
	}
}

// credentialAAD binds a sealed credential to its org, so a ciphertext copied into
// another org's row does not open.
func credentialAAD(orgID string) []byte { return []byte("gatehouse/provider-credential/" + orgID) }

// ValidateBaseURL checks an upstream base URL.
func ValidateBaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalid("base_url", "must be an absolute http or https URL")
	}
	if u.User != nil {
		return invalid("base_url", "must not carry credentials; use api_key")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return invalid("base_url", "must not have a query or fragment")
	}
	return nil
}

// CreateProvider registers an upstream provider for org.
func (s *Store) CreateProvider(ctx context.Context, actor Actor, orgID string, in NewProvider) (Provider, error) {
	in.Name, in.BaseURL = strings.TrimSpace(in.Name), strings.TrimRight(strings.TrimSpace(in.BaseURL), "/")
	if in.Type == "" {
		in.Type = "openai-compatible"
	}
	if err := ValidateBaseURL(in.BaseURL); err != nil {
		return Provider{}, err
	}
	var sealed []byte
	var keyID *string
	if in.APIKey != "" {
		kid, b, err := s.secrets.SealBytes([]byte(in.APIKey), credentialAAD(orgID))
		if err != nil {
			return Provider{}, err
		}
		sealed, keyID = b, &kid
	}
	var out Provider
	err := s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		row, err := q.CreateProvider(ctx, dbq.CreateProviderParams{
			OrgID: orgID, Name: in.Name, Type: in.Type, BaseUrl: in.BaseURL, ApiKeySealed: sealed, ApiKeyKeyID: keyID,
		})
		if err != nil {
			return err
		}
		out = providerFromRow(row)
		ch.targetID, ch.after = out.ID, out
		return nil
	}, change{actor: actor, orgID: orgID, action: "provider.create", targetType: "provider"})
	return out, err
}

// ListProviders lists the providers of org.
func (s *Store) ListProviders(ctx context.Context, orgID string) ([]Provider, error) {
	rows, err := dbq.New(s.pool).ListProviders(ctx, orgID)
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]Provider, len(rows))
	for i, r := range rows {
		out[i] = providerFromRow(r)
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
}

// CreateModel registers a model for org.
func (s *Store) CreateModel(ctx context.Context, actor Actor, orgID string, in NewModel) (Model, error) {
	in.Name, in.UpstreamModel = strings.TrimSpace(in.Name), strings.TrimSpace(in.UpstreamModel)
	if in.UpstreamModel == "" {
		in.UpstreamModel = in.Name
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
		row, err := q.CreateModel(ctx, dbq.CreateModelParams{
			OrgID: orgID, Name: in.Name, ProviderID: providerID, UpstreamModel: in.UpstreamModel,
			InputPricePerMtokMicros: in.InputPricePerMTokMicros, OutputPricePerMtokMicros: in.OutputPricePerMTokMicros,
			CachedInputPricePerMtokMicros: in.CachedInputPricePerMTokMicros,
		})
		if err != nil {
			return err
		}
		out = modelFromRow(row)
		ch.targetID, ch.after = out.ID, out
		return nil
	}, change{actor: actor, orgID: orgID, action: "model.create", targetType: "model"})
	return out, err
}

// ListModels lists the models of org.
func (s *Store) ListModels(ctx context.Context, orgID string) ([]Model, error) {
	rows, err := dbq.New(s.pool).ListModels(ctx, orgID)
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]Model, len(rows))
	for i, r := range rows {
		out[i] = modelFromRow(r)
	}
	return out, nil
}
