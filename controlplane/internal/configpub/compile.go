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
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"google.golang.org/protobuf/proto"
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
	capability := uint32(1)
	needs := func(c uint32) {
		if c > capability {
			capability = c
		}
	}
	snap := &gatehousev1.Snapshot{
		Org: &gatehousev1.Organization{Id: cfg.Org.ID, Slug: cfg.Org.Slug, Name: cfg.Org.Name, Suspended: cfg.Org.Suspended},
	}
	teams := map[string]*gatehousev1.Team{}
	for _, t := range cfg.Teams {
		pt := &gatehousev1.Team{Id: t.ID, Slug: t.Slug, Name: t.Name, Suspended: t.Suspended, Regions: sorted(t.Regions),
			Limits: limits(t.Limits), LogContents: t.LogContents}
		if len(pt.Regions) > 0 {
			needs(2)
		}
		if pt.Limits != nil || pt.LogContents {
			needs(3)
		}
		teams[t.ID] = pt
		snap.Teams = append(snap.Teams, pt)
	}
	for _, a := range cfg.Aliases {
		if t := teams[a.TeamID]; t != nil {
			t.Aliases = append(t.Aliases, &gatehousev1.ModelAlias{Alias: a.Alias, Model: a.Model})
			needs(2)
		}
	}
	for _, g := range cfg.Guardrails {
		if t := teams[g.TeamID]; t != nil {
			t.Guardrails = append(t.Guardrails, &gatehousev1.GuardrailRule{Id: g.ID, Name: g.Name, Detector: detector(g.Detector),
				Mode: guardMode(g.Mode), Direction: direction(g.Direction), Pattern: g.Pattern})
			needs(3)
		}
	}
	for _, t := range snap.Teams {
		slices.SortFunc(t.Guardrails, func(a, b *gatehousev1.GuardrailRule) int { return strings.Compare(a.Id, b.Id) })
		slices.SortFunc(t.Aliases, func(a, b *gatehousev1.ModelAlias) int { return strings.Compare(a.Alias, b.Alias) })
	}
	for _, k := range cfg.Keys {
		var exp int64
		if k.ExpiresAt != nil {
			exp = k.ExpiresAt.UnixMilli()
		}
		pk := &gatehousev1.ApiKey{
			Id: k.ID, TeamId: k.TeamID, Name: k.Name, SecretSha256: k.SecretSHA256,
			ExpiresAtUnixMs: exp, AllowedModels: sorted(k.AllowedModels), AgentIdentity: k.AgentIdentity,
			AllowedTools: sorted(k.AllowedTools), AllowedAgents: sorted(k.AllowedAgents), AllowedRegions: sorted(k.AllowedRegions),
			Limits: limits(k.Limits),
		}
		if pk.Limits != nil {
			needs(3)
		}
		if pk.AgentIdentity != "" || len(pk.AllowedTools)+len(pk.AllowedAgents)+len(pk.AllowedRegions) > 0 {
			needs(2)
		}
		snap.Keys = append(snap.Keys, pk)
	}
	providerTeams := map[string]store.Sharing{}
	for _, p := range cfg.Providers {
		pt := providerType(p.Type)
		if pt != gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE {
			needs(2)
		}
		providerTeams[p.ID] = p.SharedWith
		sp := &gatehousev1.Provider{
			Id: p.ID, Name: p.Name, Type: pt, BaseUrl: p.BaseURL, ApiKey: p.APIKey, ApiVersion: p.APIVersion,
			NativeResponses: p.NativeResponses,
		}
		if p.AzureTenantID != "" || p.AzureClientID != "" {
			sp.AzureEntra = &gatehousev1.AzureEntra{TenantId: p.AzureTenantID, ClientId: p.AzureClientID}
			needs(4)
		}
		snap.Providers = append(snap.Providers, sp)
	}
	unusable := map[string]bool{} // models nobody may use, left out
	for _, m := range cfg.Models {
		if len(m.Regions) > 0 && !slices.Contains(m.Regions, region) {
			snap.OtherRegionModels = append(snap.OtherRegionModels, &gatehousev1.RegionalModel{Name: m.Name, Regions: sorted(m.Regions)})
			needs(2)
			continue
		}
		parent, ok := providerTeams[m.ProviderID]
		if !ok {
			return Compiled{}, fmt.Errorf("compile org %s: validate: model %s references missing provider %s", cfg.Org.ID, m.ID, m.ProviderID)
		}
		teamIDs, anyone := teamsFor(m.SharedWith, parent)
		if !anyone {
			// Shared only with teams that may not use its provider: nobody may use it.
			unusable[m.Name] = true
			continue
		}
		pm := &gatehousev1.Model{
			Id: m.ID, Name: m.Name, ProviderId: m.ProviderID, UpstreamModel: m.UpstreamModel,
			InputPricePerMtokMicros: m.InputPricePerMTokMicros, OutputPricePerMtokMicros: m.OutputPricePerMTokMicros,
			CachedInputPricePerMtokMicros: m.CachedInputPricePerMTokMicros, ContextWindow: m.ContextWindow,
			TeamIds: teamIDs, Limits: limits(m.Limits), Fallbacks: slices.Clone(m.Routing.Fallbacks), Routing: routing(m.Routing),
		}
		for _, d := range cfg.Deployments {
			// A deployment on a provider some of the model's teams may not use would
			// hand them that provider (and its credential): it is left out.
			if d.ModelID == m.ID && covers(providerTeams[d.ProviderID], teamIDs) {
				pm.Deployments = append(pm.Deployments, &gatehousev1.Deployment{Id: d.ID, ProviderId: d.ProviderID, UpstreamModel: d.UpstreamModel, Weight: uint32(d.Weight)})
			}
		}
		if pm.Limits != nil || pm.Routing != nil || len(pm.Fallbacks) > 0 || len(pm.Deployments) > 0 {
			needs(3)
		}
		snap.Models = append(snap.Models, pm)
	}
	everyone := store.Sharing{All: true}
	for _, m := range cfg.MCPServers {
		teamIDs, anyone := teamsFor(m.SharedWith, everyone)
		if !anyone {
			continue
		}
		needs(2)
		tr := gatehousev1.McpTransport_MCP_TRANSPORT_STREAMABLE_HTTP
		if m.Transport == "sse" {
			tr = gatehousev1.McpTransport_MCP_TRANSPORT_SSE
		}
		snap.McpServers = append(snap.McpServers, &gatehousev1.McpServer{Id: m.ID, Name: m.Name, Url: m.URL, Transport: tr,
			AuthHeader: m.AuthHeader, Credential: m.Credential, TeamIds: teamIDs})
	}
	for _, a := range cfg.Agents {
		teamIDs, anyone := teamsFor(a.SharedWith, everyone)
		if !anyone {
			continue
		}
		needs(2)
		snap.Agents = append(snap.Agents, &gatehousev1.A2AAgent{Id: a.ID, Name: a.Name, CardUrl: a.CardURL,
			AuthHeader: a.AuthHeader, Credential: a.Credential, TeamIds: teamIDs})
	}
	// Aliases and fallbacks to a model nobody may use (its sharing and its provider's
	// do not meet) go too: an alias then answers as an unknown model, instead of one
	// sharing edit stopping every later change to the org from being published.
	for _, t := range snap.Teams {
		t.Aliases = slices.DeleteFunc(t.Aliases, func(a *gatehousev1.ModelAlias) bool { return unusable[a.Model] })
	}
	for _, m := range snap.Models {
		m.Fallbacks = slices.DeleteFunc(m.Fallbacks, func(f string) bool { return unusable[f] })
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
		BuiltAtUnixMs: builtAt.UnixMilli(), MinGatewayCapability: capability,
	}
	return Compiled{Meta: meta, Snapshot: snap, Body: body}, nil
}

func limits(l store.Limits) *gatehousev1.Limits {
	if l == (store.Limits{}) {
		return nil
	}
	return &gatehousev1.Limits{Rpm: l.RPM, Tpm: l.TPM, MaxConcurrent: l.MaxConcurrent}
}

// routing returns nil for the defaults, so plain models stay capability 1.
func routing(r store.Routing) *gatehousev1.Routing {
	out := &gatehousev1.Routing{MaxRetries: uint32(r.MaxRetries), RetryBackoffMs: r.RetryBackoffMs, TimeoutMs: r.TimeoutMs,
		TtftTimeoutMs: r.TTFTTimeoutMs, StreamIdleTimeoutMs: r.StreamIdleTimeoutMs, BreakerFailures: uint32(r.BreakerFailures),
		BreakerCooldownMs: r.BreakerCooldownMs}
	switch r.Strategy {
	case "least-busy":
		out.Strategy = gatehousev1.RoutingStrategy_ROUTING_STRATEGY_LEAST_BUSY
	case "latency":
		out.Strategy = gatehousev1.RoutingStrategy_ROUTING_STRATEGY_LATENCY
	}
	if proto.Equal(out, &gatehousev1.Routing{}) {
		return nil
	}
	if out.Strategy == gatehousev1.RoutingStrategy_ROUTING_STRATEGY_UNSPECIFIED {
		out.Strategy = gatehousev1.RoutingStrategy_ROUTING_STRATEGY_WEIGHTED
	}
	return out
}

func detector(d string) gatehousev1.GuardrailDetector {
	return map[string]gatehousev1.GuardrailDetector{
		"email": gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_EMAIL, "phone": gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_PHONE,
		"card": gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_CARD, "iban": gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_IBAN,
		"api_key": gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_API_KEY, "private_key": gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_PRIVATE_KEY,
		"prompt_injection": gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_PROMPT_INJECTION, "custom_regex": gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_CUSTOM_REGEX,
	}[d]
}

func guardMode(m string) gatehousev1.GuardrailMode {
	return map[string]gatehousev1.GuardrailMode{"block": gatehousev1.GuardrailMode_GUARDRAIL_MODE_BLOCK,
		"redact": gatehousev1.GuardrailMode_GUARDRAIL_MODE_REDACT, "audit": gatehousev1.GuardrailMode_GUARDRAIL_MODE_AUDIT}[m]
}

func direction(d string) gatehousev1.GuardrailDirection {
	return map[string]gatehousev1.GuardrailDirection{"request": gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_REQUEST,
		"response": gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_RESPONSE, "both": gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_BOTH}[d]
}

// teamsFor intersects an entry's sharing with its parent's (a model's provider): the
// team ids that may use it (nil = every team), and false when no team may.
func teamsFor(own, parent store.Sharing) ([]string, bool) {
	switch {
	case own.All && parent.All:
		return nil, true
	case own.All:
		return sorted(parent.Teams), len(parent.Teams) > 0
	case parent.All:
		return sorted(own.Teams), len(own.Teams) > 0
	}
	var out []string
	for _, t := range own.Teams {
		if slices.Contains(parent.Teams, t) {
			out = append(out, t)
		}
	}
	return sorted(out), len(out) > 0
}

// covers reports whether a provider shared as sh may be used by every one of teamIDs
// (nil: every team of the org).
func covers(sh store.Sharing, teamIDs []string) bool {
	if sh.All {
		return true
	}
	if teamIDs == nil {
		return false
	}
	for _, t := range teamIDs {
		if !slices.Contains(sh.Teams, t) {
			return false
		}
	}
	return true
}

func sorted(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	return slices.Sorted(slices.Values(in))
}

func providerType(t string) gatehousev1.ProviderType {
	switch t {
	case "openai-compatible":
		return gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE
	case "anthropic":
		return gatehousev1.ProviderType_PROVIDER_TYPE_ANTHROPIC
	case "azure-openai":
		return gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI
	case "gemini":
		return gatehousev1.ProviderType_PROVIDER_TYPE_GEMINI
	}
	return gatehousev1.ProviderType_PROVIDER_TYPE_UNSPECIFIED
}

// sortSnapshot orders every list by id, so equal configurations encode to equal bytes.
func sortSnapshot(s *gatehousev1.Snapshot) {
	slices.SortFunc(s.Teams, func(a, b *gatehousev1.Team) int { return strings.Compare(a.Id, b.Id) })
	slices.SortFunc(s.Keys, func(a, b *gatehousev1.ApiKey) int { return strings.Compare(a.Id, b.Id) })
	slices.SortFunc(s.Providers, func(a, b *gatehousev1.Provider) int { return strings.Compare(a.Id, b.Id) })
	slices.SortFunc(s.Models, func(a, b *gatehousev1.Model) int { return strings.Compare(a.Id, b.Id) })
	slices.SortFunc(s.OtherRegionModels, func(a, b *gatehousev1.RegionalModel) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(s.McpServers, func(a, b *gatehousev1.McpServer) int { return strings.Compare(a.Id, b.Id) })
	slices.SortFunc(s.Agents, func(a, b *gatehousev1.A2AAgent) int { return strings.Compare(a.Id, b.Id) })
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
		if e := p.AzureEntra; e != nil {
			if p.Type != gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI || wire.ValidEntraTenant(e.TenantId) != nil ||
				wire.ValidEntraClient(e.ClientId) != nil || p.ApiKey == "" {
				return fmt.Errorf("validate: provider %s has an invalid azure_entra or no client secret", p.Id)
			}
		}
	}
	names := map[string]bool{}
	for _, m := range s.OtherRegionModels {
		names[m.Name] = true
	}
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
	for _, m := range s.Models {
		for _, d := range m.Deployments {
			if !providers[d.ProviderId] || d.Id == "" || d.UpstreamModel == "" {
				return fmt.Errorf("validate: model %s deployment %s is incomplete or references a missing provider", m.Id, d.Id)
			}
		}
		for _, f := range m.Fallbacks {
			if !names[f] || f == m.Name {
				return fmt.Errorf("validate: model %s falls back to missing model %q", m.Id, f)
			}
		}
	}
	for _, t := range s.Teams {
		seen := map[string]bool{}
		for _, a := range t.Aliases {
			if a.Alias == "" || seen[a.Alias] {
				return fmt.Errorf("validate: team %s has an empty or duplicate alias %q", t.Id, a.Alias)
			}
			seen[a.Alias] = true
			if !names[a.Model] {
				return fmt.Errorf("validate: team %s alias %q targets missing model %q", t.Id, a.Alias, a.Model)
			}
		}
	}
	upstreams := map[string]bool{}
	check := func(kind, id, name, raw string, teamIDs []string) error {
		if id == "" || name == "" || upstreams[kind+id] || upstreams[kind+"/"+name] {
			return fmt.Errorf("validate: %s %q has an empty or duplicate id or name", kind, name)
		}
		upstreams[kind+id], upstreams[kind+"/"+name] = true, true
		if u, err := url.Parse(raw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return fmt.Errorf("validate: %s %s has an invalid url", kind, id)
		}
		for _, t := range teamIDs {
			if !teams[t] {
				return fmt.Errorf("validate: %s %s references missing team %s", kind, id, t)
			}
		}
		return nil
	}
	for _, m := range s.McpServers {
		if m.Transport == gatehousev1.McpTransport_MCP_TRANSPORT_UNSPECIFIED {
			return fmt.Errorf("validate: mcp server %s has no transport", m.Id)
		}
		if err := check("mcp server", m.Id, m.Name, m.Url, m.TeamIds); err != nil {
			return err
		}
	}
	for _, a := range s.Agents {
		if err := check("agent", a.Id, a.Name, a.CardUrl, a.TeamIds); err != nil {
			return err
		}
	}
	return nil
}
