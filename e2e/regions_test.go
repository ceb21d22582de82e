package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/pgtest"
	"github.com/gatehouse-dev/gatehouse/e2e/stack"
	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// fleetStack runs two regions (eu, us) with replicas+1 gateways each.
func fleetStack(t testing.TB, replicas int) (*stack.Stack, stack.Demo, *stack.Admin, stack.Secrets) {
	t.Helper()
	ctx := context.Background()
	secrets := stack.NewSecrets()
	st, err := stack.Start(ctx, stack.Options{BinDir: binDir, StateDir: tempDir(t), DatabaseURL: pgtest.NewURL(t), Secrets: secrets,
		GatewayAddrs: map[string]string{"eu": "", "us": ""}, Replicas: replicas})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Stop)
	admin := stack.NewAdmin(st.ControlPlane, secrets.AdminToken)
	demo, err := stack.Seed(ctx, admin, st.Upstream, secrets.UpstreamAPIKey, "")
	if err != nil {
		t.Fatal(err)
	}
	return st, demo, admin, secrets
}

func tempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gatehouse-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// call makes one chat request and returns the status and error code.
func call(gateway, key, model string) (int, string, string) {
	body := `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`
	req, _ := http.NewRequest("POST", gateway+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err.Error()
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(raw, &e)
	return resp.StatusCode, e.Error.Code, e.Error.Message
}

// everywhere waits until fn holds on every gateway.
func everywhere(t testing.TB, st *stack.Stack, d time.Duration, fn func(gw string) error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for _, gws := range st.Fleet {
		for _, gw := range gws {
			for {
				err := fn(gw)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: %v", gw, err)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
}

func TestRegionsFleetAndRevocation(t *testing.T) {
	st, demo, admin, secrets := fleetStack(t, 1)
	ctx := context.Background()
	if err := admin.Do(ctx, "POST", "/orgs/demo/models", map[string]any{"name": "eu-chat", "provider": "demo-upstream",
		"upstream_model": "demo-chat", "regions": []string{"eu"}}, nil); err != nil {
		t.Fatal(err)
	}
	status := func(want int, model, key string) func(string) error {
		return func(gw string) error {
			if got, code, msg := call(gw, key, model); got != want {
				return fmt.Errorf("%s: status %d (%s: %s), want %d", model, got, code, msg, want)
			}
			return nil
		}
	}
	everywhere(t, st, 10*time.Second, status(200, "demo-chat", demo.Key))

	// A model offered only in eu works in eu and is refused in us with a clear error.
	for _, gw := range st.Fleet["eu"] {
		everywhere(t, &stack.Stack{Fleet: map[string][]string{"eu": {gw}}}, 10*time.Second, status(200, "eu-chat", demo.Key))
	}
	for _, gw := range st.Fleet["us"] {
		var got int
		var code, msg string
		eventually(t, 10*time.Second, func() error {
			got, code, msg = call(gw, demo.Key, "eu-chat")
			if code != "model_not_in_region" {
				return fmt.Errorf("status %d code %q", got, code)
			}
			return nil
		})
		if got != 404 || !strings.Contains(msg, `"us"`) || !strings.Contains(msg, "eu") {
			t.Fatalf("us refusal: %d %s %q", got, code, msg)
		}
	}

	// Revocation and suspension reach every gateway of every region.
	var key stack.Object
	if err := admin.Do(ctx, "POST", "/orgs/demo/teams/platform/keys", map[string]any{"name": "to revoke"}, &key); err != nil {
		t.Fatal(err)
	}
	everywhere(t, st, 10*time.Second, status(200, "demo-chat", key.Secret))
	if err := admin.Do(ctx, "POST", "/orgs/demo/teams/platform/keys/"+key.ID+"/revoke", nil, nil); err != nil {
		t.Fatal(err)
	}
	everywhere(t, st, 5*time.Second, status(401, "demo-chat", key.Secret))
	if err := admin.Do(ctx, "POST", "/orgs/demo/teams/platform/suspend", map[string]any{"suspended": true}, nil); err != nil {
		t.Fatal(err)
	}
	everywhere(t, st, 5*time.Second, status(403, "demo-chat", demo.Key))
	if err := admin.Do(ctx, "POST", "/orgs/demo/teams/platform/suspend", map[string]any{"suspended": false}, nil); err != nil {
		t.Fatal(err)
	}
	everywhere(t, st, 5*time.Second, status(200, "demo-chat", demo.Key))

	// The fleet page knows every gateway, all live and in sync.
	eventually(t, 20*time.Second, func() error {
		var f struct {
			LatestVersion int `json:"latest_version"`
			Regions       []struct {
				Name     string `json:"name"`
				Live     int    `json:"live"`
				Gateways []struct {
					ID  string `json:"gateway_id"`
					Lag int    `json:"lag"`
				} `json:"gateways"`
			} `json:"regions"`
		}
		if err := admin.Do(ctx, "GET", "/orgs/demo/fleet", nil, &f); err != nil {
			return err
		}
		live := 0
		for _, r := range f.Regions {
			live += r.Live
			for _, g := range r.Gateways {
				if g.Lag != 0 {
					return fmt.Errorf("%s lags %d", g.ID, g.Lag)
				}
			}
		}
		if live != 4 {
			return fmt.Errorf("%d live gateways, want 4", live)
		}
		return nil
	})

	// A bad snapshot (a key of a team that does not exist) is refused by every gateway
	// (NACK, shown on the fleet page with the reason) and the last good one keeps serving.
	publishBadSnapshot(t, st, secrets, demo.OrgID)
	eventually(t, 20*time.Second, func() error {
		var f struct {
			Regions []struct {
				Gateways []struct {
					ID  string `json:"gateway_id"`
					Org struct {
						RejectedVersion int    `json:"rejected_version"`
						RejectedReason  string `json:"rejected_reason"`
					} `json:"org"`
				} `json:"gateways"`
			} `json:"regions"`
		}
		if err := admin.Do(ctx, "GET", "/orgs/demo/fleet", nil, &f); err != nil {
			return err
		}
		for _, r := range f.Regions {
			for _, g := range r.Gateways {
				if g.Org.RejectedVersion == 0 || !strings.Contains(g.Org.RejectedReason, "team") {
					return fmt.Errorf("%s shows no NACK: %+v", g.ID, g.Org)
				}
			}
		}
		return nil
	})
	everywhere(t, st, 5*time.Second, status(200, "demo-chat", demo.Key))

	// Secrets never appear in clear in NATS's store or in any log.
	if err := admin.Do(ctx, "POST", "/orgs/demo/mcp-servers", map[string]any{"name": "github", "url": "http://127.0.0.1:9/mcp",
		"credential": "mcp-credential-must-not-leak"}, nil); err != nil {
		t.Fatal(err)
	}
	everywhere(t, st, 10*time.Second, status(200, "demo-chat", demo.Key)) // config flowed again
	secretsToFind := []string{secrets.UpstreamAPIKey, "mcp-credential-must-not-leak", demo.Key, key.Secret, secrets.AdminToken}
	err := filepath.WalkDir(st.StateDir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range secretsToFind {
			if strings.Contains(string(b), s) {
				return fmt.Errorf("secret %.12s… found in clear in %s", s, path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var natsFiles int
	_ = filepath.WalkDir(filepath.Join(st.StateDir(), "nats"), func(_ string, d fs.DirEntry, _ error) error {
		if d != nil && !d.IsDir() {
			natsFiles++
		}
		return nil
	})
	if natsFiles == 0 {
		t.Fatal("no NATS store files were searched")
	}
}

// publishBadSnapshot puts a sealed but invalid snapshot of org in every region's key,
// as a buggy or compromised publisher would.
func publishBadSnapshot(t *testing.T, st *stack.Stack, secrets stack.Secrets, orgID string) {
	t.Helper()
	kr, err := wire.ParseKeyring(secrets.ConfigKeys)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(st.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, wire.ConfigBucket)
	if err != nil {
		t.Fatal(err)
	}
	for region := range st.Fleet {
		entry, err := kv.Get(ctx, wire.ConfigKey(region, orgID))
		if err != nil {
			t.Fatal(err)
		}
		meta, snap, err := kr.Open(entry.Value())
		if err != nil {
			t.Fatal(err)
		}
		snap.Keys = append(snap.Keys, &gatehousev1.ApiKey{Id: "badbadbadbad", TeamId: "00000000-0000-0000-0000-000000000000", SecretSha256: make([]byte, 32)})
		body, sum, err := wire.MarshalSnapshot(snap)
		if err != nil {
			t.Fatal(err)
		}
		meta.Version += 1000
		meta.Sha256 = sum
		value, err := kr.Seal(meta, body)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, wire.ConfigKey(region, orgID), value); err != nil {
			t.Fatal(err)
		}
	}
}
