package configsync

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const (
	cacheExt = ".cfg"
	// maxCacheFile bounds what is read back; KV values are far smaller.
	maxCacheFile = 64 << 20
)

// diskCache keeps the KV value of every applied org snapshot of one region, one file per
// org (<dir>/<org_id>.cfg), so a gateway that restarts while NATS is unreachable can serve
// its last config. A file holds exactly the bytes of the KV value: the sealed envelope,
// never decrypted config. Read back, it is opened, checked and compiled like a live
// value. Writes go to a temporary file that is synced and renamed, so a crash leaves the
// previous file or the new one, never a torn one.
type diskCache struct {
	dir string
}

// cacheable reports whether an org id can name a file in the cache directory.
func cacheable(orgID string) bool {
	return orgID != "" && len(orgID) <= 200 && !strings.HasPrefix(orgID, ".") &&
		!strings.ContainsAny(orgID, "/\\\x00")
}

func (c *diskCache) path(orgID string) (string, error) {
	if !cacheable(orgID) {
		return "", fmt.Errorf("org id %q cannot name a cache file", orgID)
	}
	return filepath.Join(c.dir, orgID+cacheExt), nil
}

// put stores value as the org's cached snapshot, unless the file already holds it.
func (c *diskCache) put(orgID string, value []byte) error {
	path, err := c.path(orgID)
	if err != nil {
		return fmt.Errorf("cache config: %w", err)
	}
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, value) {
		return nil
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("cache config: %w", err)
	}
	// CreateTemp makes the file 0600; the leading dot keeps it out of load.
	f, err := os.CreateTemp(c.dir, "."+orgID+".*.tmp")
	if err != nil {
		return fmt.Errorf("cache config: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(value)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("cache config: %w", err)
	}
	syncDir(c.dir)
	return nil
}

// syncDir makes a rename durable. It is best effort: some file systems cannot sync a
// directory, and the rename itself is already atomic.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// remove deletes the org's cached snapshot, if any.
func (c *diskCache) remove(orgID string) error {
	path, err := c.path(orgID)
	if err != nil {
		return nil // never cached
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("uncache config: %w", err)
	}
	return nil
}

// load reads every cached value, by org id. Files that cannot be read are skipped and
// reported in skipped; a missing directory is an empty cache.
func (c *diskCache) load() (values map[string][]byte, skipped []error) {
	entries, err := os.ReadDir(c.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []error{fmt.Errorf("read config cache: %w", err)}
	}
	values = map[string][]byte{}
	for _, e := range entries {
		org, ok := strings.CutSuffix(e.Name(), cacheExt)
		if !ok || !e.Type().IsRegular() || !cacheable(org) {
			continue
		}
		value, err := readBounded(filepath.Join(c.dir, e.Name()))
		if err != nil {
			skipped = append(skipped, fmt.Errorf("read config cache: %w", err))
			continue
		}
		values[org] = value
	}
	return values, skipped
}

func readBounded(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if info.Size() > maxCacheFile {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", path, info.Size(), maxCacheFile)
	}
	return os.ReadFile(path)
}

// prune removes the cached snapshots of orgs not in keep, and temporary files left by
// an interrupted write.
func (c *diskCache) prune(keep map[string]struct{}) error {
	entries, err := os.ReadDir(c.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("prune config cache: %w", err)
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		org, isCfg := strings.CutSuffix(name, cacheExt)
		_, kept := keep[org]
		stray := strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".tmp")
		if !stray && (!isCfg || kept || !e.Type().IsRegular()) {
			continue
		}
		if err := os.Remove(filepath.Join(c.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("prune config cache: %w", err)
	}
	return nil
}
