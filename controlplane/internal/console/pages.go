package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	v "github.com/gatehouse-dev/gatehouse/web/console"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

func requestID(r *http.Request) string { return middleware.GetReqID(r.Context()) }

// fieldErrors returns the field errors of a validation error, or nil.
func fieldErrors(err error) v.FieldErrors {
	var ve *store.ValidationError
	if errors.As(err, &ve) {
		return v.FieldErrors(ve.Fields)
	}
	return nil
}

var (
	orgRoles  = []string{"org_admin", "member", "viewer"}
	teamRoles = []string{"team_admin", "member", "viewer"}
)

func (c *Console) teamLinks(r *http.Request) ([]v.TeamLink, []store.Team, error) {
	teams, err := c.Store.ListTeams(r.Context(), currentOrg(r).ID)
	if err != nil {
		return nil, nil, err
	}
	out := make([]v.TeamLink, len(teams))
	for i, t := range teams {
		out[i] = v.TeamLink{Slug: t.Slug, Name: t.Name}
	}
	return out, teams, nil
}

// teamID resolves a team slug of the current org ("" stays "").
func (c *Console) teamID(r *http.Request, slug string) (string, error) {
	if slug == "" {
		return "", nil
	}
	t, err := c.Store.ResolveTeam(r.Context(), currentOrg(r).ID, slug)
	if err != nil {
		return "", &store.ValidationError{Fields: map[string]string{"team": "no such team"}}
	}
	return t.ID, nil
}

// Teams.

func (c *Console) teamsView(r *http.Request, form v.TeamForm) (v.TeamsView, error) {
	sh, err := c.shell(r, "Teams", v.NavTeams)
	if err != nil {
		return v.TeamsView{}, err
	}
	teams, err := c.Store.ListTeams(r.Context(), currentOrg(r).ID)
	if err != nil {
		return v.TeamsView{}, err
	}
	counts, err := c.Store.MemberCounts(r.Context(), currentOrg(r).ID)
	if err != nil {
		return v.TeamsView{}, err
	}
	view := v.TeamsView{Shell: sh, Form: form, CanCreate: c.allowed(r, "teams", "write")}
	for _, t := range teams {
		view.Teams = append(view.Teams, v.TeamRow{ID: t.ID, Slug: t.Slug, Name: t.Name, Members: counts[t.ID], Suspended: t.Suspended})
	}
	return view, nil
}

func (c *Console) teams(w http.ResponseWriter, r *http.Request) error {
	view, err := c.teamsView(r, v.TeamForm{})
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, v.Teams(view))
	return nil
}

func (c *Console) createTeam(w http.ResponseWriter, r *http.Request) error {
	form := v.TeamForm{Slug: r.PostFormValue("slug"), Name: r.PostFormValue("name")}
	_, err := c.Store.CreateTeam(r.Context(), actor(r), currentOrg(r).ID, form.Slug, form.Name)
	if fe := fieldErrors(err); fe != nil {
		form.Errors = fe
		view, err := c.teamsView(r, form)
		if err != nil {
			return err
		}
		c.render(w, r, http.StatusUnprocessableEntity, v.Teams(view))
		return nil
	}
	if err != nil {
		return err
	}
	return c.done(w, r, "teams", "team")
}

// Members.

func (c *Console) membersView(r *http.Request, invite v.InviteForm) (v.MembersView, error) {
	sh, err := c.shell(r, "Members", v.NavMembers)
	if err != nil {
		return v.MembersView{}, err
	}
	links, _, err := c.teamLinks(r)
	if err != nil {
		return v.MembersView{}, err
	}
	members, err := c.Store.ListMembers(r.Context(), currentOrg(r).ID)
	if err != nil {
		return v.MembersView{}, err
	}
	view := v.MembersView{Shell: sh, Teams: links, Roles: orgRoles, TeamRoles: teamRoles, Invite: invite, CanManage: c.allowed(r, "members", "write")}
	for _, m := range members {
		row := v.MemberRow{UserID: m.ID, Email: m.Email, Name: m.Name, OrgRole: m.OrgRole, Disabled: m.Disabled, Source: v.SourceManual}
		if m.Source == "sso" {
			row.Source = v.SourceSSOGroup
		}
		for _, t := range m.TeamRoles {
			row.Teams = append(row.Teams, v.MemberTeamRole{TeamSlug: t.TeamSlug, TeamName: t.TeamName, Role: t.Role})
		}
		view.Members = append(view.Members, row)
	}
	return view, nil
}

func (c *Console) members(w http.ResponseWriter, r *http.Request) error {
	view, err := c.membersView(r, v.InviteForm{Role: "member"})
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, v.Members(view))
	return nil
}

func (c *Console) invite(w http.ResponseWriter, r *http.Request) error {
	form := v.InviteForm{Email: r.PostFormValue("email"), Team: r.PostFormValue("team"), Role: r.PostFormValue("role")}
	teamID, err := c.teamID(r, form.Team)
	if err == nil {
		_, err = c.Store.AddMember(r.Context(), actor(r), currentOrg(r).ID, form.Email, store.Grant{TeamID: teamID, Role: form.Role})
	}
	if fe := fieldErrors(err); fe != nil {
		form.Errors = fe
		view, err := c.membersView(r, form)
		if err != nil {
			return err
		}
		c.render(w, r, http.StatusUnprocessableEntity, v.Members(view))
		return nil
	}
	if err != nil {
		return err
	}
	c.afterRBACChange(r)
	return c.done(w, r, "members", "invited")
}

func (c *Console) setRole(w http.ResponseWriter, r *http.Request) error {
	teamID, err := c.teamID(r, r.PostFormValue("team"))
	if err == nil {
		_, err = c.Store.SetRole(r.Context(), actor(r), currentOrg(r).ID, chi.URLParam(r, "user"), store.Grant{TeamID: teamID, Role: r.PostFormValue("role")})
	}
	if fe := fieldErrors(err); fe != nil {
		return &pageError{status: http.StatusUnprocessableEntity, title: "Role not changed", message: "That role cannot be given here: " + firstMessage(fe)}
	}
	if err != nil {
		return err
	}
	c.afterRBACChange(r)
	return c.done(w, r, "members", "role")
}

// expiresIn turns the forms' "expires in N days" field into a time (nil = never).
func expiresIn(days string) (*time.Time, error) {
	if days == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(days)
	if err != nil || n < 1 || n > 3650 {
		return nil, &store.ValidationError{Fields: map[string]string{"expires_in_days": "must be a number of days between 1 and 3650"}}
	}
	exp := time.Now().Add(time.Duration(n) * 24 * time.Hour)
	return &exp, nil
}

func firstMessage(fe v.FieldErrors) string {
	keys := make([]string, 0, len(fe))
	for k := range fe {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys[0] + " " + fe[keys[0]]
}

func (c *Console) removeMember(w http.ResponseWriter, r *http.Request) error {
	teamID, err := c.teamID(r, r.PostFormValue("team"))
	if err != nil {
		return &pageError{status: http.StatusUnprocessableEntity, title: "Not removed", message: "No such team."}
	}
	if err := c.Store.RemoveMember(r.Context(), actor(r), currentOrg(r).ID, chi.URLParam(r, "user"), teamID); err != nil {
		return err
	}
	c.afterRBACChange(r)
	return c.done(w, r, "members", "removed")
}

// SSO.

func (c *Console) ssoView(r *http.Request, conn *v.SSOForm, mapping v.MappingForm) (v.SSOView, error) {
	sh, err := c.shell(r, "Single sign-on", v.NavSSO)
	if err != nil {
		return v.SSOView{}, err
	}
	links, _, err := c.teamLinks(r)
	if err != nil {
		return v.SSOView{}, err
	}
	view := v.SSOView{Shell: sh, RedirectURI: c.RedirectURI, MappingForm: mapping, Teams: links,
		Roles: append(slices.Clone(orgRoles), "team_admin"), CanManage: c.allowed(r, "sso", "write")}
	if conn != nil {
		view.Conn = *conn
	} else {
		existing, err := c.Store.GetSSO(r.Context(), currentOrg(r).ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			view.Conn = v.SSOForm{Enabled: true}
		case err != nil:
			return v.SSOView{}, err
		default:
			view.Conn = v.SSOForm{Issuer: existing.Issuer, ClientID: existing.ClientID, HasSecret: existing.HasSecret,
				AllowedDomains: joinComma(existing.AllowedDomains), Enabled: existing.Enabled}
		}
	}
	mappings, err := c.Store.ListGroupMappings(r.Context(), currentOrg(r).ID)
	if err != nil {
		return v.SSOView{}, err
	}
	for _, m := range mappings {
		view.Mappings = append(view.Mappings, v.GroupMappingRow{ID: m.ID, Group: m.Group, TeamSlug: m.TeamSlug, TeamName: m.TeamName, Role: m.Role})
	}
	return view, nil
}

func joinComma(s []string) string {
	var b bytes.Buffer
	for i, x := range s {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(x)
	}
	return b.String()
}

func (c *Console) ssoPage(w http.ResponseWriter, r *http.Request) error {
	view, err := c.ssoView(r, nil, v.MappingForm{})
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, v.SSO(view))
	return nil
}

func (c *Console) saveSSO(w http.ResponseWriter, r *http.Request) error {
	form := v.SSOForm{Issuer: r.PostFormValue("issuer"), ClientID: r.PostFormValue("client_id"),
		AllowedDomains: r.PostFormValue("allowed_domains"), Enabled: r.PostFormValue("enabled") != ""}
	_, err := c.Store.SaveSSO(r.Context(), actor(r), currentOrg(r).ID, store.SSOInput{
		Issuer: form.Issuer, ClientID: form.ClientID, ClientSecret: r.PostFormValue("client_secret"),
		AllowedDomains: strings2(form.AllowedDomains), Enabled: form.Enabled,
	})
	if fe := fieldErrors(err); fe != nil {
		if existing, err := c.Store.GetSSO(r.Context(), currentOrg(r).ID); err == nil {
			form.HasSecret = existing.HasSecret
		}
		form.Errors = fe
		view, err := c.ssoView(r, &form, v.MappingForm{})
		if err != nil {
			return err
		}
		c.render(w, r, http.StatusUnprocessableEntity, v.SSO(view))
		return nil
	}
	if err != nil {
		return err
	}
	return c.done(w, r, "sso", "sso")
}

func (c *Console) addMapping(w http.ResponseWriter, r *http.Request) error {
	form := v.MappingForm{Group: r.PostFormValue("group"), Team: r.PostFormValue("team"), Role: r.PostFormValue("role")}
	teamID, err := c.teamID(r, form.Team)
	if err == nil {
		_, err = c.Store.CreateGroupMapping(r.Context(), actor(r), currentOrg(r).ID, form.Group, store.Grant{TeamID: teamID, Role: form.Role})
	}
	if fe := fieldErrors(err); fe != nil {
		form.Errors = fe
		view, err := c.ssoView(r, nil, form)
		if err != nil {
			return err
		}
		c.render(w, r, http.StatusUnprocessableEntity, v.SSO(view))
		return nil
	}
	if err != nil {
		return err
	}
	return c.done(w, r, "sso", "mapping")
}

func (c *Console) deleteMapping(w http.ResponseWriter, r *http.Request) error {
	if err := c.Store.DeleteGroupMapping(r.Context(), actor(r), currentOrg(r).ID, chi.URLParam(r, "mapping")); err != nil {
		return err
	}
	return c.done(w, r, "sso", "unmapped")
}

// Tokens.

func (c *Console) tokensView(r *http.Request, form v.TokenForm, secret string) (v.TokensView, error) {
	sh, err := c.shell(r, "API tokens", v.NavTokens)
	if err != nil {
		return v.TokensView{}, err
	}
	tokens, err := c.Store.ListAPITokens(r.Context(), currentOrg(r).ID)
	if err != nil {
		return v.TokensView{}, err
	}
	view := v.TokensView{Shell: sh, Form: form, NewSecret: secret, CanManage: c.allowed(r, "tokens", "write")}
	for _, s := range store.Scopes {
		view.AvailableScopes = append(view.AvailableScopes, v.ScopeOption{Value: s, Label: scopeLabel(s)})
	}
	now := time.Now()
	for _, t := range tokens {
		row := v.TokenRow{ID: t.ID, Name: t.Name, Prefix: t.Display, Scopes: t.Scopes, Owner: t.Owner,
			CreatedAt: t.CreatedAt.Format("2006-01-02 15:04"), Revoked: t.RevokedAt != nil}
		if t.OwnerKind == "service" {
			row.Owner = "service account " + t.Name
		}
		if t.LastUsedAt != nil {
			row.LastUsedAt = t.LastUsedAt.Format("2006-01-02 15:04")
		}
		if t.ExpiresAt != nil {
			row.ExpiresAt = t.ExpiresAt.Format("2006-01-02")
			row.Expired = !t.ExpiresAt.After(now)
		}
		view.Tokens = append(view.Tokens, row)
	}
	return view, nil
}

func scopeLabel(s string) string {
	if s == "*" {
		return "Everything your role allows"
	}
	return s
}

func (c *Console) tokens(w http.ResponseWriter, r *http.Request) error {
	view, err := c.tokensView(r, v.TokenForm{}, "")
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, v.Tokens(view))
	return nil
}

func (c *Console) createToken(w http.ResponseWriter, r *http.Request) error {
	if err := c.parseForm(r); err != nil {
		return err
	}
	form := v.TokenForm{Name: r.PostFormValue("name"), Scopes: r.PostForm["scopes"], ServiceAccount: r.PostFormValue("service_account") != "",
		ExpiresInDays: r.PostFormValue("expires_in_days")}
	in := store.NewAPIToken{Name: form.Name, Scopes: form.Scopes, ServiceAccount: form.ServiceAccount}
	var err error
	in.ExpiresAt, err = expiresIn(form.ExpiresInDays)
	var secret string
	if err == nil {
		_, secret, err = c.Store.CreateAPIToken(r.Context(), actor(r), currentOrg(r).ID, currentSession(r).UserID, in)
	}
	if fe := fieldErrors(err); fe != nil {
		form.Errors = fe
		view, err := c.tokensView(r, form, "")
		if err != nil {
			return err
		}
		c.render(w, r, http.StatusUnprocessableEntity, v.Tokens(view))
		return nil
	}
	if err != nil {
		return err
	}
	if in.ServiceAccount {
		c.afterRBACChange(r)
	}
	view, err := c.tokensView(r, v.TokenForm{}, secret)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusCreated, v.Tokens(view))
	return nil
}

func (c *Console) revokeToken(w http.ResponseWriter, r *http.Request) error {
	if _, err := c.Store.RevokeAPIToken(r.Context(), actor(r), currentOrg(r).ID, chi.URLParam(r, "token")); err != nil {
		return err
	}
	return c.done(w, r, "tokens", "revoked")
}

// Audit.

func (c *Console) audit(w http.ResponseWriter, r *http.Request) error {
	sh, err := c.shell(r, "Audit log", v.NavAudit)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	filter := v.AuditFilter{Actor: q.Get("actor"), Action: q.Get("action"), TargetType: q.Get("target_type"), Since: q.Get("since")}
	f := store.AuditFilter{Actor: filter.Actor, Action: filter.Action, TargetType: filter.TargetType, Limit: 50}
	if filter.Since != "" {
		t, err := time.Parse("2006-01-02", filter.Since)
		if err != nil {
			return &pageError{status: http.StatusBadRequest, title: "Bad filter", message: "Since must be a date like 2026-01-31."}
		}
		f.Since = &t
	}
	if b := q.Get("before_id"); b != "" {
		id, err := strconv.ParseInt(b, 10, 64)
		if err != nil || id < 1 {
			return &pageError{status: http.StatusBadRequest, title: "Bad page", message: "The page link is malformed."}
		}
		f.BeforeID = id
	}
	entries, err := c.Store.FilterAudit(r.Context(), currentOrg(r).ID, f)
	if err != nil {
		return err
	}
	view := v.AuditView{Shell: sh, Filter: filter}
	for _, e := range entries {
		view.Entries = append(view.Entries, v.AuditRow{ID: strconv.FormatInt(e.ID, 10), At: e.At, Actor: e.Actor, Action: e.Action,
			TargetType: e.TargetType, TargetID: e.TargetID, Before: pretty(e.Before), After: pretty(e.After)})
	}
	if len(entries) == int(f.Limit) {
		next := url.Values{}
		for k, val := range map[string]string{"actor": filter.Actor, "action": filter.Action, "target_type": filter.TargetType, "since": filter.Since} {
			if val != "" {
				next.Set(k, val)
			}
		}
		next.Set("before_id", strconv.FormatInt(entries[len(entries)-1].ID, 10))
		view.NextURL = "/orgs/" + currentOrg(r).Slug + "/audit?" + next.Encode()
	}
	c.render(w, r, http.StatusOK, v.Audit(view))
	return nil
}

func pretty(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return string(raw)
	}
	return b.String()
}
