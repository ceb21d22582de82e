package store

import (
	"context"
	"regexp"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store/dbq"
)

// Org is an organization (tenant).
type Org struct {
	ID        string    `json:"id"`
	Slug      string    `json:"slug"`
	Name      string    `json:"name"`
	Suspended bool      `json:"suspended"`
	CreatedAt time.Time `json:"created_at"`
}

// Team is a team inside an org.
type Team struct {
	ID        string   `json:"id"`
	OrgID     string   `json:"org_id"`
	Slug      string   `json:"slug"`
	Name      string   `json:"name"`
	Suspended bool     `json:"suspended"`
	Regions   []string `json:"regions"`
	Limits    Limits   `json:"limits"`
	// LogContents stores prompt and completion contents in gateway logs.
	LogContents bool      `json:"log_contents"`
	CreatedAt   time.Time `json:"created_at"`
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func orgFromRow(r dbq.Organization) Org {
	return Org{ID: r.ID, Slug: r.Slug, Name: r.Name, Suspended: r.Suspended, CreatedAt: r.CreatedAt.Time.UTC()}
}

func teamFromRow(r dbq.Team) Team {
	return Team{ID: r.ID, OrgID: r.OrgID, Slug: r.Slug, Name: r.Name, Suspended: r.Suspended, Regions: r.Regions,
		Limits: Limits{RPM: r.Rpm, TPM: r.Tpm, MaxConcurrent: r.MaxConcurrent}, LogContents: r.LogContents, CreatedAt: r.CreatedAt.Time.UTC()}
}

// CreateOrg creates an organization.
func (s *Store) CreateOrg(ctx context.Context, actor Actor, slug, name string) (Org, error) {
	slug, name = strings.TrimSpace(slug), strings.TrimSpace(name)
	if name == "" {
		name = slug
	}
	var out Org
	err := s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		row, err := q.CreateOrg(ctx, dbq.CreateOrgParams{Slug: slug, Name: name})
		if err != nil {
			return err
		}
		out = orgFromRow(row)
		ch.orgID, ch.targetID, ch.after = out.ID, out.ID, out
		return nil
	}, change{actor: actor, action: "org.create", targetType: "org"})
	return out, err
}

// ListOrgs lists every organization.
func (s *Store) ListOrgs(ctx context.Context) ([]Org, error) {
	rows, err := dbq.New(s.pool).ListOrgs(ctx)
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]Org, len(rows))
	for i, r := range rows {
		out[i] = orgFromRow(r)
	}
	return out, nil
}

// ResolveOrg finds an org by id or slug.
func (s *Store) ResolveOrg(ctx context.Context, ref string) (Org, error) {
	q := dbq.New(s.pool)
	var (
		row dbq.Organization
		err error
	)
	if uuidRE.MatchString(ref) {
		row, err = q.GetOrg(ctx, ref)
	} else {
		row, err = q.GetOrgBySlug(ctx, ref)
	}
	if err != nil {
		return Org{}, mapError(err)
	}
	return orgFromRow(row), nil
}

// CreateTeam creates a team in org.
func (s *Store) CreateTeam(ctx context.Context, actor Actor, orgID, slug, name string) (Team, error) {
	slug, name = strings.TrimSpace(slug), strings.TrimSpace(name)
	if name == "" {
		name = slug
	}
	var out Team
	err := s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		row, err := q.CreateTeam(ctx, dbq.CreateTeamParams{OrgID: orgID, Slug: slug, Name: name})
		if err != nil {
			return err
		}
		out = teamFromRow(row)
		ch.targetID, ch.after = out.ID, out
		return nil
	}, change{actor: actor, orgID: orgID, action: "team.create", targetType: "team"})
	return out, err
}

// ListTeams lists the teams of org.
func (s *Store) ListTeams(ctx context.Context, orgID string) ([]Team, error) {
	rows, err := dbq.New(s.pool).ListTeams(ctx, orgID)
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]Team, len(rows))
	for i, r := range rows {
		out[i] = teamFromRow(r)
	}
	return out, nil
}

// ResolveTeam finds a team of org by id or slug.
func (s *Store) ResolveTeam(ctx context.Context, orgID, ref string) (Team, error) {
	teams, err := s.ListTeams(ctx, orgID)
	if err != nil {
		return Team{}, err
	}
	for _, t := range teams {
		if t.ID == ref || t.Slug == ref {
			return t, nil
		}
	}
	return Team{}, ErrNotFound
}
