package store

import (
	"context"
	"net/url"
	"strings"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store/dbq"
)

// ProviderChange edits a provider: nil fields stay as they are. The type is fixed at
// creation (a provider of another type is another provider).
type ProviderChange struct {
	// Type, when given, must be the provider's own.
	Type    *string
	Name    *string
	BaseURL *string
	// APIKey replaces the credential (sealed before it is stored); "" removes it.
	APIKey          *string
	APIVersion      *string
	NativeResponses *bool
	// AzureTenantID and AzureClientID (see Provider); "" for both goes back to the API
	// key. Switching either way needs APIKey in the same change: a stored API key is
	// never used as a client secret, nor a client secret as an API key.
	AzureTenantID *string
	AzureClientID *string
	Share         *Sharing
}

// providerEdit is what the audit log keeps of a provider edit: the provider as it is
// now, and what happened to its credential (never the credential itself).
type providerEdit struct {
	Provider
	Credential string `json:"credential,omitempty"` // "replaced", "removed" or empty
}

// UpdateProvider edits a provider of org. A new credential takes effect on every
// gateway with the next snapshot; requests in flight finish with the old one.
func (s *Store) UpdateProvider(ctx context.Context, actor Actor, orgID, id string, in ProviderChange) (Provider, error) {
	if in.BaseURL != nil {
		u := strings.TrimRight(strings.TrimSpace(*in.BaseURL), "/")
		if err := s.checkUpstreamURL(ctx, "base_url", u); err != nil {
			return Provider{}, err
		}
		in.BaseURL = &u
	}
	var out Provider
	err := s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		// Locked: a concurrent edit waits, then starts from this one's result (it would
		// otherwise write back the old credential or sharing it read).
		row, err := q.GetProviderForUpdate(ctx, dbq.GetProviderForUpdateParams{ID: id, OrgID: orgID})
		if err != nil {
			return err
		}
		shares, err := s.shares(ctx, q, orgID)
		if err != nil {
			return err
		}
		before := providerFromRow(row)
		fillShare(&before.SharedWith, shares["provider"], id)

		p := dbq.UpdateProviderParams{ID: id, OrgID: orgID, Name: row.Name, BaseUrl: row.BaseUrl, ApiKeySealed: row.ApiKeySealed,
			ApiKeyKeyID: row.ApiKeyKeyID, ApiVersion: row.ApiVersion, NativeResponses: row.NativeResponses, SharedWithAll: row.SharedWithAll,
			AzureTenantID: row.AzureTenantID, AzureClientID: row.AzureClientID}
		if in.Type != nil && *in.Type != row.Type {
			return invalid("type", "cannot be changed; register a new provider of type "+*in.Type+" instead")
		}
		if in.Name != nil {
			p.Name = strings.TrimSpace(*in.Name)
		}
		if in.BaseURL != nil {
			// A stored credential never follows the provider to another host: whoever
			// moves it there must know the key (or remove it).
			if in.APIKey == nil && row.ApiKeySealed != nil && !sameOrigin(row.BaseUrl, *in.BaseURL) {
				what := "the API key again (or remove it)"
				if row.AzureTenantID != "" {
					what = "the client secret again"
				}
				return invalid("api_key", "enter "+what+" when the base URL moves to another host; the stored one is only sent where it was registered")
			}
			p.BaseUrl = *in.BaseURL
		}
		if in.APIVersion != nil {
			p.ApiVersion = strings.TrimSpace(*in.APIVersion)
		}
		if in.NativeResponses != nil {
			p.NativeResponses = *in.NativeResponses
		}
		if p.NativeResponses && row.Type != "openai-compatible" {
			return invalid("native_responses", "is for openai-compatible providers only")
		}
		if err := checkAPIVersion(row.Type, p.ApiVersion); err != nil {
			return err
		}
		if in.AzureTenantID != nil {
			p.AzureTenantID = strings.TrimSpace(*in.AzureTenantID)
		}
		if in.AzureClientID != nil {
			p.AzureClientID = strings.TrimSpace(*in.AzureClientID)
		}
		if err := checkEntra(row.Type, p.AzureTenantID, p.AzureClientID); err != nil {
			return err
		}
		credential := ""
		if in.APIKey != nil {
			// Sealed for what it now is, an API key or a client secret.
			if p.ApiKeySealed, p.ApiKeyKeyID, err = s.seal(*in.APIKey, providerAAD(orgID, p.AzureTenantID != "")); err != nil {
				return err
			}
			credential = "replaced"
			if p.ApiKeySealed == nil {
				credential = "removed"
			}
		}
		wasEntra := row.AzureTenantID != ""
		if err := checkEntraCredential(wasEntra, p.AzureTenantID != "", wasEntra && p.AzureClientID != row.AzureClientID,
			in.APIKey != nil, p.ApiKeySealed != nil); err != nil {
			return err
		}
		all, teams, err := s.reshare(ctx, q, orgID, in.Share, before.SharedWith)
		if err != nil {
			return err
		}
		p.SharedWithAll = all
		updated, err := q.UpdateProvider(ctx, p)
		if err != nil {
			return err
		}
		out = providerFromRow(updated)
		if err := s.setEditShares(ctx, q, orgID, "provider", id, in.Share, teams, &out.SharedWith); err != nil {
			return err
		}
		ch.before, ch.after = before, providerEdit{Provider: out, Credential: credential}
		return nil
	}, change{actor: actor, orgID: orgID, action: "provider.update", targetType: "provider", targetID: id})
	return out, err
}

// checkEntraCredential: a provider switching between an API key and Microsoft Entra ID,
// or to another app registration (client id), gets a new credential in the same edit
// (the stored one was given for the other use), and an Entra ID provider keeps a
// client secret.
func checkEntraCredential(wasEntra, entra, otherApp, newCredential, hasCredential bool) error {
	switch {
	case entra && !wasEntra && !newCredential:
		return invalid("api_key", "enter the app registration's client secret when switching to Microsoft Entra ID; the stored API key is never used as one")
	case wasEntra && !entra && !newCredential:
		return invalid("api_key", "enter an API key (or an empty one, for none) when switching from Microsoft Entra ID to an API key; the stored client secret is never sent as one")
	case entra && otherApp && !newCredential:
		return invalid("api_key", "enter the client secret of the new app registration; the stored one belongs to the previous client id")
	case entra && !hasCredential:
		return invalid("api_key", entraSecretRequired)
	}
	return nil
}

// GetProvider returns one provider of org.
func (s *Store) GetProvider(ctx context.Context, orgID, id string) (Provider, error) {
	q := dbq.New(s.pool)
	row, err := q.GetProvider(ctx, dbq.GetProviderParams{ID: id, OrgID: orgID})
	if err != nil {
		return Provider{}, mapError(err)
	}
	shares, err := s.shares(ctx, q, orgID)
	if err != nil {
		return Provider{}, mapError(err)
	}
	p := providerFromRow(row)
	fillShare(&p.SharedWith, shares["provider"], id)
	return p, nil
}

// ModelChange edits a model: nil fields stay as they are. The name (what callers and
// aliases use) and the provider are fixed; deployments add providers.
type ModelChange struct {
	UpstreamModel                 *string
	InputPricePerMTokMicros       *int64
	OutputPricePerMTokMicros      *int64
	CachedInputPricePerMTokMicros *int64
	ContextWindow                 *int64
	Regions                       *[]string
	Share                         *Sharing
}

// UpdateModel edits a model of org. New prices apply to requests that start after
// the gateways have the next snapshot; usage already recorded keeps its cost.
func (s *Store) UpdateModel(ctx context.Context, actor Actor, orgID, id string, in ModelChange) (Model, error) {
	for field, v := range map[string]*int64{
		"input_price_per_mtok_micros": in.InputPricePerMTokMicros, "output_price_per_mtok_micros": in.OutputPricePerMTokMicros,
		"cached_input_price_per_mtok_micros": in.CachedInputPricePerMTokMicros, "context_window": in.ContextWindow,
	} {
		if v != nil && *v < 0 {
			return Model{}, invalid(field, "cannot be negative")
		}
	}
	if in.UpstreamModel != nil {
		u := strings.TrimSpace(*in.UpstreamModel)
		if u == "" {
			return Model{}, invalid("upstream_model", "cannot be empty")
		}
		in.UpstreamModel = &u
	}
	var regions []string
	if in.Regions != nil {
		var err error
		if regions, err = s.checkRegions(ctx, "regions", *in.Regions); err != nil {
			return Model{}, err
		}
	}
	var out Model
	err := s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		row, err := q.GetModelForUpdate(ctx, dbq.GetModelForUpdateParams{ID: id, OrgID: orgID})
		if err != nil {
			return err
		}
		shares, err := s.shares(ctx, q, orgID)
		if err != nil {
			return err
		}
		before := modelFromRow(row)
		fillShare(&before.SharedWith, shares["model"], id)

		p := dbq.UpdateModelParams{ID: id, OrgID: orgID, UpstreamModel: row.UpstreamModel, InputPricePerMtokMicros: row.InputPricePerMtokMicros,
			OutputPricePerMtokMicros: row.OutputPricePerMtokMicros, CachedInputPricePerMtokMicros: row.CachedInputPricePerMtokMicros,
			ContextWindow: row.ContextWindow, Regions: row.Regions, SharedWithAll: row.SharedWithAll}
		setIf(&p.UpstreamModel, in.UpstreamModel)
		setIf(&p.InputPricePerMtokMicros, in.InputPricePerMTokMicros)
		setIf(&p.OutputPricePerMtokMicros, in.OutputPricePerMTokMicros)
		setIf(&p.CachedInputPricePerMtokMicros, in.CachedInputPricePerMTokMicros)
		setIf(&p.ContextWindow, in.ContextWindow)
		if in.Regions != nil {
			p.Regions = regions
		}
		all, teams, err := s.reshare(ctx, q, orgID, in.Share, before.SharedWith)
		if err != nil {
			return err
		}
		p.SharedWithAll = all
		updated, err := q.UpdateModel(ctx, p)
		if err != nil {
			return err
		}
		out = modelFromRow(updated)
		if err := s.setEditShares(ctx, q, orgID, "model", id, in.Share, teams, &out.SharedWith); err != nil {
			return err
		}
		ch.before, ch.after = before, out
		return nil
	}, change{actor: actor, orgID: orgID, action: "model.update", targetType: "model", targetID: id})
	return out, err
}

// sameOrigin reports whether two base URLs have the same scheme, host and port.
func sameOrigin(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && ua.Scheme == ub.Scheme && strings.EqualFold(ua.Host, ub.Host)
}

// reshare resolves the sharing of an edit: the entry's current one when sh is nil.
func (s *Store) reshare(ctx context.Context, q *dbq.Queries, orgID string, sh *Sharing, cur Sharing) (bool, []string, error) {
	if sh == nil {
		return cur.All, cur.Teams, nil
	}
	return s.share(ctx, q, orgID, sh)
}

// setEditShares stores the teams of an edit that changed the sharing and fills out.
func (s *Store) setEditShares(ctx context.Context, q *dbq.Queries, orgID, kind, id string, sh *Sharing, teams []string, out *Sharing) error {
	if sh != nil {
		if err := setShares(ctx, q, orgID, kind, id, teams); err != nil {
			return err
		}
	}
	if !out.All {
		out.Teams = append(out.Teams, teams...)
	}
	return nil
}

func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}
