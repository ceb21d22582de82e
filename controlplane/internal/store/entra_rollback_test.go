package store_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	"github.com/gatehouse-dev/gatehouse/controlplane/pgtest"
	"github.com/gatehouse-dev/gatehouse/migrations"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
)

// TestEntraMigrationRollback: rolling migration 00009 back leaves no Entra ID client
// secret behind for a release that would send it as an API key; API keys stay; the
// migration applies again.
func TestEntraMigrationRollback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.New(t)
	kr, _ := wire.NewKeyring("k", make([]byte, 32))
	st := store.New(pool, kr)
	org, err := st.CreateOrg(ctx, "test", "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateProvider(ctx, "test", org.ID, azureProvider("entra", entraTenant, entraClient, "cs-rollback")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateProvider(ctx, "test", org.ID, azureProvider("keyed", "", "", "sk-stays")); err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 8); err != nil {
		t.Fatalf("roll back 00009: %v", err)
	}
	rows, err := pool.Query(ctx, `select name, api_key_sealed is not null from providers order by name`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for rows.Next() {
		var name string
		var sealed bool
		if err := rows.Scan(&name, &sealed); err != nil {
			t.Fatal(err)
		}
		got[name] = sealed
	}
	if rows.Err() != nil || got["entra"] || !got["keyed"] {
		t.Fatalf("credentials after the rollback (name: still sealed): %v, %v", got, rows.Err())
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("apply 00009 again: %v", err)
	}
}
