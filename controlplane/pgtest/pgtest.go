// Package pgtest hands each test a fresh Postgres database cloned from a template that
// has every migration applied. It needs a running Postgres and fails the test, never
// skips it, when none answers.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/database"
	"github.com/gatehouse-dev/gatehouse/migrations"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// EnvURL names the environment variable holding the admin connection URL of the test
// server. The default is the local server with trust authentication.
const EnvURL = "GATEHOUSE_TEST_DATABASE_URL"

const defaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL is the connection URL of the test server's maintenance database.
func AdminURL() string {
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	return defaultURL
}

// NewURL creates a fresh migrated database for t, drops it when t ends, and returns
// its connection URL.
func NewURL(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Fatalf("pgtest: Postgres is required and did not answer at %s (run `make db-up`, or set %s): %v", redact(AdminURL()), EnvURL, err)
	}
	defer admin.Close(context.Background())

	tmpl, err := ensureTemplate(ctx, admin)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	name := "gh_test_" + randomHex(8)
	if err := cloneTemplate(ctx, admin, tmpl, name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, AdminURL())
		if err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "drop database if exists "+pgx.Identifier{name}.Sanitize()+" with (force)"); err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
		}
	})
	return withDatabase(AdminURL(), name)
}

// New is NewURL plus a pool that is closed when t ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	u := NewURL(t)
	pool, err := pgxpool.New(context.Background(), u)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// ensureTemplate creates, once per migration set, a template database with every
// migration applied. An advisory lock serialises test processes racing to build it.
func ensureTemplate(ctx context.Context, admin *pgx.Conn) (string, error) {
	sum, err := migrationsHash()
	if err != nil {
		return "", err
	}
	name := "gh_tmpl_" + sum[:16]
	lockID := int64(binary.BigEndian.Uint64([]byte(sum[:8])))
	if _, err := admin.Exec(ctx, "select pg_advisory_lock($1)", lockID); err != nil {
		return "", fmt.Errorf("lock template: %w", err)
	}
	defer admin.Exec(context.Background(), "select pg_advisory_unlock($1)", lockID) //nolint:errcheck // the lock dies with the connection anyway

	var exists bool
	if err := admin.QueryRow(ctx, "select exists (select 1 from pg_database where datname = $1)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("find template: %w", err)
	}
	if exists {
		return name, nil
	}
	building := name + "_wip"
	if _, err := admin.Exec(ctx, "drop database if exists "+pgx.Identifier{building}.Sanitize()+" with (force)"); err != nil {
		return "", fmt.Errorf("drop stale template: %w", err)
	}
	if _, err := admin.Exec(ctx, "create database "+pgx.Identifier{building}.Sanitize()); err != nil {
		return "", fmt.Errorf("create template: %w", err)
	}
	pool, err := database.Open(ctx, withDatabase(AdminURL(), building))
	if err != nil {
		return "", fmt.Errorf("template: %w", err)
	}
	err = database.Migrate(ctx, pool, slog.New(slog.DiscardHandler))
	pool.Close()
	if err != nil {
		return "", fmt.Errorf("template: %w", err)
	}
	if _, err := admin.Exec(ctx, "alter database "+pgx.Identifier{building}.Sanitize()+" rename to "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("publish template: %w", err)
	}
	return name, nil
}

// cloneTemplate copies tmpl into name. Postgres refuses to copy a template while
// another session is connected to it, so a busy template is retried briefly.
func cloneTemplate(ctx context.Context, admin *pgx.Conn, tmpl, name string) error {
	stmt := "create database " + pgx.Identifier{name}.Sanitize() + " template " + pgx.Identifier{tmpl}.Sanitize()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if _, err = admin.Exec(ctx, stmt); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("clone template: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("clone template: %w", err)
}

func migrationsHash() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash migrations: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func withDatabase(raw, db string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = "/" + db
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable url)"
	}
	return u.Redacted()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
