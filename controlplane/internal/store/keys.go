package store

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/keys"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store/dbq"
)

// Key is a team API key as listed: never the secret.
type Key struct {
	ID             string     `json:"id"`
	OrgID          string     `json:"org_id"`
	TeamID         string     `json:"team_id"`
	Name           string     `json:"name"`
	Display        string     `json:"display"`
	AllowedModels  []string   `json:"allowed_models"`
	AgentIdentity  string     `json:"agent_identity,omitempty"`
	AllowedTools   []string   `json:"allowed_tools"`
	AllowedAgents  []string   `json:"allowed_agents"`
	AllowedRegions []string   `json:"allowed_regions"`
	Limits         Limits     `json:"limits"`
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
	RevokedAt      *time.Time `json:"revoked_at,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
}

// NewKey describes a key to mint.
type NewKey struct {
	Name           string
	AllowedModels  []string
	AgentIdentity  string
	AllowedTools   []string
	AllowedAgents  []string
	AllowedRegions []string
	Limits         Limits
	ExpiresAt      *time.Time
}

func keyFromRow(r dbq.ApiKey) Key {
	return Key{
		ID: r.ID, OrgID: r.OrgID, TeamID: r.TeamID, Name: r.Name, Display: keys.Display(r.ID),
		AllowedModels: r.AllowedModels, AgentIdentity: r.AgentIdentity, AllowedTools: r.AllowedTools,
		AllowedAgents: r.AllowedAgents, AllowedRegions: r.AllowedRegions,
		Limits:    Limits{RPM: r.Rpm, TPM: r.Tpm, MaxConcurrent: r.MaxConcurrent},
		ExpiresAt: timePtr(r.ExpiresAt), RevokedAt: timePtr(r.RevokedAt),
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
	allowed := cleanList(in.AllowedModels)
	tools := cleanList(in.AllowedTools)
	for _, t := range tools {
		if srv, tool, ok := strings.Cut(t, "/"); !ok || !nameRE.MatchString(srv) || tool == "" {
			return Key{}, "", invalid("allowed_tools", "use server/tool or server/* (got "+t+")")
		}
	}
	agents := cleanList(in.AllowedAgents)
	regions, err := s.checkRegions(ctx, "allowed_regions", in.AllowedRegions)
	if err != nil {
		return Key{}, "", err
	}
	if err := in.Limits.validate(); err != nil {
		return Key{}, "", err
	}
	if !agentIdentityRE.MatchString(in.AgentIdentity) {
		return Key{}, "", invalid("agent_identity", "use up to 128 letters, digits and . _ : @ / -")
	}
	minted := keys.Mint()
	var out Key
	err = s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		row, err := q.CreateKey(ctx, dbq.CreateKeyParams{
			ID: minted.ID, OrgID: orgID, TeamID: teamID, Name: in.Name,
			SecretSha256: minted.SHA256[:], AllowedModels: allowed, ExpiresAt: tsOrNull(in.ExpiresAt),
			AgentIdentity: in.AgentIdentity, AllowedTools: tools, AllowedAgents: agents, AllowedRegions: regions,
		})
		if err != nil {
			return err
		}
		if in.Limits != (Limits{}) {
			if err := q.SetKeyLimits(ctx, dbq.SetKeyLimitsParams{ID: row.ID, OrgID: orgID, Rpm: in.Limits.RPM, Tpm: in.Limits.TPM, MaxConcurrent: in.Limits.MaxConcurrent}); err != nil {
				return err
			}
		}
		out = keyFromRow(row)
		out.Limits = in.Limits
		ch.targetID, ch.after = out.ID, out
		return nil
	}, change{actor: actor, orgID: orgID, action: "key.create", targetType: "key"})
	if err != nil {
		return Key{}, "", err
	}
	return out, minted.Secret, nil
}

var agentIdentityRE = regexp.MustCompile(`^[A-Za-z0-9._:@/-]{0,128}$`)

// cleanList trims, drops blanks and duplicates.
func cleanList(in []string) []string {
	out := []string{}
	for _, x := range in {
		if x = strings.TrimSpace(x); x != "" && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
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
