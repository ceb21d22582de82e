package configsync_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/configsync"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/fakecp"
)

func withCache(dir string, grace time.Duration) func(*configsync.Config) {
	return func(c *configsync.Config) {
		c.CacheDir = dir
		c.CacheGrace = grace
	}
}

func cacheFile(dir, org string) string { return filepath.Join(dir, region, org+".cfg") }

func TestCacheFollowsAppliedConfig(t *testing.T) {
	t.Parallel()
	cp := fakecp.Start(t)
	dir := t.TempDir()
	acme := newOrg("acme")
	cp.Publish(region, acme.snap)
	s := startSyncer(t, cp, withCache(dir, time.Minute))
	s.waitVersion(t, "acme", 1)

	// The file is the sealed KV value, byte for byte: no decrypted config on disk.
	sameAsKV := func() error {
		got, err := os.ReadFile(cacheFile(dir, "acme"))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, cp.Value(region, "acme")) {
			return errors.New("cache file differs from the KV value")
		}
		return nil
	}
	fakecp.Eventually(t, 5*time.Second, sameAsKV)
	info, err := os.Stat(cacheFile(dir, "acme"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("cache file mode = %o, want 600", perm)
	}
	raw, _ := os.ReadFile(cacheFile(dir, "acme"))
	if bytes.Contains(raw, []byte("sk-upstream")) || bytes.Contains(raw, []byte("up-small")) {
		t.Error("cache file holds config in clear")
	}

	// An update rewrites it; a refused snapshot leaves the last applied one.
	acme.snap.Models = append(acme.snap.Models, &gatehousev1.Model{Id: "m2", Name: "big", ProviderId: "prov", UpstreamModel: "up-big"})
	cp.Publish(region, acme.snap)
	s.waitVersion(t, "acme", 2)
	fakecp.Eventually(t, 5*time.Second, sameAsKV)
	applied := cp.Value(region, "acme")
	bad := newOrg("acme")
	bad.snap.Keys[0].TeamId = "ghost"
	cp.Publish(region, bad.snap)
	fakecp.Eventually(t, 5*time.Second, func() error {
		if st := s.state("acme"); st == nil || st.RejectedVersion != 3 {
			return fmt.Errorf("state %v, want version 3 rejected", st)
		}
		return nil
	})
	if got, _ := os.ReadFile(cacheFile(dir, "acme")); !bytes.Equal(got, applied) {
		t.Error("a refused snapshot replaced the cached one")
	}

	// Deleting the org deletes its file; no temporary files are left behind.
	cp.Delete(region, "acme")
	fakecp.Eventually(t, 5*time.Second, func() error {
		if _, err := os.Stat(cacheFile(dir, "acme")); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cache file still there: %v", err)
		}
		return nil
	})
	if left, _ := os.ReadDir(filepath.Join(dir, region)); len(left) != 0 {
		t.Errorf("cache dir not empty: %v", left)
	}
}

func TestCacheServesWhileNATSIsDown(t *testing.T) {
	t.Parallel()
	cp := fakecp.Start(t)
	dir := t.TempDir()
	acme, beta, gamma := newOrg("acme"), newOrg("beta"), newOrg("gamma")
	for _, o := range []*orgFixture{acme, beta, gamma} {
		cp.Publish(region, o.snap)
	}
	first := startSyncer(t, cp, withCache(dir, time.Minute))
	for _, org := range []string{"acme", "beta", "gamma"} {
		first.waitVersion(t, org, 1)
		fakecp.Eventually(t, 5*time.Second, func() error {
			_, err := os.Stat(cacheFile(dir, org))
			return err
		})
	}
	first.stop()

	// While no gateway watches, beta is deleted; then the gamma file is tampered with and
	// NATS goes away.
	cp.Delete(region, "beta")
	tamper(t, cacheFile(dir, "gamma"))
	cp.Stop()

	s := startSyncer(t, cp, withCache(dir, 100*time.Millisecond))
	fakecp.Eventually(t, 10*time.Second, func() error {
		if !s.Ready() {
			return errors.New("not ready from the cache")
		}
		return nil
	})
	rt := s.store.Load()
	if _, err := rt.Authenticate(acme.token, time.Now()); err != nil {
		t.Errorf("cached key: %v", err)
	}
	if _, err := rt.Authenticate(beta.token, time.Now()); err != nil {
		t.Errorf("cached key of beta (deleted only upstream): %v", err)
	}
	if _, ok := rt.Org("gamma"); ok {
		t.Error("tampered cache file was served")
	}
	if st := s.state("acme"); st == nil || st.AppliedVersion != 1 {
		t.Errorf("acme state = %v, want applied version 1", st)
	}

	// NATS is back: the live values replace the cached ones, and updates apply.
	cp.Restart()
	gamma.snap.Models = append(gamma.snap.Models, &gatehousev1.Model{Id: "m2", Name: "big", ProviderId: "prov", UpstreamModel: "up-big"})
	cp.Publish(region, gamma.snap)
	s.waitVersion(t, "gamma", 2)
	fakecp.Eventually(t, 5*time.Second, func() error {
		if _, err := s.version("beta"); err == nil {
			return errors.New("beta, absent from the live values, still served")
		}
		return nil
	})
	cp.Publish(region, acme.snap)
	s.waitVersion(t, "acme", 2)
	fakecp.Eventually(t, 5*time.Second, func() error {
		if _, err := os.Stat(cacheFile(dir, "beta")); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("beta cache file: %v", err)
		}
		got, err := os.ReadFile(cacheFile(dir, "gamma"))
		if err != nil || !bytes.Equal(got, cp.Value(region, "gamma")) {
			return fmt.Errorf("gamma cache file not rewritten from the live value (%v)", err)
		}
		return nil
	})
}

// tamper flips the last byte of a file.
func tamper(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLiveValuesBeatTheCache(t *testing.T) {
	t.Parallel()
	cp := fakecp.Start(t)
	dir := t.TempDir()
	acme := newOrg("acme")
	cp.Publish(region, acme.snap)
	first := startSyncer(t, cp, withCache(dir, time.Minute))
	first.waitVersion(t, "acme", 1)
	fakecp.Eventually(t, 5*time.Second, func() error {
		_, err := os.Stat(cacheFile(dir, "acme"))
		return err
	})
	first.stop()
	cp.Publish(region, acme.snap)

	// NATS is up: the grace period is long, the live version 2 arrives first.
	s := startSyncer(t, cp, withCache(dir, time.Minute))
	s.waitVersion(t, "acme", 2)
}

func TestCacheUnusable(t *testing.T) {
	t.Parallel()
	cp := fakecp.Start(t)
	dir := t.TempDir()
	// A file another org's value was copied into, a file sealed for another region and
	// garbage: none is usable, so the gateway stays unready.
	other := newOrg("other")
	if err := os.MkdirAll(filepath.Join(dir, region), 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"acme.cfg":  cp.Seal(&gatehousev1.SnapshotMeta{OrgId: "other", Region: region, Epoch: 1, Version: 1}, other.snap),
		"other.cfg": cp.Seal(&gatehousev1.SnapshotMeta{OrgId: "other", Region: "us-test", Epoch: 1, Version: 1}, other.snap),
		"junk.cfg":  []byte("garbage"),
		"notes.txt": []byte("ignored"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, region, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cp.Stop()
	logs := &logCapture{}
	s := startSyncer(t, cp, withCache(dir, 50*time.Millisecond), func(c *configsync.Config) { c.Logger = slog.New(logs) })
	fakecp.Eventually(t, 10*time.Second, func() error {
		if !logs.contains("no usable cached config") {
			return errors.New("cache fallback has not run")
		}
		return nil
	})
	if s.Ready() {
		t.Fatal("ready without any usable config")
	}
	for _, want := range []string{"under key of org", "gateway serves", "open envelope"} {
		if !logs.contains(want) {
			t.Errorf("logs do not explain a skipped file with %q", want)
		}
	}
}

// logCapture is a slog.Handler that keeps every record's message and attributes.
type logCapture struct {
	mu    sync.Mutex
	lines []string
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }

func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}

func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCapture) WithGroup(string) slog.Handler      { return l }

func (l *logCapture) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}
