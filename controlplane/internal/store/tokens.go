package store

import (
	"context"
	"crypto/subtle"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/keys"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store/dbq"
	"github.com/jackc/pgx/v5"
)

// TokenPrefix starts every admin API token; it differs from team keys so a leaked
// token is recognisable and never accepted by a gateway.
const TokenPrefix = "gadm_"

// Scopes an admin API token may carry: "<object>:<action>" as the authorizer names
// them, or "*" for all the owner may do.
var Scopes = []string{"*", "org:read", "teams:read", "teams:write", "models:read", "models:write", "members:read",
	"members:write", "sso:read", "sso:write", "tokens:read", "tokens:write", "audit:read", "usage:read",
	"team:read", "team:write", "keys:read", "keys:write", "team_members:read", "team_members:write", "fleet:read"}

// APIToken is an admin API token as listed.
type APIToken struct {
	ID         string     `json:"id"`
	OrgID      string     `json:"org_id"`
	UserID     string     `json:"user_id"`
	Owner      string     `json:"owner"`
	OwnerKind  string     `json:"owner_kind"`
	Name       string     `json:"name"`
	Display    string     `json:"display"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// NewAPIToken describes a token to mint. With ServiceAccount set, the token belongs to
// a new service account of the org with role ServiceRole; otherwise to the creator.
type NewAPIToken struct {
	Name           string
	Scopes         []string
	ExpiresAt      *time.Time
	ServiceAccount bool
	ServiceRole    string
}

// CreateAPIToken mints a token in org. creatorID owns it unless in.ServiceAccount.
func (s *Store) CreateAPIToken(ctx context.Context, actor Actor, orgID, creatorID string, in NewAPIToken) (APIToken, string, error) {
	in.Name = strings.TrimSpace(in.Name)
	fields := map[string]string{}
	if in.Name == "" || len(in.Name) > 200 {
		fields["name"] = "is required (up to 200 characters)"
	}
	if len(in.Scopes) == 0 {
		fields["scopes"] = "choose at least one scope"
	}
	for _, sc := range in.Scopes {
		if !slices.Contains(Scopes, sc) {
			fields["scopes"] = "unknown scope " + sc
		}
	}
	if in.ExpiresAt != nil && !in.ExpiresAt.After(s.now()) {
		fields["expires_at"] = "must be in the future"
	}
	if in.ServiceAccount {
		if in.ServiceRole == "" {
			in.ServiceRole = "viewer"
		}
		if !slices.Contains([]string{"org_admin", "member", "viewer"}, in.ServiceRole) {
			fields["service_role"] = "must be org_admin, member or viewer"
		}
	}
	if len(fields) > 0 {
		return APIToken{}, "", &ValidationError{Fields: fields}
	}
	minted := keys.Mint()
	secret := TokenPrefix + strings.TrimPrefix(minted.Secret, keys.Prefix)
	var out APIToken
	err := s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		ownerID := creatorID
		if in.ServiceAccount {
			org, err := q.GetOrg(ctx, orgID)
			if err != nil {
				return err
			}
			u, err := q.CreateUser(ctx, dbq.CreateUserParams{
				Email: "svc-" + minted.ID + "@" + org.Slug + ".service.gatehouse", Name: in.Name, Kind: "service", OrgID: &orgID,
			})
			if err != nil {
				return err
			}
			if _, err := q.UpsertOrgMembership(ctx, dbq.UpsertOrgMembershipParams{OrgID: orgID, UserID: u.ID, Role: in.ServiceRole, Source: "manual"}); err != nil {
				return err
			}
			ownerID = u.ID
			ch.rbac = true
		}
		row, err := q.CreateAPIToken(ctx, dbq.CreateAPITokenParams{
			ID: minted.ID, UserID: ownerID, OrgID: orgID, Name: in.Name, SecretSha256: sha(secret),
			Scopes: in.Scopes, CreatedBy: nilIfEmpty(creatorID), ExpiresAt: tsOrNull(in.ExpiresAt),
		})
		if err != nil {
			return err
		}
		owner, err := q.GetUser(ctx, ownerID)
		if err != nil {
			return err
		}
		out = tokenFromRow(row, owner.Email, owner.Kind)
		ch.targetID, ch.after = out.ID, out
		return nil
	}, change{actor: actor, orgID: orgID, action: "token.create", targetType: "api_token", configless: true})
	if err != nil {
		return APIToken{}, "", err
	}
	return out, secret, nil
}

func nilIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func tokenFromRow(r dbq.ApiToken, owner, kind string) APIToken {
	return APIToken{ID: r.ID, OrgID: r.OrgID, UserID: r.UserID, Owner: owner, OwnerKind: kind, Name: r.Name,
		Display: TokenPrefix + r.ID + "_…", Scopes: r.Scopes, CreatedAt: r.CreatedAt.Time.UTC(),
		LastUsedAt: timePtr(r.LastUsedAt), ExpiresAt: timePtr(r.ExpiresAt), RevokedAt: timePtr(r.RevokedAt)}
}

// ListAPITokens lists org's tokens.
func (s *Store) ListAPITokens(ctx context.Context, orgID string) ([]APIToken, error) {
	rows, err := dbq.New(s.pool).ListAPITokens(ctx, orgID)
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]APIToken, len(rows))
	for i, r := range rows {
		out[i] = tokenFromRow(dbq.ApiToken{ID: r.ID, UserID: r.UserID, OrgID: r.OrgID, Name: r.Name, Scopes: r.Scopes,
			CreatedAt: r.CreatedAt, LastUsedAt: r.LastUsedAt, ExpiresAt: r.ExpiresAt, RevokedAt: r.RevokedAt}, r.Email, r.Kind)
	}
	return out, nil
}

// RevokeAPIToken revokes a token of org.
func (s *Store) RevokeAPIToken(ctx context.Context, actor Actor, orgID, id string) (APIToken, error) {
	var out APIToken
	err := s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		row, err := q.RevokeAPIToken(ctx, dbq.RevokeAPITokenParams{ID: id, OrgID: orgID})
		if err != nil {
			return err
		}
		out = tokenFromRow(row, "", "")
		ch.after = out
		return nil
	}, change{actor: actor, orgID: orgID, action: "token.revoke", targetType: "api_token", targetID: id, configless: true})
	return out, err
}

// TokenPrincipal is who an admin API token acts as.
type TokenPrincipal struct {
	TokenID string
	UserID  string
	Email   string
	OrgID   string
	Scopes  []string
}

// ErrTokenInvalid means a token is unknown, revoked, expired or its owner disabled.
var ErrTokenInvalid = errors.New("invalid admin token")

// ResolveAPIToken authenticates a token string.
func (s *Store) ResolveAPIToken(ctx context.Context, secret string) (TokenPrincipal, error) {
	if !strings.HasPrefix(secret, TokenPrefix) {
		return TokenPrincipal{}, ErrTokenInvalid
	}
	h := sha(secret)
	q := dbq.New(s.pool)
	r, err := q.GetAPITokenBySecret(ctx, h)
	if errors.Is(err, pgx.ErrNoRows) {
		return TokenPrincipal{}, ErrTokenInvalid
	}
	if err != nil {
		return TokenPrincipal{}, mapError(err)
	}
	if subtle.ConstantTimeCompare(r.SecretSha256, h) != 1 || r.RevokedAt.Valid || r.Disabled ||
		(r.ExpiresAt.Valid && !r.ExpiresAt.Time.After(s.now())) {
		return TokenPrincipal{}, ErrTokenInvalid
	}
	_ = q.TouchAPIToken(ctx, r.ID)
	return TokenPrincipal{TokenID: r.ID, UserID: r.UserID, Email: r.Email, OrgID: r.OrgID, Scopes: r.Scopes}, nil
}
