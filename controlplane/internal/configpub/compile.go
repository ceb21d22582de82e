// Package configpub compiles an org's configuration from Postgres into one protobuf
// snapshot per region and publishes it, sealed, to the config KV bucket. It drains the
// transactional outbox, so a change committed just before a crash is still published
// after the restart. It does not watch gateways; that is the fleet's job.
package configpub

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
)

// ErrTooLarge means a snapshot exceeds the KV value size limit; it is never published.
var ErrTooLarge = errors.New("snapshot exceeds the config value size limit")

// Compiled is a validated snapshot ready to seal.
type Compiled struct {
	Meta     *gatehousev1.SnapshotMeta
	Snapshot *gatehousev1.Snapshot
	Body     []byte
}

// Compile builds and validates the snapshot of cfg for region. maxBytes bounds the
// encoded body (the sealed value adds a small fixed overhead on top).
func Compile(cfg store.OrgConfig, region string, builtAt time.Time, maxBytes int) (Compiled, error) {
	snap := &gatehousev1.Snapshot{
		Org: &gatehousev1.Organization{Id: cfg.Org.ID, Slug: cfg.Org.Slug, Name: cfg.Org.Name, Suspended: cfg.Org.Suspended},
	}
	for _, t := range cfg.Teams {
		snap.Teams = append(snap.Teams, &gatehousev1.Team{Id: t.ID, Slug: t.Slug, Name: t.Name, Suspended: t.Suspended})
	}
	for _, k := range cfg.Keys {
		var exp int64
		if k.ExpiresAt != nil {
			exp = k.ExpiresAt.UnixMilli()
		}
		snap.Keys = append(snap.Keys, &gatehousev1.ApiKey{
			Id: k.ID, TeamId: k.TeamID, Name: k.Name, SecretSha256: k.SecretSHA256,
			ExpiresAtUnixMs: exp, AllowedModels: slices.Sorted(slices.Values(k.AllowedModels)),
		})
	}
	for _, p := range cfg.Providers {
		snap.Providers = append(snap.Providers, &gatehousev1.Provider{
			Id: p.ID, Name: p.Name, Type: providerType(p.Type), BaseUrl: p.BaseURL, ApiKey: p.APIKey,
		})
	}
	for _, m := range cfg.Models {
		snap.Models = append(snap.Models, &gatehousev1.Model{
			Id: m.ID, Name: m.Name, ProviderId: m.ProviderID, UpstreamModel: m.UpstreamModel,
			InputPricePerMtokMicros: m.InputPricePerMTokMicros, OutputPricePerMtokMicros: m.OutputPricePerMTokMicros,
			CachedInputPricePerMtokMicros: m.CachedInputPricePerMTokMicros,
		})
	}
	sortSnapshot(snap)
	if err := Validate(snap); err != nil {
		return Compiled{}, fmt.Errorf("compile org %s: %w", cfg.Org.ID, err)
	}
	body, sum, err := wire.MarshalSnapshot(snap)
	if err != nil {
		return Compiled{}, err
	}
	if len(body) > maxBytes {
		return Compiled{}, fmt.Errorf("compile org %s: %w: %d bytes > %d", cfg.Org.ID, ErrTooLarge, len(body), maxBytes)
	}
	meta := &gatehousev1.SnapshotMeta{
		OrgId: cfg.Org.ID, Region: region, Epoch: cfg.Epoch, Version: cfg.Version, Sha256: sum,
		BuiltAtUnixMs: builtAt.UnixMilli(), MinGatewayCapability: 1,
	}
	return Compiled{Meta: meta, Snapshot: snap, Body: body}, nil
}

func providerType(t string) gatehousev1.ProviderType {
	switch t {
	case "openai-compatible":
		return gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE
	}
	return gatehousev1.ProviderType_PROVIDER_TYPE_UNSPECIFIED
}

// sortSnapshot orders every list by id, so equal configurations encode to equal bytes.
func sortSnapshot(s *gatehousev1.Snapshot) {
	slices.SortFunc(s.Teams, func(a, b *gatehousev1.Team) int { return cmpStr(a.Id, b.Id) })
	slices.SortFunc(s.Keys, func(a, b *gatehousev1.ApiKey) int { return cmpStr(a.Id, b.Id) })
	slices.SortFunc(s.Providers, func(a, b *gatehousev1.Provider) int { return cmpStr(a.Id, b.Id) })
	slices.SortFunc(s.Models, func(a, b *gatehousev1.Model) int { return cmpStr(a.Id, b.Id) })
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Validate checks a snapshot's referential integrity: what a gateway would refuse, the
// control plane refuses first.
func Validate(s *gatehousev1.Snapshot) error {
	if s.GetOrg().GetId() == "" {
		return errors.New("validate: no org")
	}
	teams := map[string]bool{}
	for _, t := range s.Teams {
		if teams[t.Id] {
			return fmt.Errorf("validate: duplicate team %s", t.Id)
		}
		teams[t.Id] = true
	}
	keyIDs := map[string]bool{}
	for _, k := range s.Keys {
		if keyIDs[k.Id] {
			return fmt.Errorf("validate: duplicate key %s", k.Id)
		}
		keyIDs[k.Id] = true
		if !teams[k.TeamId] {
			return fmt.Errorf("validate: key %s references missing team %s", k.Id, k.TeamId)
		}
		if len(k.SecretSha256) != 32 {
			return fmt.Errorf("validate: key %s has a malformed hash", k.Id)
		}
	}
	providers := map[string]bool{}
	for _, p := range s.Providers {
		if providers[p.Id] {
			return fmt.Errorf("validate: duplicate provider %s", p.Id)
		}
		providers[p.Id] = true
		if p.Type == gatehousev1.ProviderType_PROVIDER_TYPE_UNSPECIFIED {
			return fmt.Errorf("validate: provider %s has no type", p.Id)
		}
		if u, err := url.Parse(p.BaseUrl); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("validate: provider %s has an invalid base url", p.Id)
		}
	}
	names := map[string]bool{}
	for _, m := range s.Models {
		if names[m.Name] {
			return fmt.Errorf("validate: duplicate model name %q", m.Name)
		}
		names[m.Name] = true
		if !providers[m.ProviderId] {
			return fmt.Errorf("validate: model %s references missing provider %s", m.Id, m.ProviderId)
		}
		for _, t := range m.TeamIds {
			if !teams[t] {
				return fmt.Errorf("validate: model %s references missing team %s", m.Id, t)
			}
		}
	}
	return nil
}
