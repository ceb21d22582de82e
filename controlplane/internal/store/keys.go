package store

import (
	"context"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/keys"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store/dbq"
)

// Key is a team API key as listed: never the secret.
type Key struct {
	ID            string     `json:"id"`
	OrgID         string     `json:"org_id"`
	TeamID        string     `json:"team_id"`
	Name          string     `json:"name"`
	Display       string     `json:"display"`
	AllowedModels []string   `json:"allowed_models"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"`
	RevokedAt     *time.Time `json:"revoked_at,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
}

// NewKey describes a key to mint.
type NewKey struct {
	Name          string
	AllowedModels []string
	ExpiresAt     *time.Time
}

func keyFromRow(r dbq.ApiKey) Key {
	return Key{
		ID: r.ID, OrgID: r.OrgID, TeamID: r.TeamID, Name: r.Name, Display: keys.Display(r.ID),
		AllowedModels: r.AllowedModels, ExpiresAt: timePtr(r.ExpiresAt), RevokedAt: timePtr(r.RevokedAt),
		CreatedAt: r.CreatedAt.Time.UTC(),
	}
}

// CreateKey mints a key for team and returns it with its secret, which is not stored
// and cannot be shown again.
func (s *Store) CreateKey(ctx context.Context, actor Actor, orgID, teamID string, in NewKey) (Key, string, error) {
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" {
		return Key{}, "", invalid("name", "is required")
	}
	if in.ExpiresAt != nil && !in.ExpiresAt.After(s.now()) {
		return Key{}, "", invalid("expires_at", "must be in the future")
	}
	allowed := []string{}
	for _, m := range in.AllowedModels {
		if m = strings.TrimSpace(m); m != "" {
			allowed = append(allowed, m)
		}
	}
	minted := keys.Mint()
	var out Key
	err := s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		row, err := q.CreateKey(ctx, dbq.CreateKeyParams{
			ID: minted.ID, OrgID: orgID, TeamID: teamID, Name: in.Name,
			SecretSha256: minted.SHA256[:], AllowedModels: allowed, ExpiresAt: tsOrNull(in.ExpiresAt),
		})
		if err != nil {
			return err
		}
		out = keyFromRow(row)
		ch.targetID, ch.after = out.ID, out
		return nil
	}, change{actor: actor, orgID: orgID, action: "key.create", targetType: "key"})
	if err != nil {
		return Key{}, "", err
	}
	return out, minted.Secret, nil
}

// ListKeys lists the keys of a team, revoked ones included.
func (s *Store) ListKeys(ctx context.Context, orgID, teamID string) ([]Key, error) {
	rows, err := dbq.New(s.pool).ListKeys(ctx, dbq.ListKeysParams{OrgID: orgID, TeamID: teamID})
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]Key, len(rows))
	for i, r := range rows {
		out[i] = keyFromRow(r)
	}
	return out, nil
}

// RevokeKey revokes a key of a team. Revoking twice is not an error.
func (s *Store) RevokeKey(ctx context.Context, actor Actor, orgID, teamID, keyID string) (Key, error) {
	var out Key
	err := s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		before, err := q.GetKey(ctx, dbq.GetKeyParams{ID: keyID, OrgID: orgID})
		if err != nil {
			return err
		}
		if before.TeamID != teamID {
			return ErrNotFound
		}
		ch.before = keyFromRow(before)
		row, err := q.RevokeKey(ctx, dbq.RevokeKeyParams{ID: keyID, OrgID: orgID})
		if mapError(err) == ErrNotFound {
			row = before // already revoked
		} else if err != nil {
			return err
		}
		out = keyFromRow(row)
		ch.after = out
		return nil
	}, change{actor: actor, orgID: orgID, action: "key.revoke", targetType: "key", targetID: keyID})
	return out, err
}
