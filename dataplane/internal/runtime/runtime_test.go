package runtime

import (
	"crypto/sha256"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/google/go-cmp/cmp"
)

func keyFor(id string) (string, []byte) {
	token := "gate_" + id + "_s3cr3t-value"
	sum := sha256.Sum256([]byte(token))
	return token, sum[:]
}

func testSnapshot(orgID string) *gatehousev1.Snapshot {
	_, sumA := keyFor("aaaaaaaaaaaa")
	_, sumB := keyFor("bbbbbbbbbbbb")
	_, sumC := keyFor("cccccccccccc")
	_, sumD := keyFor("dddddddddddd")
	return &gatehousev1.Snapshot{
		Org: &gatehousev1.Organization{Id: orgID, Slug: "acme"},
		Teams: []*gatehousev1.Team{
			{Id: "t1", Slug: "one"},
			{Id: "t2", Slug: "two", Suspended: true},
		},
		Keys: []*gatehousev1.ApiKey{
			{Id: "aaaaaaaaaaaa", TeamId: "t1", SecretSha256: sumA},
			{Id: "bbbbbbbbbbbb", TeamId: "t2", SecretSha256: sumB},
			{Id: "cccccccccccc", TeamId: "t1", SecretSha256: sumC, ExpiresAtUnixMs: 1000},
			{Id: "dddddddddddd", TeamId: "t1", SecretSha256: sumD, AllowedModels: []string{"small"}},
		},
		Providers: []*gatehousev1.Provider{
			{Id: "p1", Type: gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE, BaseUrl: "https://api.example.com/v1/", ApiKey: "sk-up"},
		},
		Models: []*gatehousev1.Model{
			{Id: "m1", Name: "small", ProviderId: "p1", UpstreamModel: "gpt-small"},
			{Id: "m2", Name: "big", ProviderId: "p1", UpstreamModel: "gpt-big"},
			{Id: "m3", Name: "team2-only", ProviderId: "p1", UpstreamModel: "gpt-x", TeamIds: []string{"t2"}},
		},
	}
}

// testRegion is the region test snapshots are compiled for.
const testRegion = "eu"

func testMeta(orgID string) *gatehousev1.SnapshotMeta {
	return &gatehousev1.SnapshotMeta{OrgId: orgID, Region: testRegion, Version: 1}
}

func mustCompile(t *testing.T, snap *gatehousev1.Snapshot) *Org {
	t.Helper()
	org, err := Compile(testMeta(snap.Org.Id), snap)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return org
}

func mustRuntime(t *testing.T, snaps ...*gatehousev1.Snapshot) *Runtime {
	t.Helper()
	rt := Empty()
	for _, s := range snaps {
		var err error
		if rt, err = rt.WithOrg(mustCompile(t, s)); err != nil {
			t.Fatalf("with org: %v", err)
		}
	}
	return rt
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	rt := mustRuntime(t, testSnapshot("o1"))
	suspended := testSnapshot("o2")
	suspended.Org.Suspended = true
	suspended.Keys = suspended.Keys[:0]
	_, sumE := keyFor("eeeeeeeeeeee")
	suspended.Keys = append(suspended.Keys, &gatehousev1.ApiKey{Id: "eeeeeeeeeeee", TeamId: "t1", SecretSha256: sumE})
	rt, err := rt.WithOrg(mustCompile(t, suspended))
	if err != nil {
		t.Fatal(err)
	}
	good, _ := keyFor("aaaaaaaaaaaa")
	now := time.UnixMilli(5000)
	tests := []struct {
		name    string
		token   string
		wantErr error
		wantKey bool
	}{
		{"ok", good, nil, true},
		{"empty", "", ErrInvalidKey, false},
		{"no prefix", strings.TrimPrefix(good, "gate_"), ErrInvalidKey, false},
		{"short id", "gate_aaaa_secret", ErrInvalidKey, false},
		{"upper-case id", "gate_AAAAAAAAAAAA_s3cr3t-value", ErrInvalidKey, false},
		{"no secret", "gate_aaaaaaaaaaaa_", ErrInvalidKey, false},
		{"unknown id", "gate_zzzzzzzzzzzz_s3cr3t-value", ErrInvalidKey, false},
		{"wrong secret", good + "x", ErrInvalidKey, false},
		{"expired", func() string { k, _ := keyFor("cccccccccccc"); return k }(), ErrKeyExpired, false},
		{"team suspended", func() string { k, _ := keyFor("bbbbbbbbbbbb"); return k }(), ErrTeamSuspended, true},
		{"org suspended", func() string { k, _ := keyFor("eeeeeeeeeeee"); return k }(), ErrOrgSuspended, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := rt.Authenticate(tt.token, now)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if (k != nil) != tt.wantKey {
				t.Fatalf("key = %v, want key: %v", k, tt.wantKey)
			}
		})
	}
}

func TestKeyModel(t *testing.T) {
	t.Parallel()
	rt := mustRuntime(t, testSnapshot("o1"))
	get := func(id string) *Key {
		t.Helper()
		k, ok := rt.keys[id]
		if !ok {
			t.Fatalf("no key %s", id)
		}
		return k
	}
	tests := []struct {
		name    string
		key     string
		model   string
		want    string
		wantErr error
	}{
		{"allowed", "aaaaaaaaaaaa", "big", "gpt-big", nil},
		{"unknown", "aaaaaaaaaaaa", "nope", "", ErrModelNotFound},
		{"other team's model", "aaaaaaaaaaaa", "team2-only", "", ErrModelNotAllowed},
		{"key allow-list", "dddddddddddd", "big", "", ErrModelNotAllowed},
		{"key allow-list hit", "dddddddddddd", "small", "gpt-small", nil},
		{"team2 model for team2", "bbbbbbbbbbbb", "team2-only", "gpt-x", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := get(tt.key).Model(tt.model)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && m.UpstreamModel != tt.want {
				t.Fatalf("upstream model = %q, want %q", m.UpstreamModel, tt.want)
			}
		})
	}
	names := func(ms []*Model) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Name)
		}
		return out
	}
	if diff := cmp.Diff([]string{"big", "small"}, names(get("aaaaaaaaaaaa").Models())); diff != "" {
		t.Errorf("team1 models (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"small"}, names(get("dddddddddddd").Models())); diff != "" {
		t.Errorf("allow-listed key models (-want +got):\n%s", diff)
	}
	m, _ := get("aaaaaaaaaaaa").Model("big")
	if m.Provider.ChatCompletionsURL != "https://api.example.com/v1/chat/completions" {
		t.Errorf("chat url = %q", m.Provider.ChatCompletionsURL)
	}
	if m.Provider.Authorization != "Bearer sk-up" {
		t.Errorf("authorization = %q", m.Provider.Authorization)
	}
}

func TestCompileRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(s *gatehousev1.Snapshot)
		want   string
	}{
		{"no org", func(s *gatehousev1.Snapshot) { s.Org = nil }, "no organization"},
		{"org mismatch", func(s *gatehousev1.Snapshot) { s.Org.Id = "other" }, "does not match"},
		{"duplicate team", func(s *gatehousev1.Snapshot) { s.Teams = append(s.Teams, &gatehousev1.Team{Id: "t1"}) }, "duplicate team"},
		{"key without team", func(s *gatehousev1.Snapshot) { s.Keys[0].TeamId = "ghost" }, "unknown team"},
		{"bad key id", func(s *gatehousev1.Snapshot) { s.Keys[0].Id = "short" }, "id must be"},
		{"duplicate key", func(s *gatehousev1.Snapshot) { s.Keys[1].Id = s.Keys[0].Id }, "duplicate key"},
		{"short hash", func(s *gatehousev1.Snapshot) { s.Keys[0].SecretSha256 = []byte{1} }, "secret hash"},
		{"duplicate provider", func(s *gatehousev1.Snapshot) { s.Providers = append(s.Providers, s.Providers[0]) }, "duplicate provider"},
		{"provider type unspecified", func(s *gatehousev1.Snapshot) { s.Providers[0].Type = 0 }, "unsupported type"},
		{"provider type unknown", func(s *gatehousev1.Snapshot) { s.Providers[0].Type = 99 }, "unsupported type"},
		{"relative url", func(s *gatehousev1.Snapshot) { s.Providers[0].BaseUrl = "/v1" }, "base_url"},
		{"ftp url", func(s *gatehousev1.Snapshot) { s.Providers[0].BaseUrl = "ftp://x/v1" }, "base_url"},
		{"url with user", func(s *gatehousev1.Snapshot) { s.Providers[0].BaseUrl = "https://u:p@x/v1" }, "base_url"},
		{"unparsable url", func(s *gatehousev1.Snapshot) { s.Providers[0].BaseUrl = "http://[::1" }, "base_url"},
		{"model without provider", func(s *gatehousev1.Snapshot) { s.Models[0].ProviderId = "ghost" }, "unknown provider"},
		{"duplicate model name", func(s *gatehousev1.Snapshot) { s.Models[1].Name = "small" }, "duplicate model name"},
		{"duplicate model id", func(s *gatehousev1.Snapshot) { s.Models[1].Id = "m1" }, "duplicate model id"},
		{"model team missing", func(s *gatehousev1.Snapshot) { s.Models[0].TeamIds = []string{"ghost"} }, "unknown team"},
		{"no upstream model", func(s *gatehousev1.Snapshot) { s.Models[0].UpstreamModel = "" }, "upstream_model"},
		{"negative price", func(s *gatehousev1.Snapshot) { s.Models[0].InputPricePerMtokMicros = -1 }, "negative price"},
		{"negative context window", func(s *gatehousev1.Snapshot) { s.Models[0].ContextWindow = -1 }, "negative context window"},

		// Regions.
		{"team region invalid", func(s *gatehousev1.Snapshot) { s.Teams[0].Regions = []string{"EU"} }, `team "t1": region "EU"`},
		{"key region invalid", func(s *gatehousev1.Snapshot) { s.Keys[0].AllowedRegions = []string{""} }, "allowed regions"},
		{"other-region model without name", func(s *gatehousev1.Snapshot) {
			s.OtherRegionModels = []*gatehousev1.RegionalModel{{Regions: []string{"us"}}}
		}, "empty name"},
		{"other-region model also here", func(s *gatehousev1.Snapshot) {
			s.OtherRegionModels = []*gatehousev1.RegionalModel{{Name: "small", Regions: []string{"us"}}}
		}, "also offered"},
		{"duplicate other-region model", func(s *gatehousev1.Snapshot) {
			s.OtherRegionModels = []*gatehousev1.RegionalModel{{Name: "x", Regions: []string{"us"}}, {Name: "x", Regions: []string{"ap"}}}
		}, "duplicate other-region model"},
		{"other-region model without regions", func(s *gatehousev1.Snapshot) {
			s.OtherRegionModels = []*gatehousev1.RegionalModel{{Name: "x"}}
		}, "no regions"},
		{"other-region model bad region", func(s *gatehousev1.Snapshot) {
			s.OtherRegionModels = []*gatehousev1.RegionalModel{{Name: "x", Regions: []string{"u.s"}}}
		}, "only a-z"},
		{"other-region model in own region", func(s *gatehousev1.Snapshot) {
			s.OtherRegionModels = []*gatehousev1.RegionalModel{{Name: "x", Regions: []string{"us", testRegion}}}
		}, "the snapshot's own"},

		// Aliases.
		{"empty alias", func(s *gatehousev1.Snapshot) {
			s.Teams[0].Aliases = []*gatehousev1.ModelAlias{{Alias: "", Model: "small"}}
		}, "empty alias"},
		{"duplicate alias", func(s *gatehousev1.Snapshot) {
			s.Teams[0].Aliases = []*gatehousev1.ModelAlias{{Alias: "a", Model: "small"}, {Alias: "a", Model: "big"}}
		}, "duplicate alias"},
		{"alias to unknown model", func(s *gatehousev1.Snapshot) {
			s.Teams[0].Aliases = []*gatehousev1.ModelAlias{{Alias: "a", Model: "ghost"}}
		}, "unknown model"},
		{"alias to model id instead of name", func(s *gatehousev1.Snapshot) {
			s.Teams[0].Aliases = []*gatehousev1.ModelAlias{{Alias: "a", Model: "m1"}}
		}, "unknown model"},

		// Key narrowing.
		{"tool without server", func(s *gatehousev1.Snapshot) { s.Keys[0].AllowedTools = []string{"/search"} }, "allowed tool"},
		{"tool without tool", func(s *gatehousev1.Snapshot) { s.Keys[0].AllowedTools = []string{"github/"} }, "allowed tool"},
		{"tool without slash", func(s *gatehousev1.Snapshot) { s.Keys[0].AllowedTools = []string{"github"} }, "allowed tool"},
		{"empty agent", func(s *gatehousev1.Snapshot) { s.Keys[0].AllowedAgents = []string{""} }, "empty allowed agent"},

		// MCP servers.
		{"mcp empty id", func(s *gatehousev1.Snapshot) { s.McpServers[0].Id = "" }, "mcp server with empty id"},
		{"mcp duplicate id", func(s *gatehousev1.Snapshot) { s.McpServers[1].Id = s.McpServers[0].Id }, "duplicate mcp server id"},
		{"mcp empty name", func(s *gatehousev1.Snapshot) { s.McpServers[0].Name = "" }, "name"},
		{"mcp name with slash", func(s *gatehousev1.Snapshot) { s.McpServers[0].Name = "a/b" }, "without '/'"},
		{"mcp name with space", func(s *gatehousev1.Snapshot) { s.McpServers[0].Name = "a b" }, "without '/'"},
		{"mcp duplicate name", func(s *gatehousev1.Snapshot) { s.McpServers[1].Name = s.McpServers[0].Name }, "duplicate mcp server name"},
		{"mcp relative url", func(s *gatehousev1.Snapshot) { s.McpServers[0].Url = "/mcp" }, "url must be"},
		{"mcp ws url", func(s *gatehousev1.Snapshot) { s.McpServers[0].Url = "ws://mcp.example.com/" }, "url must be"},
		{"mcp url with user", func(s *gatehousev1.Snapshot) { s.McpServers[0].Url = "https://u:p@mcp.example.com/" }, "url must be"},
		{"mcp transport unspecified", func(s *gatehousev1.Snapshot) { s.McpServers[0].Transport = 0 }, "unsupported transport"},
		{"mcp transport unknown", func(s *gatehousev1.Snapshot) { s.McpServers[0].Transport = 9 }, "unsupported transport"},
		{"mcp unknown team", func(s *gatehousev1.Snapshot) { s.McpServers[0].TeamIds = []string{"ghost"} }, "unknown team"},
		{"mcp bad auth header", func(s *gatehousev1.Snapshot) { s.McpServers[0].AuthHeader = "X Token:" }, "auth_header"},

		// A2A agents.
		{"agent empty id", func(s *gatehousev1.Snapshot) { s.Agents[0].Id = "" }, "agent with empty id"},
		{"agent duplicate id", func(s *gatehousev1.Snapshot) { s.Agents[1].Id = s.Agents[0].Id }, "duplicate agent id"},
		{"agent empty name", func(s *gatehousev1.Snapshot) { s.Agents[0].Name = "" }, "name"},
		{"agent name with slash", func(s *gatehousev1.Snapshot) { s.Agents[0].Name = "../x" }, "without '/'"},
		{"agent duplicate name", func(s *gatehousev1.Snapshot) { s.Agents[1].Name = s.Agents[0].Name }, "duplicate agent name"},
		{"agent bad url", func(s *gatehousev1.Snapshot) { s.Agents[0].CardUrl = "file:///etc/passwd" }, "card_url must be"},
		{"agent url with user", func(s *gatehousev1.Snapshot) { s.Agents[0].CardUrl = "https://me@agent.example.com/card" }, "card_url must be"},
		{"agent unknown team", func(s *gatehousev1.Snapshot) { s.Agents[0].TeamIds = []string{"t1", "ghost"} }, "unknown team"},
		{"agent bad auth header", func(s *gatehousev1.Snapshot) { s.Agents[0].AuthHeader = "Bad\nHeader" }, "auth_header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			snap := registrySnapshot("o1")
			tt.mutate(snap)
			_, err := Compile(testMeta("o1"), snap)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestCompileNeedsRegion(t *testing.T) {
	t.Parallel()
	for _, region := range []string{"", "EU", "eu.west"} {
		_, err := Compile(&gatehousev1.SnapshotMeta{OrgId: "o1", Region: region}, testSnapshot("o1"))
		if err == nil || !strings.Contains(err.Error(), "meta: region") {
			t.Errorf("region %q: err = %v, want a meta region error", region, err)
		}
	}
}

func TestCopyOnWrite(t *testing.T) {
	t.Parallel()
	base := mustRuntime(t, testSnapshot("o1"))
	other := testSnapshot("o2")
	for i, k := range other.Keys {
		id := strings.Repeat(string(rune('p'+i)), 12)
		_, sum := keyFor(id)
		k.Id, k.SecretSha256 = id, sum
	}
	withBoth, err := base.WithOrg(mustCompile(t, other))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"o1"}, base.OrgIDs()); diff != "" {
		t.Errorf("base changed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"o1", "o2"}, withBoth.OrgIDs()); diff != "" {
		t.Errorf("orgs (-want +got):\n%s", diff)
	}
	without := withBoth.WithoutOrg("o1")
	good, _ := keyFor("aaaaaaaaaaaa")
	if _, err := without.Authenticate(good, time.Now()); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("key of removed org: err = %v", err)
	}
	if _, err := withBoth.Authenticate(good, time.Now()); err != nil {
		t.Errorf("previous runtime lost the key: %v", err)
	}
	// A key id may not move between orgs silently.
	if _, err := withBoth.WithOrg(mustCompile(t, testSnapshot("o3"))); err == nil {
		t.Error("key id shared by two orgs was accepted")
	}
}

func TestCost(t *testing.T) {
	t.Parallel()
	m := &Model{InputPrice: 2_500_000, OutputPrice: 10_000_000, CachedInputPrice: 1_250_000}
	tests := []struct {
		name string
		n    Tokens
		want int64
	}{
		{"zero", Tokens{}, 0},
		{"million each", Tokens{Prompt: 1_000_000, Completion: 1_000_000}, 12_500_000},
		{"cached billed at cached price", Tokens{Prompt: 1_000_000, Cached: 400_000}, 1_500_000 + 500_000},
		{"cached above prompt is clamped", Tokens{Prompt: 100, Cached: 1000}, 125_000_000 / 1_000_000},
		{"rounds to nearest", Tokens{Prompt: 1}, 3},
		{"negative ignored", Tokens{Prompt: -5, Completion: -5, Cached: -5, CacheWrites: -5, CacheWrites1h: -5}, 0},
		// Anthropic: 1M prompt tokens of which 200k read from the cache, 400k written
		// to it (100k of them for an hour): 400k plain at $2.50, 200k at $1.25,
		// 300k at 1.25 × $2.50, 100k at 2 × $2.50.
		{"cache writes", Tokens{Prompt: 1_000_000, Cached: 200_000, CacheWrites: 400_000, CacheWrites1h: 100_000},
			1_000_000 + 250_000 + 937_500 + 500_000},
		{"cache writes above the uncached prompt are clamped", Tokens{Prompt: 1_000, Cached: 600, CacheWrites: 1_000_000, CacheWrites1h: 2_000_000},
			(600*1_250_000 + 400*5_000_000 + 500_000) / 1_000_000},
		// 4e12 × 2.5e6 overflows int64: the cost saturates, it never wraps negative.
		{"overflowing prompt saturates", Tokens{Prompt: 4_000_000_000_000}, math.MaxInt64 / 1_000_000},
		{"overflowing sum saturates", Tokens{Prompt: 3_000_000_000_000, Completion: 800_000_000_000}, math.MaxInt64 / 1_000_000},
		{"overflowing writes saturate", Tokens{Prompt: 4_000_000_000_000, CacheWrites: 4_000_000_000_000}, math.MaxInt64 / 1_000_000},
		{"largest counts", Tokens{Prompt: math.MaxInt64, Completion: math.MaxInt64, Cached: math.MaxInt64, CacheWrites: math.MaxInt64}, math.MaxInt64 / 1_000_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := m.Cost(tt.n); got != tt.want {
				t.Fatalf("Cost = %d, want %d", got, tt.want)
			}
		})
	}
}
