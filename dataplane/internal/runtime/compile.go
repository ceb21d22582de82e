package runtime

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

// Compile validates one org snapshot and compiles it. Any inconsistency (dangling
// references, duplicate ids, unusable URLs) rejects the whole snapshot.
func Compile(meta *gatehousev1.SnapshotMeta, snap *gatehousev1.Snapshot) (*Org, error) {
	org, err := compile(meta, snap)
	if err != nil {
		return nil, fmt.Errorf("compile snapshot: %w", err)
	}
	return org, nil
}

func compile(meta *gatehousev1.SnapshotMeta, snap *gatehousev1.Snapshot) (*Org, error) {
	if snap.GetOrg() == nil {
		return nil, errors.New("no organization")
	}
	if snap.Org.Id != meta.GetOrgId() {
		return nil, fmt.Errorf("organization %q does not match meta org %q", snap.Org.Id, meta.GetOrgId())
	}
	org := &Org{
		ID:        snap.Org.Id,
		Slug:      snap.Org.Slug,
		Suspended: snap.Org.Suspended,
		Epoch:     meta.GetEpoch(),
		Version:   meta.GetVersion(),
		SHA256:    meta.GetSha256(),
		BuiltAt:   time.UnixMilli(meta.GetBuiltAtUnixMs()),
		teams:     make(map[string]*Team, len(snap.Teams)),
		keys:      make(map[string]*Key, len(snap.Keys)),
		models:    make(map[string]*Model, len(snap.Models)),
	}
	for _, t := range snap.Teams {
		if t.Id == "" {
			return nil, errors.New("team with empty id")
		}
		if _, dup := org.teams[t.Id]; dup {
			return nil, fmt.Errorf("duplicate team %q", t.Id)
		}
		org.teams[t.Id] = &Team{ID: t.Id, Slug: t.Slug, Suspended: t.Suspended}
	}
	for _, k := range snap.Keys {
		key, err := compileKey(org, k)
		if err != nil {
			return nil, err
		}
		if _, dup := org.keys[key.ID]; dup {
			return nil, fmt.Errorf("duplicate key %q", key.ID)
		}
		org.keys[key.ID] = key
	}
	providers := make(map[string]*Provider, len(snap.Providers))
	for _, p := range snap.Providers {
		prov, err := compileProvider(p)
		if err != nil {
			return nil, err
		}
		if _, dup := providers[prov.ID]; dup {
			return nil, fmt.Errorf("duplicate provider %q", prov.ID)
		}
		providers[prov.ID] = prov
	}
	modelIDs := make(map[string]struct{}, len(snap.Models))
	for _, m := range snap.Models {
		model, err := compileModel(org, providers, m)
		if err != nil {
			return nil, err
		}
		if _, dup := modelIDs[model.ID]; dup {
			return nil, fmt.Errorf("duplicate model id %q", model.ID)
		}
		if _, dup := org.models[model.Name]; dup {
			return nil, fmt.Errorf("duplicate model name %q", model.Name)
		}
		modelIDs[model.ID] = struct{}{}
		org.models[model.Name] = model
		org.modelList = append(org.modelList, model)
	}
	slices.SortFunc(org.modelList, func(a, b *Model) int { return strings.Compare(a.Name, b.Name) })
	return org, nil
}

func compileKey(org *Org, k *gatehousev1.ApiKey) (*Key, error) {
	if !validKeyID(k.Id) {
		return nil, fmt.Errorf("key %q: id must be %d characters of a-z0-9", k.Id, keyIDLen)
	}
	team, ok := org.teams[k.TeamId]
	if !ok {
		return nil, fmt.Errorf("key %q: unknown team %q", k.Id, k.TeamId)
	}
	if len(k.SecretSha256) != sha256.Size {
		return nil, fmt.Errorf("key %q: secret hash must be %d bytes", k.Id, sha256.Size)
	}
	key := &Key{ID: k.Id, Org: org, Team: team}
	copy(key.secretSHA256[:], k.SecretSha256)
	if k.ExpiresAtUnixMs != 0 {
		key.ExpiresAt = time.UnixMilli(k.ExpiresAtUnixMs)
	}
	if len(k.AllowedModels) > 0 {
		key.allowedModels = make(map[string]struct{}, len(k.AllowedModels))
		for _, name := range k.AllowedModels {
			key.allowedModels[name] = struct{}{}
		}
	}
	return key, nil
}

func compileProvider(p *gatehousev1.Provider) (*Provider, error) {
	if p.Id == "" {
		return nil, errors.New("provider with empty id")
	}
	if p.Type != gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE {
		return nil, fmt.Errorf("provider %q: unsupported type %s", p.Id, p.Type)
	}
	u, err := url.Parse(p.BaseUrl)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("provider %q: base_url must be an absolute http(s) URL without credentials", p.Id)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("provider %q: base_url must not have a query or fragment", p.Id)
	}
	prov := &Provider{
		ID:                 p.Id,
		Name:               p.Name,
		Type:               p.Type,
		BaseURL:            u,
		ChatCompletionsURL: strings.TrimSuffix(u.String(), "/") + "/chat/completions",
	}
	if p.ApiKey != "" {
		prov.Authorization = "Bearer " + p.ApiKey
	}
	return prov, nil
}

func compileModel(org *Org, providers map[string]*Provider, m *gatehousev1.Model) (*Model, error) {
	if m.Id == "" || m.Name == "" {
		return nil, fmt.Errorf("model %q: id and name are required", m.Id)
	}
	prov, ok := providers[m.ProviderId]
	if !ok {
		return nil, fmt.Errorf("model %q: unknown provider %q", m.Id, m.ProviderId)
	}
	if m.UpstreamModel == "" {
		return nil, fmt.Errorf("model %q: upstream_model is required", m.Id)
	}
	if m.InputPricePerMtokMicros < 0 || m.OutputPricePerMtokMicros < 0 || m.CachedInputPricePerMtokMicros < 0 {
		return nil, fmt.Errorf("model %q: negative price", m.Id)
	}
	model := &Model{
		ID:               m.Id,
		Name:             m.Name,
		UpstreamModel:    m.UpstreamModel,
		Provider:         prov,
		InputPrice:       m.InputPricePerMtokMicros,
		OutputPrice:      m.OutputPricePerMtokMicros,
		CachedInputPrice: m.CachedInputPricePerMtokMicros,
	}
	if len(m.TeamIds) > 0 {
		model.teams = make(map[string]struct{}, len(m.TeamIds))
		for _, tid := range m.TeamIds {
			if _, ok := org.teams[tid]; !ok {
				return nil, fmt.Errorf("model %q: unknown team %q", m.Id, tid)
			}
			model.teams[tid] = struct{}{}
		}
	}
	return model, nil
}
