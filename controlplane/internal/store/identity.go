package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/rbac"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store/dbq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// ErrUserDisabled means the user exists but may not sign in or act.
var ErrUserDisabled = errors.New("user disabled")

// User is a person or a service account.
type User struct {
	ID            string     `json:"id"`
	Email         string     `json:"email"`
	Name          string     `json:"name"`
	Kind          string     `json:"kind"`
	PlatformAdmin bool       `json:"platform_admin"`
	Disabled      bool       `json:"disabled"`
	CreatedAt     time.Time  `json:"created_at"`
	LastLoginAt   *time.Time `json:"last_login_at,omitempty"`
}

func userFromRow(r dbq.User) User {
	return User{ID: r.ID, Email: r.Email, Name: r.Name, Kind: r.Kind, PlatformAdmin: r.PlatformAdmin,
		Disabled: r.Disabled, CreatedAt: r.CreatedAt.Time.UTC(), LastLoginAt: timePtr(r.LastLoginAt)}
}

// NormalizeEmail lower-cases and trims an email and checks its shape.
func NormalizeEmail(email string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	at := strings.LastIndexByte(e, '@')
	if at < 1 || at == len(e)-1 || strings.ContainsAny(e, " \t\r\n<>\"") || !strings.Contains(e[at:], ".") || len(e) > 320 {
		return "", invalid("email", "must be an email address")
	}
	return e, nil
}

// EmailDomain returns the domain of a normalized email.
func EmailDomain(email string) string { return email[strings.LastIndexByte(email, '@')+1:] }

// GetUser returns a user by id.
func (s *Store) GetUser(ctx context.Context, id string) (User, error) {
	row, err := dbq.New(s.pool).GetUser(ctx, id)
	if err != nil {
		return User{}, mapError(err)
	}
	return userFromRow(row), nil
}

// SetUserDisabled disables or re-enables a user; disabling also revokes their sessions.
func (s *Store) SetUserDisabled(ctx context.Context, actor Actor, userID string, disabled bool) (User, error) {
	var out User
	err := s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		before, err := q.GetUser(ctx, userID)
		if err != nil {
			return err
		}
		row, err := q.SetUserDisabled(ctx, dbq.SetUserDisabledParams{ID: userID, Disabled: disabled})
		if err != nil {
			return err
		}
		if disabled {
			if err := q.RevokeUserSessions(ctx, userID); err != nil {
				return err
			}
		}
		out = userFromRow(row)
		ch.targetID, ch.before, ch.after = userID, userFromRow(before), out
		return nil
	}, change{actor: actor, action: "user.disable", targetType: "user", configless: true, rbac: true})
	return out, err
}

// SSOLogin is what an IdP told us about a user signing in to an org (OrgID empty =
// the platform IdP).
type SSOLogin struct {
	OrgID         string
	Email         string
	Name          string
	Groups        []string
	PlatformAdmin bool
}

// ProvisionSSOUser creates the user on first login (just in time), refuses disabled
// users, and re-applies the org's group mappings: SSO-sourced memberships are replaced
// by what the groups grant now (the connection's default role when none matches);
// manual memberships are left alone.
func (s *Store) ProvisionSSOUser(ctx context.Context, in SSOLogin) (User, error) {
	email, err := NormalizeEmail(in.Email)
	if err != nil {
		return User{}, err
	}
	var out User
	err = s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		row, err := q.GetUserByEmail(ctx, email)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			row, err = q.CreateUser(ctx, dbq.CreateUserParams{Email: email, Name: in.Name, Kind: "human", PlatformAdmin: in.PlatformAdmin})
			if err != nil {
				return err
			}
			ch.action = "user.provision"
		case err != nil:
			return err
		}
		if row.Disabled {
			return ErrUserDisabled
		}
		if row.Kind != "human" {
			return ErrUserDisabled
		}
		row, err = q.UpdateUserLogin(ctx, dbq.UpdateUserLoginParams{ID: row.ID, Column2: in.Name, Column3: in.PlatformAdmin})
		if err != nil {
			return err
		}
		out = userFromRow(row)
		ch.targetID, ch.after = out.ID, out
		if in.OrgID == "" {
			return nil
		}
		return s.applyGroups(ctx, q, ch, in.OrgID, out.ID, in.Groups)
	}, change{actor: Actor(email), orgID: in.OrgID, action: "user.login", targetType: "user", configless: true, rbac: true})
	return out, err
}

// membershipView is how memberships appear in the audit log.
type membershipView struct {
	OrgRole   string            `json:"org_role,omitempty"`
	TeamRoles map[string]string `json:"team_roles,omitempty"`
}

func (s *Store) applyGroups(ctx context.Context, q *dbq.Queries, ch *change, orgID, userID string, groups []string) error {
	conn, err := q.GetSSOConnection(ctx, orgID)
	if err != nil {
		return err
	}
	ch.before = s.membershipOf(ctx, q, orgID, userID)
	if err := q.DeleteSSOMemberships(ctx, dbq.DeleteSSOMembershipsParams{OrgID: orgID, UserID: userID}); err != nil {
		return err
	}
	mappings, err := q.MappingsForGroups(ctx, dbq.MappingsForGroupsParams{OrgID: orgID, Column2: groups})
	if err != nil {
		return err
	}
	orgRole := conn.DefaultRole
	for _, m := range mappings {
		if m.TeamID == nil && roleRank(m.Role) > roleRank(orgRole) {
			orgRole = m.Role
		}
	}
	existing, err := q.GetOrgMembership(ctx, dbq.GetOrgMembershipParams{OrgID: orgID, UserID: userID})
	if err == nil && existing.Source == "manual" {
		// A manual org role wins over SSO; team roles below still apply.
	} else if _, err := q.UpsertOrgMembership(ctx, dbq.UpsertOrgMembershipParams{OrgID: orgID, UserID: userID, Role: orgRole, Source: "sso"}); err != nil {
		return err
	}
	best := map[string]string{}
	for _, m := range mappings {
		if m.TeamID != nil && roleRank(m.Role) > roleRank(best[*m.TeamID]) {
			best[*m.TeamID] = m.Role
		}
	}
	for teamID, role := range best {
		if _, err := q.UpsertTeamMembership(ctx, dbq.UpsertTeamMembershipParams{TeamID: teamID, OrgID: orgID, UserID: userID, Role: role, Source: "sso"}); err != nil {
			return err
		}
	}
	ch.after = s.membershipOf(ctx, q, orgID, userID)
	return nil
}

func (s *Store) membershipOf(ctx context.Context, q *dbq.Queries, orgID, userID string) membershipView {
	var v membershipView
	if m, err := q.GetOrgMembership(ctx, dbq.GetOrgMembershipParams{OrgID: orgID, UserID: userID}); err == nil {
		v.OrgRole = m.Role
	}
	rows, err := q.ListTeamMembershipsForOrg(ctx, orgID)
	if err == nil {
		for _, r := range rows {
			if r.UserID == userID {
				if v.TeamRoles == nil {
					v.TeamRoles = map[string]string{}
				}
				v.TeamRoles[r.TeamSlug] = r.Role
			}
		}
	}
	return v
}

// roleRank orders roles so the strongest grant wins when several groups map.
func roleRank(role string) int {
	switch role {
	case "org_admin", "team_admin":
		return 3
	case "member":
		return 2
	case "viewer":
		return 1
	}
	return 0
}

// Member is a user's place in an org.
type Member struct {
	User
	OrgRole   string       `json:"org_role"`
	Source    string       `json:"source"`
	TeamRoles []MemberTeam `json:"team_roles"`
}

// MemberTeam is a member's role in one team.
type MemberTeam struct {
	TeamID   string `json:"team_id"`
	TeamSlug string `json:"team_slug"`
	TeamName string `json:"team_name"`
	Role     string `json:"role"`
	Source   string `json:"source"`
}

// ListMembers lists the org's members with their team roles.
func (s *Store) ListMembers(ctx context.Context, orgID string) ([]Member, error) {
	q := dbq.New(s.pool)
	rows, err := q.ListOrgMembers(ctx, orgID)
	if err != nil {
		return nil, mapError(err)
	}
	teams, err := q.ListTeamMembershipsForOrg(ctx, orgID)
	if err != nil {
		return nil, mapError(err)
	}
	byUser := map[string][]MemberTeam{}
	for _, t := range teams {
		byUser[t.UserID] = append(byUser[t.UserID], MemberTeam{TeamID: t.TeamID, TeamSlug: t.TeamSlug, TeamName: t.TeamName, Role: t.Role, Source: t.Source})
	}
	out := make([]Member, len(rows))
	for i, r := range rows {
		out[i] = Member{User: User{ID: r.ID, Email: r.Email, Name: r.Name, Kind: r.Kind, Disabled: r.Disabled},
			OrgRole: r.Role, Source: r.Source, TeamRoles: byUser[r.ID]}
		if out[i].TeamRoles == nil {
			out[i].TeamRoles = []MemberTeam{}
		}
	}
	return out, nil
}

// MemberCounts returns the number of members of each team of org.
func (s *Store) MemberCounts(ctx context.Context, orgID string) (map[string]int, error) {
	rows, err := dbq.New(s.pool).MemberCounts(ctx, orgID)
	if err != nil {
		return nil, mapError(err)
	}
	out := map[string]int{}
	for _, r := range rows {
		out[r.TeamID] = int(r.N)
	}
	return out, nil
}

// Grant describes a role to give: an org role when TeamID is empty, else a team role.
type Grant struct {
	TeamID string
	Role   string
}

func validateGrant(g Grant) error {
	roles := []string{"org_admin", "member", "viewer"}
	if g.TeamID != "" {
		roles = []string{"team_admin", "member", "viewer"}
	}
	if !slices.Contains(roles, g.Role) {
		return invalid("role", "must be one of "+strings.Join(roles, ", "))
	}
	return nil
}

// AddMember invites a person by email (creating the user if needed; they sign in
// through SSO later) and grants them a role. A team role also makes them an org member.
func (s *Store) AddMember(ctx context.Context, actor Actor, orgID, email string, g Grant) (Member, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return Member{}, err
	}
	if err := validateGrant(g); err != nil {
		return Member{}, err
	}
	var userID string
	err = s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		u, err := q.GetUserByEmail(ctx, email)
		if errors.Is(err, pgx.ErrNoRows) {
			u, err = q.CreateUser(ctx, dbq.CreateUserParams{Email: email, Kind: "human"})
		}
		if err != nil {
			return err
		}
		if u.Kind != "human" {
			return invalid("email", "is a service account")
		}
		userID = u.ID
		ch.targetID, ch.before = u.ID, s.membershipOf(ctx, q, orgID, u.ID)
		if err := s.grant(ctx, q, orgID, u.ID, g); err != nil {
			return err
		}
		ch.after = s.membershipOf(ctx, q, orgID, u.ID)
		return nil
	}, change{actor: actor, orgID: orgID, action: "member.add", targetType: "user", configless: true, rbac: true})
	if err != nil {
		return Member{}, err
	}
	return s.member(ctx, orgID, userID)
}

func (s *Store) grant(ctx context.Context, q *dbq.Queries, orgID, userID string, g Grant) error {
	if g.TeamID == "" {
		_, err := q.UpsertOrgMembership(ctx, dbq.UpsertOrgMembershipParams{OrgID: orgID, UserID: userID, Role: g.Role, Source: "manual"})
		return err
	}
	if _, err := q.GetOrgMembership(ctx, dbq.GetOrgMembershipParams{OrgID: orgID, UserID: userID}); errors.Is(err, pgx.ErrNoRows) {
		if _, err := q.UpsertOrgMembership(ctx, dbq.UpsertOrgMembershipParams{OrgID: orgID, UserID: userID, Role: "member", Source: "manual"}); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	_, err := q.UpsertTeamMembership(ctx, dbq.UpsertTeamMembershipParams{TeamID: g.TeamID, OrgID: orgID, UserID: userID, Role: g.Role, Source: "manual"})
	return err
}

// SetRole changes a member's org role or team role.
func (s *Store) SetRole(ctx context.Context, actor Actor, orgID, userID string, g Grant) (Member, error) {
	if err := validateGrant(g); err != nil {
		return Member{}, err
	}
	err := s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		if _, err := q.GetOrgMembership(ctx, dbq.GetOrgMembershipParams{OrgID: orgID, UserID: userID}); err != nil {
			return err
		}
		ch.before = s.membershipOf(ctx, q, orgID, userID)
		if err := s.grant(ctx, q, orgID, userID, g); err != nil {
			return err
		}
		ch.after = s.membershipOf(ctx, q, orgID, userID)
		return nil
	}, change{actor: actor, orgID: orgID, action: "member.role", targetType: "user", targetID: userID, configless: true, rbac: true})
	if err != nil {
		return Member{}, err
	}
	return s.member(ctx, orgID, userID)
}

// RemoveMember removes a member from a team, or from the org (and all its teams) when
// teamID is empty.
func (s *Store) RemoveMember(ctx context.Context, actor Actor, orgID, userID, teamID string) error {
	return s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		ch.before = s.membershipOf(ctx, q, orgID, userID)
		var n int64
		var err error
		if teamID == "" {
			n, err = q.DeleteOrgMembership(ctx, dbq.DeleteOrgMembershipParams{OrgID: orgID, UserID: userID})
		} else {
			n, err = q.DeleteTeamMembership(ctx, dbq.DeleteTeamMembershipParams{TeamID: teamID, UserID: userID})
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		ch.after = s.membershipOf(ctx, q, orgID, userID)
		return nil
	}, change{actor: actor, orgID: orgID, action: "member.remove", targetType: "user", targetID: userID, configless: true, rbac: true})
}

func (s *Store) member(ctx context.Context, orgID, userID string) (Member, error) {
	members, err := s.ListMembers(ctx, orgID)
	if err != nil {
		return Member{}, err
	}
	for _, m := range members {
		if m.ID == userID {
			return m, nil
		}
	}
	return Member{}, ErrNotFound
}

// OrgsForUser lists the orgs a user belongs to (every org for platform admins).
func (s *Store) OrgsForUser(ctx context.Context, u User) ([]Org, error) {
	if u.PlatformAdmin {
		return s.ListOrgs(ctx)
	}
	rows, err := dbq.New(s.pool).ListOrgsForUser(ctx, u.ID)
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]Org, len(rows))
	for i, r := range rows {
		out[i] = orgFromRow(r)
	}
	return out, nil
}

// RoleAssignments lists every role assignment: platform admins, org and team roles.
func (s *Store) RoleAssignments(ctx context.Context) ([]rbac.Assignment, error) {
	q := dbq.New(s.pool)
	var out []rbac.Assignment
	admins, err := q.ListPlatformAdmins(ctx)
	if err != nil {
		return nil, mapError(err)
	}
	for _, id := range admins {
		out = append(out, rbac.Assignment{UserID: id, Role: "platform_admin", Domain: "*"})
	}
	orgs, err := q.ListAllOrgMemberships(ctx)
	if err != nil {
		return nil, mapError(err)
	}
	for _, m := range orgs {
		out = append(out, rbac.Assignment{UserID: m.UserID, Role: m.Role, Domain: "org:" + m.OrgID})
	}
	teams, err := q.ListAllTeamMemberships(ctx)
	if err != nil {
		return nil, mapError(err)
	}
	for _, m := range teams {
		out = append(out, rbac.Assignment{UserID: m.UserID, Role: m.Role, Domain: "team:" + m.TeamID})
	}
	return out, nil
}

func sha(b string) []byte {
	s := sha256.Sum256([]byte(b))
	return s[:]
}

func ts(t time.Time) pgtype.Timestamptz { return pgtype.Timestamptz{Time: t, Valid: true} }
