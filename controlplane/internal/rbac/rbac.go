// Package rbac decides who may do what, with casbin. Role permissions are defined once
// in the embedded policy.csv; role assignments (org and team memberships, platform
// admins) are read from Postgres and reloaded whenever they change. It does not know
// about HTTP; routers ask it through Allowed.
package rbac

import (
	"context"
	_ "embed"
	"encoding/csv"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
)

//go:embed model.conf
var modelText string

//go:embed policy.csv
var policyText string

// Roles.
const (
	RolePlatformAdmin = "platform_admin"
	RoleOrgAdmin      = "org_admin"
	RoleTeamAdmin     = "team_admin"
	RoleMember        = "member"
	RoleViewer        = "viewer"
)

// OrgRoles and TeamRoles list the roles that can be assigned at each level.
var (
	OrgRoles  = []string{RoleOrgAdmin, RoleMember, RoleViewer}
	TeamRoles = []string{RoleTeamAdmin, RoleMember, RoleViewer}
)

// Actions.
const (
	Read  = "read"
	Write = "write"
)

// Assignment gives a user a role in a domain ("*", "org:<id>" or "team:<id>").
type Assignment struct {
	UserID string
	Role   string
	Domain string
}

// Source loads every role assignment.
type Source interface {
	RoleAssignments(ctx context.Context) ([]Assignment, error)
}

// Authorizer answers authorization questions from an enforcer rebuilt on Reload.
type Authorizer struct {
	src Source
	log *slog.Logger
	enf atomic.Pointer[casbin.SyncedEnforcer]
}

// New builds an authorizer and loads the assignments once.
func New(ctx context.Context, src Source, log *slog.Logger) (*Authorizer, error) {
	a := &Authorizer{src: src, log: log}
	if err := a.Reload(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// Reload rebuilds the enforcer from the current assignments and swaps it in.
func (a *Authorizer) Reload(ctx context.Context) error {
	m, err := model.NewModelFromString(modelText)
	if err != nil {
		return fmt.Errorf("rbac model: %w", err)
	}
	enf, err := casbin.NewSyncedEnforcer(m)
	if err != nil {
		return fmt.Errorf("rbac enforcer: %w", err)
	}
	enf.EnableAutoSave(false)
	policies, err := parsePolicy(policyText)
	if err != nil {
		return err
	}
	if _, err := enf.AddPolicies(policies); err != nil {
		return fmt.Errorf("rbac policies: %w", err)
	}
	assignments, err := a.src.RoleAssignments(ctx)
	if err != nil {
		return fmt.Errorf("rbac assignments: %w", err)
	}
	rules := make([][]string, 0, len(assignments))
	for _, as := range assignments {
		rules = append(rules, []string{Subject(as.UserID), as.Role, as.Domain})
	}
	if len(rules) > 0 {
		if _, err := enf.AddGroupingPolicies(rules); err != nil {
			return fmt.Errorf("rbac assignments: %w", err)
		}
	}
	a.enf.Store(enf)
	return nil
}

// Run reloads whenever changed signals and every interval, until ctx ends.
func (a *Authorizer) Run(ctx context.Context, changed <-chan struct{}, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
		if err := a.Reload(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("rbac reload failed; keeping the previous assignments", "error", err)
		}
	}
}

// Subject is the casbin subject of a user.
func Subject(userID string) string { return "user:" + userID }

// OrgDomain and TeamDomain name casbin domains.
func OrgDomain(orgID string) string   { return "org:" + orgID }
func TeamDomain(teamID string) string { return "team:" + teamID }

// Allowed reports whether user may act on obj in org, or in team (when teamID is set)
// — a team-level permission held in the team's org also counts.
func (a *Authorizer) Allowed(userID, orgID, teamID, obj, act string) bool {
	enf := a.enf.Load()
	sub := Subject(userID)
	if teamID != "" {
		if ok, _ := enf.Enforce(sub, TeamDomain(teamID), obj, act); ok {
			return true
		}
	}
	if orgID == "" {
		ok, _ := enf.Enforce(sub, "*", obj, act)
		return ok
	}
	ok, _ := enf.Enforce(sub, OrgDomain(orgID), obj, act)
	return ok
}

func parsePolicy(text string) ([][]string, error) {
	var out [][]string
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		rec, err := csv.NewReader(strings.NewReader(line)).Read()
		if err != nil || len(rec) != 5 || strings.TrimSpace(rec[0]) != "p" {
			return nil, fmt.Errorf("rbac policy line %d: want p, sub, dom, obj, act", i+1)
		}
		row := make([]string, 4)
		for j := range row {
			row[j] = strings.TrimSpace(rec[j+1])
		}
		out = append(out, row)
	}
	return out, nil
}
