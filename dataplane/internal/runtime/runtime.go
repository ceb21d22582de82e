// Package runtime holds the gateway's compiled, immutable view of configuration: every
// org's snapshot validated and indexed for the request path (key id → key, model name or
// team alias → model with its provider, MCP servers and A2A agents by name), and the
// single atomic pointer through which the whole fleet's config is swapped. It
// authenticates keys and authorizes models, regions, tools and agents; it does no I/O and
// holds no mutable state (counters, leases, pools live elsewhere, keyed by stable ids).
package runtime

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/bits"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

// ErrInvalidKey means the presented key is malformed, unknown or does not match.
var ErrInvalidKey = errors.New("invalid api key")

// ErrKeyExpired means the key was valid but its expiry has passed.
var ErrKeyExpired = errors.New("api key expired")

// ErrTeamSuspended means the key's team is suspended.
var ErrTeamSuspended = errors.New("team suspended")

// ErrOrgSuspended means the key's organization is suspended.
var ErrOrgSuspended = errors.New("organization suspended")

// ErrModelNotFound means the org has no model of that name.
var ErrModelNotFound = errors.New("model not found")

// ErrModelNotAllowed means the model exists but this key or its team may not use it.
var ErrModelNotAllowed = errors.New("model not allowed")

// ErrRegionNotAllowed means the key's team, or the key itself, may not be used in the
// region the snapshot was compiled for. Authenticate returns it inside a *RegionError.
var ErrRegionNotAllowed = errors.New("region not allowed")

// ErrModelNotInRegion means the org offers the model, but only in other regions. Key.Model
// returns it inside a *ModelNotInRegionError.
var ErrModelNotInRegion = errors.New("model not offered in this region")

// RegionError refuses a key in a region; it matches ErrRegionNotAllowed.
type RegionError struct {
	Region string
}

func (e *RegionError) Error() string {
	return fmt.Sprintf("key may not be used in region %q", e.Region)
}

func (e *RegionError) Unwrap() error { return ErrRegionNotAllowed }

// ModelNotInRegionError says where a model is offered instead; it matches
// ErrModelNotInRegion.
type ModelNotInRegionError struct {
	// Model is the name asked for, Target the org model it names (they differ for a
	// team alias).
	Model, Target string
	Region        string
	OfferedIn     []string
}

func (e *ModelNotInRegionError) Error() string {
	return fmt.Sprintf("model %q is not offered in region %q (offered in: %s)", e.Target, e.Region, strings.Join(e.OfferedIn, ", "))
}

func (e *ModelNotInRegionError) Unwrap() error { return ErrModelNotInRegion }

// Runtime is the compiled configuration of every org a gateway serves. It is never
// modified after it is published; changes build a new Runtime (copy on write).
type Runtime struct {
	orgs map[string]*Org
	keys map[string]*Key
}

// Empty returns a runtime serving no org.
func Empty() *Runtime {
	return &Runtime{orgs: map[string]*Org{}, keys: map[string]*Key{}}
}

// Org returns the compiled org with that id.
func (rt *Runtime) Org(id string) (*Org, bool) {
	o, ok := rt.orgs[id]
	return o, ok
}

// OrgIDs returns the ids of every org, sorted.
func (rt *Runtime) OrgIDs() []string {
	return slices.Sorted(maps.Keys(rt.orgs))
}

// WithOrg returns a new runtime in which org replaces any previous version of itself.
// It fails when one of the org's key ids already belongs to another org.
func (rt *Runtime) WithOrg(org *Org) (*Runtime, error) {
	for id := range org.keys {
		if k, ok := rt.keys[id]; ok && k.Org.ID != org.ID {
			return nil, fmt.Errorf("key %q already belongs to org %q", id, k.Org.ID)
		}
	}
	next := rt.without(org.ID)
	next.orgs[org.ID] = org
	for id, k := range org.keys {
		next.keys[id] = k
	}
	return next, nil
}

// WithoutOrg returns a new runtime that no longer serves the org.
func (rt *Runtime) WithoutOrg(id string) *Runtime {
	if _, ok := rt.orgs[id]; !ok {
		return rt
	}
	return rt.without(id)
}

func (rt *Runtime) without(id string) *Runtime {
	next := &Runtime{
		orgs: make(map[string]*Org, len(rt.orgs)+1),
		keys: make(map[string]*Key, len(rt.keys)),
	}
	for oid, o := range rt.orgs {
		if oid != id {
			next.orgs[oid] = o
		}
	}
	for kid, k := range rt.keys {
		if k.Org.ID != id {
			next.keys[kid] = k
		}
	}
	return next
}

// Authenticate resolves a presented key string. Unknown, malformed and mismatching keys
// all return ErrInvalidKey so callers cannot tell them apart; expired keys return
// ErrKeyExpired. A suspended team or org, or a key its team or itself keeps out of the
// snapshot's region (*RegionError), returns the key together with the error, so the
// caller can still attribute the refused request.
func (rt *Runtime) Authenticate(token string, now time.Time) (*Key, error) {
	id, ok := KeyID(token)
	if !ok {
		return nil, ErrInvalidKey
	}
	k, ok := rt.keys[id]
	if !ok {
		return nil, ErrInvalidKey
	}
	sum := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(sum[:], k.secretSHA256[:]) != 1 {
		return nil, ErrInvalidKey
	}
	if !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt) {
		return nil, ErrKeyExpired
	}
	if k.Org.Suspended {
		return k, ErrOrgSuspended
	}
	if k.Team.Suspended {
		return k, ErrTeamSuspended
	}
	if !k.Team.inRegion || !k.inRegion {
		return k, &RegionError{Region: k.Org.Region}
	}
	return k, nil
}

const (
	keyPrefix = "gate_"
	keyIDLen  = 12
)

// KeyID extracts the public id from a key string `gate_<12 [a-z0-9]>_<secret>`.
func KeyID(token string) (string, bool) {
	rest, ok := strings.CutPrefix(token, keyPrefix)
	if !ok || len(rest) < keyIDLen+2 || rest[keyIDLen] != '_' {
		return "", false
	}
	id := rest[:keyIDLen]
	if !validKeyID(id) {
		return "", false
	}
	return id, true
}

func validKeyID(id string) bool {
	if len(id) != keyIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Org is one compiled organization snapshot, for the region it was compiled for.
type Org struct {
	ID        string
	Slug      string
	Suspended bool
	// Region is the region (gateway group) the snapshot describes: the gateway's own.
	Region  string
	Epoch   uint64
	Version uint64
	SHA256  string
	BuiltAt time.Time

	teams  map[string]*Team
	keys   map[string]*Key
	models map[string]*Model
	// sorted by name, for listing.
	modelList []*Model
	// otherRegions maps the name of a model offered only elsewhere to those regions.
	otherRegions map[string][]string

	mcpServers map[string]*MCPServer // by name
	mcpList    []*MCPServer          // sorted by name
	agents     map[string]*Agent     // by name
	agentList  []*Agent              // sorted by name
}

// Models returns the org's models (of this region), sorted by name.
func (o *Org) Models() []*Model { return o.modelList }

// Model returns the org's model of that name.
func (o *Org) Model(name string) (*Model, bool) {
	m, ok := o.models[name]
	return m, ok
}

// Team is a compiled team.
type Team struct {
	ID        string
	Slug      string
	Suspended bool

	// Limits cap the whole team (all its keys together); Guardrails apply to its
	// requests and responses; LogContents lets the gateway log prompts and completions.
	// Capability 3.
	Limits      Limits
	Guardrails  []*GuardrailRule
	LogContents bool

	// inRegion is false when the team's regions exclude the org's region.
	inRegion bool
	// aliases maps a team-local model name to the org model name it stands for; an
	// alias shadows an org model of the same name for this team.
	aliases   map[string]string
	aliasList []string // sorted
}

// Key is a compiled API key.
type Key struct {
	ID        string
	Org       *Org
	Team      *Team
	ExpiresAt time.Time
	// AgentIdentity is the agent inside the team the key acts as; empty = the team.
	AgentIdentity string
	// Limits cap this key alone. Capability 3.
	Limits Limits

	secretSHA256 [sha256.Size]byte
	// nil means every model the team may use; entries name models or team aliases.
	allowedModels map[string]struct{}
	// nil means every tool; entries are "<server>/<tool>" or "<server>/*".
	allowedTools map[string]struct{}
	// nil means every agent the team may use.
	allowedAgents map[string]struct{}
	// inRegion is false when the key's allowed regions exclude the org's region.
	inRegion bool
}

// Model resolves a model name for this key, following the team's aliases:
// *ModelNotInRegionError when the org offers the model only in other regions,
// ErrModelNotFound when it has no such model, ErrModelNotAllowed when the key or its
// team may not use it. A key's allowed models may name the alias or its target.
func (k *Key) Model(name string) (*Model, error) {
	target, ok := k.Team.aliases[name]
	if !ok {
		target = name
	}
	m, ok := k.Org.models[target]
	if !ok {
		if regions, ok := k.Org.otherRegions[target]; ok {
			return nil, &ModelNotInRegionError{Model: name, Target: target, Region: k.Org.Region, OfferedIn: regions}
		}
		return nil, ErrModelNotFound
	}
	if !k.allows(name, m) {
		return nil, ErrModelNotAllowed
	}
	return m, nil
}

// Models returns the org models this key may call by their own name, sorted by name.
// Models whose name a team alias shadows are left out: for this team the name means
// the alias.
func (k *Key) Models() []*Model {
	out := make([]*Model, 0, len(k.Org.modelList))
	for _, m := range k.Org.modelList {
		if _, shadowed := k.Team.aliases[m.Name]; !shadowed && k.allows(m.Name, m) {
			out = append(out, m)
		}
	}
	return out
}

// Alias is a team-local model name and the model it resolves to.
type Alias struct {
	Name  string
	Model *Model
}

// Aliases returns the team aliases this key may call in this region, sorted by name:
// aliases of models offered elsewhere, or that the key may not use, are left out.
func (k *Key) Aliases() []Alias {
	var out []Alias
	for _, name := range k.Team.aliasList {
		if m, err := k.Model(name); err == nil {
			out = append(out, Alias{Name: name, Model: m})
		}
	}
	return out
}

// allows reports whether the key may call m under the name it was asked for (an alias
// or m's own name). An allow-list entry naming the target grants its aliases too, unless
// the target's name is itself one of the team's aliases: then the entry means that alias.
func (k *Key) allows(name string, m *Model) bool {
	if k.allowedModels != nil {
		_, ok := k.allowedModels[name]
		if !ok && name != m.Name {
			if _, shadowed := k.Team.aliases[m.Name]; !shadowed {
				_, ok = k.allowedModels[m.Name]
			}
		}
		if !ok {
			return false
		}
	}
	if m.teams != nil {
		if _, ok := m.teams[k.Team.ID]; !ok {
			return false
		}
	}
	return true
}

// ToolAllowed reports whether the key's narrowing lets it call tool of the MCP server
// named server, listed as "<server>/<tool>" or "<server>/*". Whether the team may use
// the server at all is Org.MCPServerForTeam's question.
func (k *Key) ToolAllowed(server, tool string) bool {
	if k.allowedTools == nil {
		return true
	}
	if _, ok := k.allowedTools[server+"/"+tool]; ok {
		return true
	}
	_, ok := k.allowedTools[server+"/*"]
	return ok
}

// AgentAllowed reports whether the key's narrowing lets it call the A2A agent of that
// name. Whether the team may use the agent is Org.AgentForTeam's question.
func (k *Key) AgentAllowed(name string) bool {
	if k.allowedAgents == nil {
		return true
	}
	_, ok := k.allowedAgents[name]
	return ok
}

// Provider is a compiled upstream endpoint. Every provider type of the contract
// compiles; whether the gateway can call it is the llm package's question.
type Provider struct {
	ID   string
	Name string
	Type gatehousev1.ProviderType
	// BaseURL is the parsed base URL and Base its string form without a trailing
	// slash. ChatCompletionsURL is derived from it for OpenAI-compatible providers and
	// empty for the others.
	BaseURL            *url.URL
	Base               string
	ChatCompletionsURL string
	// ChatCompletions is ChatCompletionsURL parsed (nil when that is empty), so that
	// requests need not parse it again; read only.
	ChatCompletions *url.URL
	// ResponsesURL is the provider's own Responses API (OpenAI-compatible providers and
	// Azure OpenAI's v1 surface), where requests the chat form cannot carry go; empty
	// for providers without one.
	ResponsesURL string
	// APIVersion is the api-version query parameter (Azure OpenAI); Azure providers
	// without one get DefaultAzureAPIVersion.
	APIVersion string
	// APIKey is the provider credential, for adapters that do not send it as a bearer
	// token; Authorization is the ready-made bearer header (OpenAI-compatible only).
	APIKey        string
	Authorization string
	// NativeResponses: every Responses request to this (OpenAI-compatible) provider
	// goes to its own /responses, not only those the chat form cannot carry.
	NativeResponses bool
	// AuthorizationValues is Authorization as a header's values, shared by every
	// request (read only).
	AuthorizationValues []string
	// Entra, when set, is the Microsoft Entra ID app registration whose tokens
	// authenticate requests to this Azure OpenAI provider; APIKey is then empty.
	Entra *EntraApp
}

// EntraApp is an Azure OpenAI provider's Microsoft Entra ID app registration (a
// service principal authenticated by client credentials).
type EntraApp struct {
	TenantID, ClientID string
	// Secret is the client secret: it goes to the token endpoint, nowhere else.
	Secret string
	// Key identifies the registration and its secret (a hash), so that tokens
	// outlive the config snapshots that name the same one, and a rotated secret gets
	// tokens of its own.
	Key string
}

// DefaultAzureAPIVersion is the api-version sent to Azure OpenAI providers that name
// none.
const DefaultAzureAPIVersion = "2024-10-21"

// Model is a compiled model.
type Model struct {
	ID            string
	Name          string
	UpstreamModel string
	Provider      *Provider
	// Prices in micro-USD per million tokens.
	InputPrice       int64
	OutputPrice      int64
	CachedInputPrice int64
	// ContextWindow in tokens; 0 = unknown.
	ContextWindow int64
	// Deployments are where the model is served, never empty: Provider and
	// UpstreamModel (under the model's id) first, then the snapshot's extra ones.
	// Capability 3, as are the fields below.
	Deployments []*Deployment
	Routing     Routing
	// Fallbacks are the models tried, in order, when every deployment failed: the
	// configured fallbacks, each followed by its own, flattened without repeats. Only
	// models offered in this region appear.
	Fallbacks []*Model
	Limits    Limits

	// nil means every team of the org.
	teams map[string]struct{}
	// alone is []*Model{m}, the candidates of a model without fallbacks.
	alone []*Model
}

// Candidates returns the models to try for a request the key made for m: m, then the
// fallbacks of m the key may use as well (its team's visibility and its own
// allow-list both apply to fallbacks).
func (k *Key) Candidates(m *Model) []*Model {
	if len(m.Fallbacks) == 0 {
		if m.alone != nil {
			return m.alone
		}
		return []*Model{m}
	}
	out := make([]*Model, 0, len(m.Fallbacks)+1)
	out = append(out, m)
	for _, fb := range m.Fallbacks {
		if k.allowsFallback(fb) {
			out = append(out, fb)
		}
	}
	return out
}

// allowsFallback reports whether the key may be served by fb as a fallback: as if it
// had asked for fb by its own name — except that when a team alias has that name, an
// allow-list entry of it means the alias, not fb.
func (k *Key) allowsFallback(fb *Model) bool {
	if k.allowedModels != nil {
		if _, shadowed := k.Team.aliases[fb.Name]; shadowed {
			return false
		}
	}
	return k.allows(fb.Name, fb)
}

// Tokens are the counts a request is priced by. Prompt includes the cached tokens and
// the cache writes; CacheWrites includes CacheWrites1h.
type Tokens struct {
	Prompt, Completion, Cached int64
	// CacheWrites are prompt tokens written to a provider's prompt cache (Anthropic's
	// cache_creation_input_tokens), CacheWrites1h those of them kept for an hour.
	CacheWrites, CacheWrites1h int64
}

// Cost returns the price of a request in micro-USD, rounded to the nearest micro-USD.
// Cached prompt tokens are billed at the cached price instead of the input price;
// prompt-cache writes at the input price times Anthropic's published multipliers, 1.25
// (kept 5 minutes) and 2 (kept an hour). The arithmetic saturates: counts or prices
// large enough to overflow give the largest cost, never a wrapped-around (negative) one.
func (m *Model) Cost(t Tokens) int64 {
	prompt := max(t.Prompt, 0)
	cached := min(max(t.Cached, 0), prompt)
	writes := min(max(t.CacheWrites, 0), prompt-cached)
	long := min(max(t.CacheWrites1h, 0), writes)
	short := satMul(writes-long, m.InputPrice)
	total := satAdd(satMul(prompt-cached-writes, m.InputPrice), satMul(cached, m.CachedInputPrice))
	total = satAdd(total, satAdd(short, short/4))
	total = satAdd(total, satMul(long, satMul(m.InputPrice, 2)))
	total = satAdd(total, satMul(max(t.Completion, 0), m.OutputPrice))
	return satAdd(total, 500_000) / 1_000_000
}

// satMul is a·b for a, b ≥ 0 (negative ones count as 0), at most math.MaxInt64.
func satMul(a, b int64) int64 {
	hi, lo := bits.Mul64(uint64(max(a, 0)), uint64(max(b, 0)))
	if hi != 0 || lo > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(lo)
}

// satAdd is a+b for a, b ≥ 0, at most math.MaxInt64.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Store holds the current runtime. It is the one atomic pointer through which config is
// published; a nil runtime means the gateway has not received its initial config yet.
type Store struct {
	p atomic.Pointer[Runtime]
}

// Load returns the current runtime, or nil before the initial config arrived.
func (s *Store) Load() *Runtime { return s.p.Load() }

// Store publishes rt.
func (s *Store) Store(rt *Runtime) { s.p.Store(rt) }
