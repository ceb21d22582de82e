// Package runtime holds the gateway's compiled, immutable view of configuration: every
// org's snapshot validated and indexed for the request path (key id → key, model name →
// model with its provider), and the single atomic pointer through which the whole fleet's
// config is swapped. It authenticates keys and authorizes models; it does no I/O and holds
// no mutable state (counters, leases, pools live elsewhere, keyed by stable ids).
package runtime

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
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
// ErrKeyExpired. A suspended team or org returns the key together with the error, so the
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

// Org is one compiled organization snapshot.
type Org struct {
	ID        string
	Slug      string
	Suspended bool
	Epoch     uint64
	Version   uint64
	SHA256    string
	BuiltAt   time.Time

	teams  map[string]*Team
	keys   map[string]*Key
	models map[string]*Model
	// sorted by name, for listing.
	modelList []*Model
}

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
}

// Key is a compiled API key.
type Key struct {
	ID        string
	Org       *Org
	Team      *Team
	ExpiresAt time.Time

	secretSHA256 [sha256.Size]byte
	// nil means every model the team may use.
	allowedModels map[string]struct{}
}

// Model resolves a model name for this key: ErrModelNotFound when the org has no such
// model, ErrModelNotAllowed when the key or its team may not use it.
func (k *Key) Model(name string) (*Model, error) {
	m, ok := k.Org.models[name]
	if !ok {
		return nil, ErrModelNotFound
	}
	if !k.allows(m) {
		return nil, ErrModelNotAllowed
	}
	return m, nil
}

// Models returns the models this key may use, sorted by name.
func (k *Key) Models() []*Model {
	out := make([]*Model, 0, len(k.Org.modelList))
	for _, m := range k.Org.modelList {
		if k.allows(m) {
			out = append(out, m)
		}
	}
	return out
}

func (k *Key) allows(m *Model) bool {
	if k.allowedModels != nil {
		if _, ok := k.allowedModels[m.Name]; !ok {
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

// Provider is a compiled upstream endpoint.
type Provider struct {
	ID   string
	Name string
	Type gatehousev1.ProviderType
	// BaseURL is the parsed base URL; ChatCompletionsURL is derived from it.
	BaseURL            *url.URL
	ChatCompletionsURL string
	// Authorization is the ready-made header value carrying the provider credential.
	Authorization string
}

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

	// nil means every team of the org.
	teams map[string]struct{}
}

// Cost returns the price of a request in micro-USD, rounded to the nearest micro-USD.
// Cached prompt tokens are billed at the cached price instead of the input price.
func (m *Model) Cost(promptTokens, completionTokens, cachedTokens int64) int64 {
	promptTokens = max(promptTokens, 0)
	completionTokens = max(completionTokens, 0)
	cachedTokens = min(max(cachedTokens, 0), promptTokens)
	total := (promptTokens-cachedTokens)*m.InputPrice +
		cachedTokens*m.CachedInputPrice +
		completionTokens*m.OutputPrice
	return (total + 500_000) / 1_000_000
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
