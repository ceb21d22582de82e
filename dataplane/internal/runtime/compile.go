package runtime

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
)

// Compile validates one org snapshot and compiles it for the region named in meta. Any
// inconsistency (dangling references, duplicate ids or names, unusable URLs, unknown
// enum values) rejects the whole snapshot.
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
	if err := wire.ValidRegion(meta.GetRegion()); err != nil {
		return nil, fmt.Errorf("meta: %w", err)
	}
	org := &Org{
		ID:           snap.Org.Id,
		Slug:         snap.Org.Slug,
		Suspended:    snap.Org.Suspended,
		Region:       meta.GetRegion(),
		Epoch:        meta.GetEpoch(),
		Version:      meta.GetVersion(),
		SHA256:       meta.GetSha256(),
		BuiltAt:      time.UnixMilli(meta.GetBuiltAtUnixMs()),
		teams:        make(map[string]*Team, len(snap.Teams)),
		keys:         make(map[string]*Key, len(snap.Keys)),
		models:       make(map[string]*Model, len(snap.Models)),
		otherRegions: make(map[string][]string, len(snap.OtherRegionModels)),
		mcpServers:   make(map[string]*MCPServer, len(snap.McpServers)),
		agents:       make(map[string]*Agent, len(snap.Agents)),
	}
	for _, t := range snap.Teams {
		if t.Id == "" {
			return nil, errors.New("team with empty id")
		}
		if _, dup := org.teams[t.Id]; dup {
			return nil, fmt.Errorf("duplicate team %q", t.Id)
		}
		inRegion, err := regionAllowed(org.Region, t.Regions)
		if err != nil {
			return nil, fmt.Errorf("team %q: %w", t.Id, err)
		}
		limits, err := compileLimits(t.Limits)
		if err != nil {
			return nil, fmt.Errorf("team %q: %w", t.Id, err)
		}
		guardrails, err := compileGuardrails(t.Guardrails)
		if err != nil {
			return nil, fmt.Errorf("team %q: %w", t.Id, err)
		}
		org.teams[t.Id] = &Team{ID: t.Id, Slug: t.Slug, Suspended: t.Suspended, inRegion: inRegion,
			Limits: limits, Guardrails: guardrails, LogContents: t.LogContents}
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
	deployments := make(map[string]string, len(snap.Models))
	for _, m := range org.modelList {
		for _, d := range m.Deployments {
			if other, dup := deployments[d.ID]; dup {
				return nil, fmt.Errorf("model %q: deployment id %q is also used by model %q", m.ID, d.ID, other)
			}
			deployments[d.ID] = m.ID
		}
	}
	for _, m := range snap.OtherRegionModels {
		if err := compileOtherRegionModel(org, m); err != nil {
			return nil, err
		}
	}
	if err := compileFallbacks(org, snap.Models); err != nil {
		return nil, err
	}
	for _, t := range snap.Teams {
		if err := compileAliases(org, org.teams[t.Id], t.Aliases); err != nil {
			return nil, err
		}
	}
	for _, s := range snap.McpServers {
		srv, err := compileMCPServer(org, s)
		if err != nil {
			return nil, err
		}
		org.mcpServers[srv.Name] = srv
		org.mcpList = append(org.mcpList, srv)
	}
	if err := uniqueIDs("mcp server", org.mcpList, func(s *MCPServer) string { return s.ID }); err != nil {
		return nil, err
	}
	slices.SortFunc(org.mcpList, func(a, b *MCPServer) int { return strings.Compare(a.Name, b.Name) })
	for _, a := range snap.Agents {
		agent, err := compileAgent(org, a)
		if err != nil {
			return nil, err
		}
		org.agents[agent.Name] = agent
		org.agentList = append(org.agentList, agent)
	}
	if err := uniqueIDs("agent", org.agentList, func(a *Agent) string { return a.ID }); err != nil {
		return nil, err
	}
	slices.SortFunc(org.agentList, func(a, b *Agent) int { return strings.Compare(a.Name, b.Name) })
	return org, nil
}

// regionAllowed validates a region allow-list and reports whether it admits region; an
// empty list admits every region.
func regionAllowed(region string, regions []string) (bool, error) {
	for _, r := range regions {
		if err := wire.ValidRegion(r); err != nil {
			return false, err
		}
	}
	return len(regions) == 0 || slices.Contains(regions, region), nil
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
	inRegion, err := regionAllowed(org.Region, k.AllowedRegions)
	if err != nil {
		return nil, fmt.Errorf("key %q: allowed regions: %w", k.Id, err)
	}
	limits, err := compileLimits(k.Limits)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", k.Id, err)
	}
	key := &Key{ID: k.Id, Org: org, Team: team, AgentIdentity: k.AgentIdentity, Limits: limits, inRegion: inRegion}
	copy(key.secretSHA256[:], k.SecretSha256)
	if k.ExpiresAtUnixMs != 0 {
		key.ExpiresAt = time.UnixMilli(k.ExpiresAtUnixMs)
	}
	key.allowedModels = set(k.AllowedModels)
	for _, t := range k.AllowedTools {
		server, tool, ok := strings.Cut(t, "/")
		if !ok || server == "" || tool == "" {
			return nil, fmt.Errorf("key %q: allowed tool %q must be <server>/<tool> or <server>/*", k.Id, t)
		}
	}
	key.allowedTools = set(k.AllowedTools)
	for _, a := range k.AllowedAgents {
		if a == "" {
			return nil, fmt.Errorf("key %q: empty allowed agent", k.Id)
		}
	}
	key.allowedAgents = set(k.AllowedAgents)
	return key, nil
}

// set returns the members of list as a set, or nil for an empty list (no narrowing).
func set(list []string) map[string]struct{} {
	if len(list) == 0 {
		return nil
	}
	out := make(map[string]struct{}, len(list))
	for _, s := range list {
		out[s] = struct{}{}
	}
	return out
}

func compileProvider(p *gatehousev1.Provider) (*Provider, error) {
	if p.Id == "" {
		return nil, errors.New("provider with empty id")
	}
	switch p.Type {
	case gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE,
		gatehousev1.ProviderType_PROVIDER_TYPE_ANTHROPIC,
		gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI,
		gatehousev1.ProviderType_PROVIDER_TYPE_GEMINI:
	default:
		return nil, fmt.Errorf("provider %q: unsupported type %s", p.Id, p.Type)
	}
	u, err := parseUpstreamURL(p.BaseUrl)
	if err != nil {
		return nil, fmt.Errorf("provider %q: base_url %w", p.Id, err)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("provider %q: base_url must not have a query or fragment", p.Id)
	}
	prov := &Provider{
		ID:         p.Id,
		Name:       p.Name,
		Type:       p.Type,
		BaseURL:    u,
		Base:       strings.TrimSuffix(u.String(), "/"),
		APIVersion: p.ApiVersion,
		APIKey:     p.ApiKey,
		// The flag (every Responses request native) is for OpenAI-compatible providers;
		// Azure's Responses API serves only the requests the chat form cannot carry.
		NativeResponses: p.NativeResponses && p.Type == gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE,
	}
	switch p.Type {
	case gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE:
		prov.ChatCompletionsURL = prov.Base + "/chat/completions"
		prov.ResponsesURL = prov.Base + "/responses"
		if prov.ChatCompletions, err = ParseRequestURL(prov.ChatCompletionsURL); err != nil {
			return nil, fmt.Errorf("provider %q: base_url %w", p.Id, err)
		}
		if p.ApiKey != "" {
			prov.Authorization = "Bearer " + p.ApiKey
			prov.AuthorizationValues = []string{prov.Authorization}
		}
	case gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI:
		if prov.APIVersion == "" {
			prov.APIVersion = DefaultAzureAPIVersion
		}
		if strings.ContainsAny(prov.APIVersion, "&#?/ ") {
			return nil, fmt.Errorf("provider %q: api_version %q is not a version", p.Id, prov.APIVersion)
		}
		// Azure serves the Responses API on its v1 surface only: no deployment in the
		// path (the deployment is the body's model) and no api-version.
		prov.ResponsesURL = AzureRoot(prov.Base) + "/openai/v1/responses"
	}
	if e := p.AzureEntra; e != nil {
		if prov.Entra, err = compileEntra(p.Id, p.Type, e, p.ApiKey); err != nil {
			return nil, err
		}
		// The client secret goes to the token endpoint only: no request to the
		// resource can carry it.
		prov.APIKey = ""
	}
	return prov, nil
}

// compileEntra checks a provider's Microsoft Entra ID app registration; secret is its
// client secret (the provider's api_key).
func compileEntra(id string, typ gatehousev1.ProviderType, e *gatehousev1.AzureEntra, secret string) (*EntraApp, error) {
	if typ != gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI {
		return nil, fmt.Errorf("provider %q: azure_entra is for azure-openai providers only", id)
	}
	if err := wire.ValidEntraTenant(e.TenantId); err != nil {
		return nil, fmt.Errorf("provider %q: azure_entra tenant_id %w", id, err)
	}
	if err := wire.ValidEntraClient(e.ClientId); err != nil {
		return nil, fmt.Errorf("provider %q: azure_entra client_id %w", id, err)
	}
	if secret == "" {
		return nil, fmt.Errorf("provider %q: azure_entra needs the client secret (api_key)", id)
	}
	sum := sha256.Sum256([]byte(e.TenantId + "\x00" + e.ClientId + "\x00" + secret))
	return &EntraApp{TenantID: e.TenantId, ClientID: e.ClientId, Secret: secret, Key: fmt.Sprintf("%x", sum)}, nil
}

// ParseRequestURL parses a request URL as http.NewRequestWithContext does: an empty
// port (a host ending in ":") is dropped, so that requests built from it need not.
func ParseRequestURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if strings.LastIndex(u.Host, ":") > strings.LastIndex(u.Host, "]") {
		u.Host = strings.TrimSuffix(u.Host, ":")
	}
	return u, nil
}

// AzureRoot is the resource root of an Azure OpenAI base URL, which may be registered
// with or without the /openai of the classic API or the /openai/v1 of the v1 API
// (what Microsoft's SDK samples now give as the endpoint).
func AzureRoot(base string) string {
	base = strings.TrimSuffix(base, "/")
	if r, ok := strings.CutSuffix(base, "/openai/v1"); ok {
		return r
	}
	return strings.TrimSuffix(base, "/openai")
}

// parseUpstreamURL accepts an absolute http(s) URL with a host and no credentials
// (credentials travel in their own fields, never in URLs that end up in logs).
func parseUpstreamURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, errors.New("must be an absolute http(s) URL without credentials")
	}
	return u, nil
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
	if m.ContextWindow < 0 {
		return nil, fmt.Errorf("model %q: negative context window", m.Id)
	}
	teams, err := teamSet(org, m.TeamIds)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", m.Id, err)
	}
	own := &Deployment{ID: m.Id, Provider: prov, UpstreamModel: m.UpstreamModel, Weight: 1, StateKey: org.ID + "/" + m.Id}
	deployments, err := compileDeployments(org, providers, own, m.Deployments)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", m.Id, err)
	}
	routing, err := compileRouting(m.Routing)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", m.Id, err)
	}
	limits, err := compileLimits(m.Limits)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", m.Id, err)
	}
	return &Model{
		ID:               m.Id,
		Name:             m.Name,
		UpstreamModel:    m.UpstreamModel,
		Provider:         prov,
		InputPrice:       m.InputPricePerMtokMicros,
		OutputPrice:      m.OutputPricePerMtokMicros,
		CachedInputPrice: m.CachedInputPricePerMtokMicros,
		ContextWindow:    m.ContextWindow,
		Deployments:      deployments,
		Routing:          routing,
		Limits:           limits,
		teams:            teams,
	}, nil
}

// teamSet resolves a team visibility list: nil for an empty list (every team), and an
// error for a team the org does not have.
func teamSet(org *Org, ids []string) (map[string]struct{}, error) {
	for _, id := range ids {
		if _, ok := org.teams[id]; !ok {
			return nil, fmt.Errorf("unknown team %q", id)
		}
	}
	return set(ids), nil
}

func compileOtherRegionModel(org *Org, m *gatehousev1.RegionalModel) error {
	switch {
	case m.Name == "":
		return errors.New("other-region model with empty name")
	case org.models[m.Name] != nil:
		return fmt.Errorf("other-region model %q is also offered in region %q", m.Name, org.Region)
	case org.otherRegions[m.Name] != nil:
		return fmt.Errorf("duplicate other-region model %q", m.Name)
	case len(m.Regions) == 0:
		return fmt.Errorf("other-region model %q: no regions", m.Name)
	}
	for _, r := range m.Regions {
		if err := wire.ValidRegion(r); err != nil {
			return fmt.Errorf("other-region model %q: %w", m.Name, err)
		}
		if r == org.Region {
			return fmt.Errorf("other-region model %q: lists region %q, the snapshot's own", m.Name, r)
		}
	}
	regions := slices.Clone(m.Regions)
	slices.Sort(regions)
	org.otherRegions[m.Name] = slices.Compact(regions)
	return nil
}

// compileAliases checks a team's aliases: non-empty, unique within the team, each
// naming a model of the org (in this region or another). An alias may equal the name
// of another org model; for this team it then means the alias.
func compileAliases(org *Org, team *Team, aliases []*gatehousev1.ModelAlias) error {
	if len(aliases) == 0 {
		return nil
	}
	team.aliases = make(map[string]string, len(aliases))
	for _, a := range aliases {
		if a.Alias == "" {
			return fmt.Errorf("team %q: empty alias", team.ID)
		}
		if _, dup := team.aliases[a.Alias]; dup {
			return fmt.Errorf("team %q: duplicate alias %q", team.ID, a.Alias)
		}
		_, here := org.models[a.Model]
		_, elsewhere := org.otherRegions[a.Model]
		if !here && !elsewhere {
			return fmt.Errorf("team %q: alias %q names unknown model %q", team.ID, a.Alias, a.Model)
		}
		team.aliases[a.Alias] = a.Model
		team.aliasList = append(team.aliasList, a.Alias)
	}
	slices.Sort(team.aliasList)
	return nil
}

func compileMCPServer(org *Org, s *gatehousev1.McpServer) (*MCPServer, error) {
	if s.Id == "" {
		return nil, errors.New("mcp server with empty id")
	}
	if !validEntryName(s.Name) {
		return nil, fmt.Errorf("mcp server %q: name %q must be non-empty, without '/' or spaces", s.Id, s.Name)
	}
	if _, dup := org.mcpServers[s.Name]; dup {
		return nil, fmt.Errorf("duplicate mcp server name %q", s.Name)
	}
	u, err := parseUpstreamURL(s.Url)
	if err != nil {
		return nil, fmt.Errorf("mcp server %q: url %w", s.Id, err)
	}
	switch s.Transport {
	case gatehousev1.McpTransport_MCP_TRANSPORT_STREAMABLE_HTTP, gatehousev1.McpTransport_MCP_TRANSPORT_SSE:
	default:
		return nil, fmt.Errorf("mcp server %q: unsupported transport %s", s.Id, s.Transport)
	}
	if s.AuthHeader != "" && !validHeaderName(s.AuthHeader) {
		return nil, fmt.Errorf("mcp server %q: auth_header %q is not a header name", s.Id, s.AuthHeader)
	}
	teams, err := teamSet(org, s.TeamIds)
	if err != nil {
		return nil, fmt.Errorf("mcp server %q: %w", s.Id, err)
	}
	return &MCPServer{
		ID: s.Id, Name: s.Name, URL: u, Transport: s.Transport,
		AuthHeader: s.AuthHeader, Credential: s.Credential, teams: teams,
	}, nil
}

func compileAgent(org *Org, a *gatehousev1.A2AAgent) (*Agent, error) {
	if a.Id == "" {
		return nil, errors.New("agent with empty id")
	}
	if !validEntryName(a.Name) {
		return nil, fmt.Errorf("agent %q: name %q must be non-empty, without '/' or spaces", a.Id, a.Name)
	}
	if _, dup := org.agents[a.Name]; dup {
		return nil, fmt.Errorf("duplicate agent name %q", a.Name)
	}
	u, err := parseUpstreamURL(a.CardUrl)
	if err != nil {
		return nil, fmt.Errorf("agent %q: card_url %w", a.Id, err)
	}
	if a.AuthHeader != "" && !validHeaderName(a.AuthHeader) {
		return nil, fmt.Errorf("agent %q: auth_header %q is not a header name", a.Id, a.AuthHeader)
	}
	teams, err := teamSet(org, a.TeamIds)
	if err != nil {
		return nil, fmt.Errorf("agent %q: %w", a.Id, err)
	}
	return &Agent{
		ID: a.Id, Name: a.Name, CardURL: u,
		AuthHeader: a.AuthHeader, Credential: a.Credential, teams: teams,
	}, nil
}

func uniqueIDs[T any](kind string, list []T, id func(T) string) error {
	seen := make(map[string]struct{}, len(list))
	for _, v := range list {
		if _, dup := seen[id(v)]; dup {
			return fmt.Errorf("duplicate %s id %q", kind, id(v))
		}
		seen[id(v)] = struct{}{}
	}
	return nil
}

// validEntryName accepts the names MCP servers and agents are addressed by: they
// prefix tool names ("<server>/<tool>") and are path segments (/a2a/{agent}).
func validEntryName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if r == '/' || unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// validHeaderName reports whether s is an HTTP field name (an RFC 9110 token).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
