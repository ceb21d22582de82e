package configpub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/configpub"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/cptest"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/natsbus"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
)

var update = flag.Bool("update", false, "rewrite golden files")

func sampleConfig() store.OrgConfig {
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	hash := bytes.Repeat([]byte{0xab}, 32)
	return store.OrgConfig{
		Org:     store.Org{ID: "11111111-1111-1111-1111-111111111111", Slug: "acme", Name: "Acme"},
		Epoch:   7,
		Version: 42,
		Teams: []store.Team{
			{ID: "22222222-2222-2222-2222-22222222222b", Slug: "search", Name: "Search"},
			{ID: "22222222-2222-2222-2222-22222222222a", Slug: "ads", Name: "Ads", Suspended: true},
		},
		Keys: []store.ActiveKey{
			{Key: store.Key{ID: "bbbbbbbbbbbb", TeamID: "22222222-2222-2222-2222-22222222222b", Name: "ci", AllowedModels: []string{"z", "a"}, ExpiresAt: &exp}, SecretSHA256: hash},
			{Key: store.Key{ID: "aaaaaaaaaaaa", TeamID: "22222222-2222-2222-2222-22222222222a", Name: "dev"}, SecretSHA256: hash},
		},
		Providers: []store.ProviderWithSecret{{Provider: store.Provider{ID: "33333333-3333-3333-3333-333333333333", Name: "openai", Type: "openai-compatible", BaseURL: "https://api.example.com/v1"}, APIKey: "sk-test"}},
		Models: []store.Model{{ID: "44444444-4444-4444-4444-444444444444", Name: "gpt-demo", ProviderID: "33333333-3333-3333-3333-333333333333",
			UpstreamModel: "gpt-4o-mini", InputPricePerMTokMicros: 150000, OutputPricePerMTokMicros: 600000, CachedInputPricePerMTokMicros: 75000}},
	}
}

func TestCompileGolden(t *testing.T) {
	t.Parallel()
	built := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	c, err := configpub.Compile(sampleConfig(), "eu", built, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := protojson.Marshal(&gatehousev1.Envelope{Meta: c.Meta})
	if err != nil {
		t.Fatal(err)
	}
	snapJSON, err := protojson.Marshal(c.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	// protojson randomises whitespace; re-indent for a stable golden file.
	var got bytes.Buffer
	for _, b := range [][]byte{raw, snapJSON} {
		if err := json.Indent(&got, b, "", "  "); err != nil {
			t.Fatal(err)
		}
		got.WriteByte('\n')
	}
	golden := filepath.Join("testdata", "snapshot.golden.json")
	if *update {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got.String()); diff != "" {
		t.Fatalf("snapshot differs from golden (-want +got):\n%s", diff)
	}

	// Deterministic: the same input compiles to the same bytes, whatever the input order.
	cfg := sampleConfig()
	cfg.Teams[0], cfg.Teams[1] = cfg.Teams[1], cfg.Teams[0]
	c2, err := configpub.Compile(cfg, "eu", built, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Body, c2.Body) || c.Meta.Sha256 != c2.Meta.Sha256 {
		t.Fatal("compile is not deterministic")
	}
}

func TestCompileRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*store.OrgConfig)
		max    int
		want   string
	}{
		{"key with missing team", func(c *store.OrgConfig) { c.Keys[0].TeamID = "nope" }, 1 << 20, "missing team"},
		{"model with missing provider", func(c *store.OrgConfig) { c.Models[0].ProviderID = "nope" }, 1 << 20, "missing provider"},
		{"duplicate model name", func(c *store.OrgConfig) {
			m := c.Models[0]
			m.ID = "55555555-5555-5555-5555-555555555555"
			c.Models = append(c.Models, m)
		}, 1 << 20, "duplicate model name"},
		{"bad provider url", func(c *store.OrgConfig) { c.Providers[0].BaseURL = "not a url" }, 1 << 20, "invalid base url"},
		{"too large", func(*store.OrgConfig) {}, 100, "size limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sampleConfig()
			tc.mutate(&cfg)
			_, err := configpub.Compile(cfg, "eu", time.Now(), tc.max)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	_, err := configpub.Compile(sampleConfig(), "eu", time.Now(), 100)
	if !errors.Is(err, configpub.ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

// TestOutboxSurvivesCrash commits changes while no publisher runs (the control plane
// died between commit and publish), then starts one and expects every region's value.
func TestOutboxSurvivesCrash(t *testing.T) {
	t.Parallel()
	st := cptest.Store(t)
	ns := cptest.StartNATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	org, err := st.CreateOrg(ctx, "test", "acme", "Acme")
	if err != nil {
		t.Fatal(err)
	}
	team, err := st.CreateTeam(ctx, "test", org.ID, "search", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateProvider(ctx, "test", org.ID, store.NewProvider{Name: "up", BaseURL: "http://127.0.0.1:1/v1", APIKey: "sk-very-secret-upstream"}); err != nil {
		t.Fatal(err)
	}
	key, _, err := st.CreateKey(ctx, "test", org.ID, team.ID, store.NewKey{Name: "k"})
	if err != nil {
		t.Fatal(err)
	}

	kr := cptest.Keyring(t, "cfg-1")
	pub := configpub.NewPublisher(st, ns.Config, kr, []string{"eu", "us"}, natsbus.MaxConfigValueBytes, slog.New(slog.DiscardHandler))
	go pub.Run(ctx) //nolint:errcheck // ends with ctx

	open := func(region string) (*gatehousev1.SnapshotMeta, *gatehousev1.Snapshot, []byte, error) {
		e, err := ns.Config.Get(ctx, wire.ConfigKey(region, org.ID))
		if err != nil {
			return nil, nil, nil, err
		}
		m, s, err := kr.Open(e.Value())
		return m, s, e.Value(), err
	}
	for _, region := range []string{"eu", "us"} {
		cptest.Eventually(t, 10*time.Second, func() error {
			meta, snap, raw, err := open(region)
			if err != nil {
				return err
			}
			if meta.Region != region || meta.OrgId != org.ID || len(snap.Keys) != 1 || snap.Keys[0].Id != key.ID {
				return errors.New("snapshot incomplete")
			}
			if bytes.Contains(raw, []byte("sk-very-secret-upstream")) {
				t.Fatal("upstream credential in clear in NATS")
			}
			return nil
		})
	}
	cptest.Eventually(t, 5*time.Second, func() error {
		p, err := st.PendingConfig(ctx, 10)
		if err != nil || len(p) != 0 {
			return errors.New("outbox not drained")
		}
		return nil
	})

	// A revocation is published with a higher version and without the key.
	meta0, _, _, _ := open("eu")
	if _, err := st.RevokeKey(ctx, "test", org.ID, team.ID, key.ID); err != nil {
		t.Fatal(err)
	}
	cptest.Eventually(t, 5*time.Second, func() error {
		meta, snap, _, err := open("eu")
		if err != nil {
			return err
		}
		if len(snap.Keys) != 0 || meta.Version <= meta0.Version {
			return errors.New("revocation not published")
		}
		return nil
	})
}
