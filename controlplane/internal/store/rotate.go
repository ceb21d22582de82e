package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// sealedColumns lists every column sealed under the master key, with the AADs its rows
// may be sealed with (a provider's credential: an API key's or an Entra ID client
// secret's). Rotation is written with hand-made SQL because it walks several tables
// generically, which sqlc cannot express.
var sealedColumns = []struct {
	table, id, sealed, keyID string
	aads                     []func(orgID string) []byte
}{
	{"providers", "id", "api_key_sealed", "api_key_key_id", []func(string) []byte{credentialAAD, entraSecretAAD}},
	{"sso_connections", "org_id", "client_secret_sealed", "client_secret_key_id", []func(string) []byte{connAAD}},
	{"mcp_servers", "id", "credential_sealed", "credential_key_id", []func(string) []byte{func(o string) []byte { return entryAAD("mcp", o) }}},
	{"a2a_agents", "id", "credential_sealed", "credential_key_id", []func(string) []byte{func(o string) []byte { return entryAAD("a2a", o) }}},
}

// RotateSecrets re-seals every credential not sealed under the active master key, in
// one transaction, and returns how many were re-sealed. Run it after putting a new
// key first in GATEHOUSE_MASTER_KEYS (keep the old one listed until it reports 0).
func (s *Store) RotateSecrets(ctx context.Context, actor Actor) (int, error) {
	active := s.secrets.ActiveKeyID()
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, c := range sealedColumns {
			rows, err := tx.Query(ctx, fmt.Sprintf(`select %s::text, org_id::text, %s, %s from %s
				where %s is not null and %s <> $1 for update`, c.id, c.sealed, c.keyID, c.table, c.sealed, c.keyID), active)
			if err != nil {
				return err
			}
			type row struct {
				id, org, keyID string
				sealed         []byte
			}
			var todo []row
			for rows.Next() {
				var r row
				if err := rows.Scan(&r.id, &r.org, &r.sealed, &r.keyID); err != nil {
					rows.Close()
					return err
				}
				todo = append(todo, r)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for _, r := range todo {
				// Each AAD in turn: only the one it was sealed with opens it (GCM).
				var plain, aad []byte
				err := errors.New("no aad")
				for _, f := range c.aads {
					aad = f(r.org)
					if plain, err = s.secrets.OpenBytes(r.keyID, r.sealed, aad); err == nil {
						break
					}
				}
				if err != nil {
					return fmt.Errorf("%s %s: %w", c.table, r.id, err)
				}
				kid, sealed, err := s.secrets.SealBytes(plain, aad)
				if err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, fmt.Sprintf(`update %s set %s = $1, %s = $2 where %s::text = $3`, c.table, c.sealed, c.keyID, c.id),
					sealed, kid, r.id); err != nil {
					return err
				}
				n++
			}
		}
		_, err := tx.Exec(ctx, `insert into audit_log (actor, action, target_type, target_id, after)
			values ($1, 'secrets.rotate', 'master_key', $2, jsonb_build_object('resealed', $3::int))`, string(actor), active, n)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("rotate secrets: %w", err)
	}
	return n, nil
}
