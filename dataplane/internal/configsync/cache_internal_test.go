package configsync

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCacheable(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{
		"acme": true, "0b6c2e9c-8d5a-4f5e-9a53-3b1f0c7d2e11": true,
		"": false, ".hidden": false, "a/b": false, `a\b`: false, "a\x00b": false,
	} {
		if got := cacheable(id); got != want {
			t.Errorf("cacheable(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestDiskCache(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "eu")
	c := &diskCache{dir: dir}
	if values, skipped := c.load(); len(values) != 0 || len(skipped) != 0 {
		t.Fatalf("missing dir: %v %v", values, skipped)
	}
	if err := c.put("a/b", []byte("x")); err == nil {
		t.Error("put accepted an org id with a slash")
	}
	for org, v := range map[string]string{"a": "one", "b": "two", "c": "three"} {
		if err := c.put(org, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	// Rewriting identical bytes leaves the file alone.
	before, _ := os.Stat(filepath.Join(dir, "a.cfg"))
	if err := c.put("a", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(filepath.Join(dir, "a.cfg")); !os.SameFile(before, after) {
		t.Error("identical value rewritten")
	}
	if err := c.put("a", []byte("uno")); err != nil {
		t.Fatal(err)
	}
	// Leftovers of an interrupted write and foreign files.
	for _, name := range []string{".a.cfg.123.tmp", "README"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	values, skipped := c.load()
	got := map[string]string{}
	for k, v := range values {
		got[k] = string(v)
	}
	if diff := cmp.Diff(map[string]string{"a": "uno", "b": "two", "c": "three"}, got); diff != "" || len(skipped) != 0 {
		t.Errorf("load (-want +got):\n%s\nskipped: %v", diff, skipped)
	}
	if err := c.remove("b"); err != nil {
		t.Fatal(err)
	}
	if err := c.remove("never-cached"); err != nil {
		t.Errorf("removing a missing file: %v", err)
	}
	if err := c.prune(map[string]struct{}{"a": {}}); err != nil {
		t.Fatal(err)
	}
	var names []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"README", "a.cfg"}, names); diff != "" {
		t.Errorf("after prune (-want +got):\n%s", diff)
	}
}
