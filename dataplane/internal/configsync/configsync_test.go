package configsync_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/configsync"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/fakecp"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

const region = "eu-test"

// keyID derives a valid 12-character key id from an org id, so orgs never share keys.
func keyID(org string, n int) string {
	id := fmt.Sprintf("%s%d", strings.ToLower(org), n)
	id = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return 'x'
	}, id)
	return (id + "000000000000")[:12]
}

type orgFixture struct {
	snap  *gatehousev1.Snapshot
	token string
}

func newOrg(id string) *orgFixture {
	token, sum := fakecp.NewKey(keyID(id, 1))
	return &orgFixture{
		token: token,
		snap: &gatehousev1.Snapshot{
			Org:   &gatehousev1.Organization{Id: id, Slug: id},
			Teams: []*gatehousev1.Team{{Id: "team-a"}},
			Keys:  []*gatehousev1.ApiKey{{Id: keyID(id, 1), TeamId: "team-a", SecretSha256: sum}},
			Providers: []*gatehousev1.Provider{{
				Id: "prov", Type: gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE,
				BaseUrl: "http://127.0.0.1:9/v1", ApiKey: "sk-upstream",
			}},
			Models: []*gatehousev1.Model{{Id: "m1", Name: "small", ProviderId: "prov", UpstreamModel: "up-small"}},
		},
	}
}

type syncer struct {
	*configsync.Syncer
	store *runtime.Store
	// stop ends Run and waits for it; it is also a test cleanup.
	stop func()
}

// startSyncer runs a syncer against cp; opts adjust its config.
func startSyncer(t *testing.T, cp *fakecp.CP, opts ...func(*configsync.Config)) *syncer {
	t.Helper()
	nc, err := nats.Connect(cp.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	kr, err := wire.ParseKeyring(cp.KeysSpec)
	if err != nil {
		t.Fatal(err)
	}
	store := &runtime.Store{}
	cfg := configsync.Config{
		Conn: nc, Region: region, Keyring: kr, Store: store,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer:       prometheus.NewRegistry(),
		MaxRetryInterval: 200 * time.Millisecond,
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := configsync.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Run(ctx) })
	stop := sync.OnceFunc(func() { cancel(); wg.Wait(); nc.Close() })
	t.Cleanup(stop)
	return &syncer{Syncer: s, store: store, stop: stop}
}

// version returns the applied version of org, or an error when it is not served.
func (s *syncer) version(org string) (uint64, error) {
	rt := s.store.Load()
	if rt == nil {
		return 0, errors.New("not ready")
	}
	o, ok := rt.Org(org)
	if !ok {
		return 0, fmt.Errorf("org %s not served", org)
	}
	return o.Version, nil
}

func (s *syncer) waitVersion(t *testing.T, org string, want uint64) {
	t.Helper()
	fakecp.Eventually(t, 5*time.Second, func() error {
		v, err := s.version(org)
		if err != nil {
			return err
		}
		if v != want {
			return fmt.Errorf("org %s at version %d, want %d", org, v, want)
		}
		return nil
	})
}

func (s *syncer) state(org string) *gatehousev1.OrgConfigState {
	for _, st := range s.States() {
		if st.OrgId == org {
			return st
		}
	}
	return nil
}

func TestReadyOnlyAfterInitialValues(t *testing.T) {
	t.Parallel()
	cp := fakecp.Start(t, fakecp.WithoutBucket())
	s := startSyncer(t, cp)
	if s.Ready() {
		t.Fatal("ready without a bucket")
	}
	cp.CreateBucket()
	var orgs []string
	for i := range 20 {
		org := fmt.Sprintf("org-%02d", i)
		orgs = append(orgs, org)
		cp.Publish(region, newOrg(org).snap)
	}
	// Another region's entry must be ignored.
	other := newOrg("elsewhere")
	cp.PublishMeta(wire.ConfigKey("us-test", "elsewhere"), &gatehousev1.SnapshotMeta{OrgId: "elsewhere", Region: "us-test", Epoch: 1, Version: 1}, other.snap)

	// s may have started watching while the values were being published (they were
	// then updates to it, not initial values); a syncer started now finds all of them
	// as initial values.
	late := startSyncer(t, cp)
	for _, sy := range []*syncer{s, late} {
		fakecp.Eventually(t, 10*time.Second, func() error {
			if !sy.Ready() {
				return errors.New("not ready")
			}
			return nil
		})
	}
	// Ready means every initial value was applied: no waiting from here on.
	rt := late.store.Load()
	for _, org := range orgs {
		if _, ok := rt.Org(org); !ok {
			t.Errorf("ready without org %s", org)
		}
	}
	if _, ok := rt.Org("elsewhere"); ok {
		t.Error("org of another region served")
	}
}

func TestReadyWithEmptyBucket(t *testing.T) {
	t.Parallel()
	cp := fakecp.Start(t)
	s := startSyncer(t, cp)
	fakecp.Eventually(t, 5*time.Second, func() error {
		if !s.Ready() {
			return errors.New("not ready")
		}
		return nil
	})
}

func TestUpdateAndDelete(t *testing.T) {
	t.Parallel()
	cp := fakecp.Start(t)
	org := newOrg("acme")
	cp.Publish(region, org.snap)
	s := startSyncer(t, cp)
	s.waitVersion(t, "acme", 1)

	org.snap.Models = append(org.snap.Models, &gatehousev1.Model{Id: "m2", Name: "big", ProviderId: "prov", UpstreamModel: "up-big"})
	cp.Publish(region, org.snap)
	s.waitVersion(t, "acme", 2)
	o, _ := s.store.Load().Org("acme")
	if _, ok := o.Model("big"); !ok {
		t.Error("update did not add model big")
	}
	if st := s.state("acme"); st == nil || st.AppliedVersion != 2 || st.AppliedEpoch != 1 || st.AppliedSha256 == "" {
		t.Errorf("state = %v, want applied version 2", st)
	}

	// Global settings are accepted and change nothing.
	cp.PublishMeta(wire.ConfigKey(region, wire.GlobalConfigID), &gatehousev1.SnapshotMeta{Region: region, Epoch: 1, Version: 1}, &gatehousev1.Snapshot{})

	cp.Delete(region, "acme")
	fakecp.Eventually(t, 5*time.Second, func() error {
		if _, err := s.version("acme"); err == nil {
			return errors.New("acme still served")
		}
		return nil
	})
	if _, err := s.store.Load().Authenticate(org.token, time.Now()); !errors.Is(err, runtime.ErrInvalidKey) {
		t.Errorf("deleted org's key: err = %v", err)
	}
}

func TestRejectKeepsPrevious(t *testing.T) {
	t.Parallel()
	cp := fakecp.Start(t)
	s := startSyncer(t, cp)

	otherKey := make([]byte, 32)
	_, _ = rand.Read(otherKey)
	strangers, err := wire.NewKeyring("k1", otherKey)
	if err != nil {
		t.Fatal(err)
	}
	unknownID, err := wire.NewKeyring("k9", otherKey)
	if err != nil {
		t.Fatal(err)
	}
	seal := func(kr *wire.Keyring, meta *gatehousev1.SnapshotMeta, snap *gatehousev1.Snapshot) []byte {
		body, sum, err := wire.MarshalSnapshot(snap)
		if err != nil {
			t.Fatal(err)
		}
		meta.Sha256 = sum
		out, err := kr.Seal(meta, body)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	meta := func(org string) *gatehousev1.SnapshotMeta {
		return &gatehousev1.SnapshotMeta{OrgId: org, Region: region, Epoch: 1, Version: 2, MinGatewayCapability: wire.Capability}
	}

	tests := []struct {
		name   string
		value  func(org string, f *orgFixture) []byte
		reason string
	}{
		{"key references missing team", func(org string, f *orgFixture) []byte {
			f.snap.Keys[0].TeamId = "ghost"
			return cp.Seal(meta(org), f.snap)
		}, "unknown team"},
		{"model references missing provider", func(org string, f *orgFixture) []byte {
			f.snap.Models[0].ProviderId = "ghost"
			return cp.Seal(meta(org), f.snap)
		}, "unknown provider"},
		{"capability too high", func(org string, f *orgFixture) []byte {
			m := meta(org)
			m.MinGatewayCapability = wire.Capability + 1
			return cp.Seal(m, f.snap)
		}, "capability"},
		{"tampered bytes", func(org string, f *orgFixture) []byte {
			v := cp.Seal(meta(org), f.snap)
			v[len(v)-1] ^= 0xff
			return v
		}, "verification"},
		{"sealed with another key", func(org string, f *orgFixture) []byte {
			return seal(strangers, meta(org), f.snap)
		}, "verification"},
		{"unknown key id", func(org string, f *orgFixture) []byte {
			return seal(unknownID, meta(org), f.snap)
		}, "unknown config key id"},
		{"wrong region", func(org string, f *orgFixture) []byte {
			m := meta(org)
			m.Region = "us-test"
			return cp.Seal(m, f.snap)
		}, "region"},
		{"org of another key", func(org string, f *orgFixture) []byte {
			m := meta("someone-else")
			f.snap.Org.Id = "someone-else"
			return cp.Seal(m, f.snap)
		}, "under key of org"},
		{"not an envelope", func(string, *orgFixture) []byte { return []byte("garbage") }, "open envelope"},
		{"provider without type", func(org string, f *orgFixture) []byte {
			f.snap.Providers[0].Type = gatehousev1.ProviderType_PROVIDER_TYPE_UNSPECIFIED
			return cp.Seal(meta(org), f.snap)
		}, "unsupported type"},
		{"alias of unknown model", func(org string, f *orgFixture) []byte {
			f.snap.Teams[0].Aliases = []*gatehousev1.ModelAlias{{Alias: "fast", Model: "ghost"}}
			return cp.Seal(meta(org), f.snap)
		}, `alias "fast" names unknown model "ghost"`},
		{"mcp server without transport", func(org string, f *orgFixture) []byte {
			f.snap.McpServers = []*gatehousev1.McpServer{{Id: "s1", Name: "github", Url: "https://mcp.example/"}}
			return cp.Seal(meta(org), f.snap)
		}, "unsupported transport"},
		{"agent of unknown team", func(org string, f *orgFixture) []byte {
			f.snap.Agents = []*gatehousev1.A2AAgent{{Id: "a1", Name: "researcher", CardUrl: "https://a.example/", TeamIds: []string{"ghost"}}}
			return cp.Seal(meta(org), f.snap)
		}, "unknown team"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			org := fmt.Sprintf("reject-%d", i)
			f := newOrg(org)
			cp.Publish(region, f.snap)
			s.waitVersion(t, org, 1)

			bad := newOrg(org)
			cp.PutRaw(wire.ConfigKey(region, org), tt.value(org, bad))
			fakecp.Eventually(t, 5*time.Second, func() error {
				st := s.state(org)
				if st == nil || st.RejectedReason == "" {
					return errors.New("no rejection recorded")
				}
				if !strings.Contains(st.RejectedReason, tt.reason) {
					return fmt.Errorf("rejected reason %q, want it to mention %q", st.RejectedReason, tt.reason)
				}
				return nil
			})
			if v, err := s.version(org); err != nil || v != 1 {
				t.Fatalf("previous config not kept: version %d, err %v", v, err)
			}
			if _, err := s.store.Load().Authenticate(f.token, time.Now()); err != nil {
				t.Fatalf("previous key stopped working: %v", err)
			}
			// A later valid snapshot applies and clears the rejection.
			cp.PublishMeta(wire.ConfigKey(region, org), &gatehousev1.SnapshotMeta{OrgId: org, Region: region, Epoch: 1, Version: 3, MinGatewayCapability: wire.Capability}, f.snap)
			s.waitVersion(t, org, 3)
			if st := s.state(org); st.RejectedReason != "" {
				t.Errorf("rejection not cleared: %v", st)
			}
		})
	}
}

func TestStaleVersionIgnored(t *testing.T) {
	t.Parallel()
	cp := fakecp.Start(t)
	s := startSyncer(t, cp)
	f := newOrg("acme")
	key := wire.ConfigKey(region, "acme")
	cp.PublishMeta(key, &gatehousev1.SnapshotMeta{OrgId: "acme", Region: region, Epoch: 1, Version: 5}, f.snap)
	s.waitVersion(t, "acme", 5)

	cp.PublishMeta(key, &gatehousev1.SnapshotMeta{OrgId: "acme", Region: region, Epoch: 1, Version: 4}, f.snap)
	// A new epoch restarts versions; it applies even with a lower number. Seeing it
	// applied proves the stale one before it was processed (the watch is ordered).
	cp.PublishMeta(key, &gatehousev1.SnapshotMeta{OrgId: "acme", Region: region, Epoch: 2, Version: 1}, f.snap)
	fakecp.Eventually(t, 5*time.Second, func() error {
		st := s.state("acme")
		if st == nil || st.AppliedEpoch != 2 || st.AppliedVersion != 1 {
			return fmt.Errorf("state %v, want epoch 2 version 1", st)
		}
		return nil
	})
}

func TestSurvivesNATSRestart(t *testing.T) {
	t.Parallel()
	cp := fakecp.Start(t)
	f := newOrg("acme")
	cp.Publish(region, f.snap)
	s := startSyncer(t, cp)
	s.waitVersion(t, "acme", 1)

	cp.Stop()
	// While NATS is down the gateway keeps serving its last config.
	if !s.Ready() {
		t.Fatal("not ready while NATS is down")
	}
	if _, err := s.store.Load().Authenticate(f.token, time.Now()); err != nil {
		t.Fatalf("key stopped working while NATS is down: %v", err)
	}
	cp.Restart()

	f.snap.Models = append(f.snap.Models, &gatehousev1.Model{Id: "m2", Name: "big", ProviderId: "prov", UpstreamModel: "up-big"})
	cp.Publish(region, f.snap)
	s.waitVersion(t, "acme", 2)

	// And once more, to show the re-created watch is itself resilient.
	cp.Restart()
	cp.Publish(region, newOrg("second").snap)
	s.waitVersion(t, "second", 1)
	cp.Publish(region, f.snap)
	s.waitVersion(t, "acme", 3)
}

// capability2Org is an org using every capability 2 feature.
func capability2Org(id string) *orgFixture {
	f := newOrg(id)
	f.snap.Teams[0].Regions = []string{region}
	f.snap.Teams[0].Aliases = []*gatehousev1.ModelAlias{{Alias: "fast", Model: "small"}, {Alias: "far", Model: "us-only"}}
	f.snap.Keys[0].AgentIdentity = "planner"
	f.snap.Keys[0].AllowedTools = []string{"github/*"}
	f.snap.Keys[0].AllowedAgents = []string{"researcher"}
	f.snap.Keys[0].AllowedRegions = []string{region, "us-test"}
	for i, typ := range []gatehousev1.ProviderType{
		gatehousev1.ProviderType_PROVIDER_TYPE_ANTHROPIC,
		gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI,
		gatehousev1.ProviderType_PROVIDER_TYPE_GEMINI,
	} {
		pid := fmt.Sprintf("prov%d", i+2)
		f.snap.Providers = append(f.snap.Providers, &gatehousev1.Provider{Id: pid, Type: typ, BaseUrl: "https://llm.example/v1", ApiKey: "k", ApiVersion: "2024-10-21"})
		f.snap.Models = append(f.snap.Models, &gatehousev1.Model{Id: "m-" + pid, Name: "model-" + pid, ProviderId: pid, UpstreamModel: "u", ContextWindow: 128_000})
	}
	f.snap.OtherRegionModels = []*gatehousev1.RegionalModel{{Name: "us-only", Regions: []string{"us-test"}}}
	f.snap.McpServers = []*gatehousev1.McpServer{{Id: "s1", Name: "github", Url: "https://mcp.example/mcp",
		Transport: gatehousev1.McpTransport_MCP_TRANSPORT_STREAMABLE_HTTP, AuthHeader: "Authorization", Credential: "Bearer x"}}
	f.snap.Agents = []*gatehousev1.A2AAgent{{Id: "a1", Name: "researcher", CardUrl: "https://agents.example/card", TeamIds: []string{"team-a"}}}
	return f
}

func TestCapability2SnapshotApplies(t *testing.T) {
	t.Parallel()
	cp := fakecp.Start(t)
	good, bad := capability2Org("good"), capability2Org("bad")
	bad.snap.Teams[0].Aliases = append(bad.snap.Teams[0].Aliases, &gatehousev1.ModelAlias{Alias: "fast", Model: "small"})
	if m := cp.Publish(region, good.snap); m.MinGatewayCapability != wire.Capability {
		t.Fatalf("published with capability %d, want %d", m.MinGatewayCapability, wire.Capability)
	}
	cp.Publish(region, bad.snap)
	s := startSyncer(t, cp)
	s.waitVersion(t, "good", 1)
	fakecp.Eventually(t, 5*time.Second, func() error {
		st := s.state("bad")
		if st == nil || !strings.Contains(st.RejectedReason, `duplicate alias "fast"`) {
			return fmt.Errorf("bad org state %v, want a duplicate alias rejection", st)
		}
		return nil
	})
	if _, err := s.version("bad"); err == nil {
		t.Error("invalid org served")
	}
	k, err := s.store.Load().Authenticate(good.token, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if m, err := k.Model("fast"); err != nil || m.Name != "small" {
		t.Errorf("alias fast = %v, %v", m, err)
	}
	if _, err := k.Model("far"); !errors.Is(err, runtime.ErrModelNotInRegion) {
		t.Errorf("alias far: err = %v, want not in region", err)
	}
	if !k.ToolAllowed("github", "search") || k.AgentIdentity != "planner" {
		t.Errorf("key narrowing lost: %+v", k)
	}
	if _, ok := k.Org.AgentForTeam("team-a", "researcher"); !ok {
		t.Error("agent missing")
	}
	if len(k.Org.MCPServersForTeam("team-a")) != 1 {
		t.Error("mcp server missing")
	}
}
