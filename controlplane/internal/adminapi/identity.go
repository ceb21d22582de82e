package adminapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	"github.com/go-chi/chi/v5"
)

// afterRBACChange reloads this replica's authorizer so the caller's next request sees
// the new roles.
func (a *API) afterRBACChange(r *http.Request) {
	if a.reload != nil {
		if err := a.reload(r.Context()); err != nil {
			a.log.Error("rbac reload after change failed", "error", err)
		}
	}
}

func (a *API) disableUser(disabled bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		u, err := a.store.SetUserDisabled(r.Context(), actor(r), chi.URLParam(r, "user"), disabled)
		if err != nil {
			return err
		}
		a.afterRBACChange(r)
		writeJSON(w, http.StatusOK, u)
		return nil
	}
}

func (a *API) listMembers(w http.ResponseWriter, r *http.Request) error {
	ms, err := a.store.ListMembers(r.Context(), requestScope(r).org.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[store.Member]{ms})
	return nil
}

type memberReq struct {
	Email string `json:"email"`
	Team  string `json:"team"`
	Role  string `json:"role"`
}

// grant resolves the optional team of a member request within the org.
func (a *API) grant(r *http.Request, team, role string) (store.Grant, error) {
	g := store.Grant{Role: role}
	if team != "" {
		t, err := a.store.ResolveTeam(r.Context(), requestScope(r).org.ID, team)
		if err != nil {
			return g, &store.ValidationError{Fields: map[string]string{"team": "no such team in this organization"}}
		}
		g.TeamID = t.ID
	}
	return g, nil
}

func (a *API) addMember(w http.ResponseWriter, r *http.Request) error {
	var in memberReq
	if err := decode(r, &in); err != nil {
		return err
	}
	g, err := a.grant(r, in.Team, in.Role)
	if err != nil {
		return err
	}
	m, err := a.store.AddMember(r.Context(), actor(r), requestScope(r).org.ID, in.Email, g)
	if err != nil {
		return err
	}
	a.afterRBACChange(r)
	writeJSON(w, http.StatusCreated, m)
	return nil
}

type roleReq struct {
	Team string `json:"team"`
	Role string `json:"role"`
}

func (a *API) setMemberRole(w http.ResponseWriter, r *http.Request) error {
	var in roleReq
	if err := decode(r, &in); err != nil {
		return err
	}
	g, err := a.grant(r, in.Team, in.Role)
	if err != nil {
		return err
	}
	m, err := a.store.SetRole(r.Context(), actor(r), requestScope(r).org.ID, chi.URLParam(r, "user"), g)
	if err != nil {
		return err
	}
	a.afterRBACChange(r)
	writeJSON(w, http.StatusOK, m)
	return nil
}

func (a *API) removeMember(w http.ResponseWriter, r *http.Request) error {
	if err := a.store.RemoveMember(r.Context(), actor(r), requestScope(r).org.ID, chi.URLParam(r, "user"), ""); err != nil {
		return err
	}
	a.afterRBACChange(r)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listTeamMembers(w http.ResponseWriter, r *http.Request) error {
	sc := requestScope(r)
	ms, err := a.store.ListMembers(r.Context(), sc.org.ID)
	if err != nil {
		return err
	}
	type teamMember struct {
		store.User
		Role   string `json:"role"`
		Source string `json:"source"`
	}
	out := []teamMember{}
	for _, m := range ms {
		for _, t := range m.TeamRoles {
			if t.TeamID == sc.team.ID {
				out = append(out, teamMember{User: m.User, Role: t.Role, Source: t.Source})
			}
		}
	}
	writeJSON(w, http.StatusOK, list[teamMember]{out})
	return nil
}

type teamMemberReq struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

func (a *API) addTeamMember(w http.ResponseWriter, r *http.Request) error {
	var in teamMemberReq
	if err := decode(r, &in); err != nil {
		return err
	}
	sc := requestScope(r)
	m, err := a.store.AddMember(r.Context(), actor(r), sc.org.ID, in.Email, store.Grant{TeamID: sc.team.ID, Role: in.Role})
	if err != nil {
		return err
	}
	a.afterRBACChange(r)
	writeJSON(w, http.StatusCreated, m)
	return nil
}

func (a *API) removeTeamMember(w http.ResponseWriter, r *http.Request) error {
	sc := requestScope(r)
	if err := a.store.RemoveMember(r.Context(), actor(r), sc.org.ID, chi.URLParam(r, "user"), sc.team.ID); err != nil {
		return err
	}
	a.afterRBACChange(r)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) getSSO(w http.ResponseWriter, r *http.Request) error {
	c, err := a.store.GetSSO(r.Context(), requestScope(r).org.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

type ssoReq struct {
	Issuer         string   `json:"issuer"`
	ClientID       string   `json:"client_id"`
	ClientSecret   string   `json:"client_secret"`
	AllowedDomains []string `json:"allowed_domains"`
	Enabled        *bool    `json:"enabled"`
	DefaultRole    string   `json:"default_role"`
}

func (a *API) putSSO(w http.ResponseWriter, r *http.Request) error {
	var in ssoReq
	if err := decode(r, &in); err != nil {
		return err
	}
	enabled := in.Enabled == nil || *in.Enabled
	c, err := a.store.SaveSSO(r.Context(), actor(r), requestScope(r).org.ID, store.SSOInput{
		Issuer: in.Issuer, ClientID: in.ClientID, ClientSecret: in.ClientSecret, AllowedDomains: in.AllowedDomains,
		Enabled: enabled, DefaultRole: in.DefaultRole,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (a *API) listMappings(w http.ResponseWriter, r *http.Request) error {
	ms, err := a.store.ListGroupMappings(r.Context(), requestScope(r).org.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[store.GroupMapping]{ms})
	return nil
}

type mappingReq struct {
	Group string `json:"group"`
	Team  string `json:"team"`
	Role  string `json:"role"`
}

func (a *API) createMapping(w http.ResponseWriter, r *http.Request) error {
	var in mappingReq
	if err := decode(r, &in); err != nil {
		return err
	}
	g, err := a.grant(r, in.Team, in.Role)
	if err != nil {
		return err
	}
	m, err := a.store.CreateGroupMapping(r.Context(), actor(r), requestScope(r).org.ID, in.Group, g)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, m)
	return nil
}

func (a *API) deleteMapping(w http.ResponseWriter, r *http.Request) error {
	if err := a.store.DeleteGroupMapping(r.Context(), actor(r), requestScope(r).org.ID, chi.URLParam(r, "mapping")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listTokens(w http.ResponseWriter, r *http.Request) error {
	ts, err := a.store.ListAPITokens(r.Context(), requestScope(r).org.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[store.APIToken]{ts})
	return nil
}

type tokenReq struct {
	Name           string     `json:"name"`
	Scopes         []string   `json:"scopes"`
	ExpiresAt      *time.Time `json:"expires_at"`
	ServiceAccount bool       `json:"service_account"`
	ServiceRole    string     `json:"service_role"`
}

type createdToken struct {
	store.APIToken
	Secret string `json:"secret"`
}

func (a *API) createToken(w http.ResponseWriter, r *http.Request) error {
	var in tokenReq
	if err := decode(r, &in); err != nil {
		return err
	}
	p := principal(r.Context())
	if !in.ServiceAccount && p.UserID == "" {
		return &store.ValidationError{Fields: map[string]string{"service_account": "the bootstrap admin can only create service account tokens"}}
	}
	tok, secret, err := a.store.CreateAPIToken(r.Context(), actor(r), requestScope(r).org.ID, p.UserID, store.NewAPIToken{
		Name: in.Name, Scopes: in.Scopes, ExpiresAt: in.ExpiresAt, ServiceAccount: in.ServiceAccount, ServiceRole: in.ServiceRole,
	})
	if err != nil {
		return err
	}
	if in.ServiceAccount {
		a.afterRBACChange(r)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, createdToken{APIToken: tok, Secret: secret})
	return nil
}

func (a *API) revokeToken(w http.ResponseWriter, r *http.Request) error {
	t, err := a.store.RevokeAPIToken(r.Context(), actor(r), requestScope(r).org.ID, chi.URLParam(r, "token"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

// auditFilter parses the audit query parameters shared by the API and the console.
func auditFilter(r *http.Request) (store.AuditFilter, error) {
	q := r.URL.Query()
	f := store.AuditFilter{Actor: strings.TrimSpace(q.Get("actor")), Action: strings.TrimSpace(q.Get("action")), TargetType: strings.TrimSpace(q.Get("target_type"))}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			if t, err = time.Parse("2006-01-02", s); err != nil {
				return f, &HTTPError{Status: http.StatusBadRequest, Code: "bad_request", Msg: "since must be a date (2006-01-02) or RFC 3339 time", Fields: map[string]string{"since": "unparseable"}}
			}
		}
		f.Since = &t
	}
	lim, err := limitParam(r, 100, 1000)
	if err != nil {
		return f, err
	}
	f.Limit = lim
	if s := q.Get("before_id"); s != "" {
		var id int64
		for _, c := range s {
			if c < '0' || c > '9' || id > 1e15 {
				return f, &HTTPError{Status: http.StatusBadRequest, Code: "bad_request", Msg: "before_id must be an integer", Fields: map[string]string{"before_id": "not an integer"}}
			}
			id = id*10 + int64(c-'0')
		}
		f.BeforeID = id
	}
	return f, nil
}
