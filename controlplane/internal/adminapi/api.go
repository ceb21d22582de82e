// Package adminapi serves the control plane's JSON admin API under /api/v1. Handlers
// parse input, call the store and render JSON; authentication and authorization are
// middleware declared next to each route. It does not serve the console.
package adminapi

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	"github.com/go-chi/chi/v5"
)

//go:embed openapi.json
var openAPI []byte

// API is the admin API.
type API struct {
	store      *store.Store
	authz      Authorizer
	log        *slog.Logger
	adminToken [32]byte
	hasToken   bool
	// reload is called after role assignments change, so this replica's authorizer
	// sees the change before the response (others follow the Postgres notification).
	reload func(context.Context) error
}

// New returns the admin API. adminToken is the bootstrap token; empty disables it.
func New(st *store.Store, authz Authorizer, reload func(context.Context) error, adminToken string, log *slog.Logger) *API {
	a := &API{store: st, authz: authz, reload: reload, log: log}
	if adminToken != "" {
		a.adminToken, a.hasToken = sha256.Sum256([]byte(adminToken)), true
	}
	return a
}

// Routes mounts the API on r (at /api/v1). Every route names the permission it needs
// next to it: can(object, action) in the org and team of its URL.
func (a *API) Routes(r chi.Router) {
	r.Get("/openapi.json", serveOpenAPI)
	r.Group(func(r chi.Router) {
		r.Use(a.authenticate)
		r.With(a.can(objAny, "read")).Get("/orgs", a.handle(a.listOrgs))
		r.With(a.can(objAny, "read")).Get("/regions", a.handle(a.listRegions))
		r.With(a.can(objPlatform, "write")).Post("/orgs", a.handle(a.createOrg))
		r.With(a.can(objPlatform, "write")).Post("/users/{user}/disable", a.handle(a.disableUser(true)))
		r.With(a.can(objPlatform, "write")).Post("/users/{user}/enable", a.handle(a.disableUser(false)))
		r.Route("/orgs/{org}", func(r chi.Router) {
			r.With(a.can("org", "read")).Get("/", a.handle(a.getOrg))
			r.With(a.can("teams", "read")).Get("/teams", a.handle(a.listTeams))
			r.With(a.can("teams", "write")).Post("/teams", a.handle(a.createTeam))
			r.With(a.can("keys", "read")).Get("/teams/{team}/keys", a.handle(a.listKeys))
			r.With(a.can("keys", "write")).Post("/teams/{team}/keys", a.handle(a.createKey))
			r.With(a.can("keys", "write")).Post("/teams/{team}/keys/{key}/revoke", a.handle(a.revokeKey))
			r.With(a.can("team_members", "read")).Get("/teams/{team}/members", a.handle(a.listTeamMembers))
			r.With(a.can("team_members", "write")).Post("/teams/{team}/members", a.handle(a.addTeamMember))
			r.With(a.can("team_members", "write")).Post("/teams/{team}/members/{user}/remove", a.handle(a.removeTeamMember))
			r.With(a.can("team", "write")).Post("/teams/{team}/suspend", a.handle(a.suspendTeam))
			r.With(a.can("teams", "write")).Put("/teams/{team}/regions", a.handle(a.setTeamRegions))
			r.With(a.can("team", "read")).Get("/teams/{team}/aliases", a.handle(a.listAliases))
			r.With(a.can("team", "write")).Post("/teams/{team}/aliases", a.handle(a.createAlias))
			r.With(a.can("team", "write")).Delete("/teams/{team}/aliases/{alias}", a.handle(a.deleteAlias))
			r.With(a.can("models", "read")).Get("/providers", a.handle(a.listProviders))
			r.With(a.can("models", "write")).Post("/providers", a.handle(a.createProvider))
			r.With(a.can("models", "write")).Patch("/providers/{id}", a.handle(a.updateProvider))
			r.With(a.can("models", "write")).Delete("/providers/{id}", a.handle(a.deleteProvider))
			r.With(a.can("models", "read")).Get("/models", a.handle(a.listModels))
			r.With(a.can("models", "write")).Post("/models", a.handle(a.createModel))
			r.With(a.can("models", "write")).Patch("/models/{id}", a.handle(a.updateModel))
			r.With(a.can("models", "write")).Delete("/models/{id}", a.handle(a.deleteModel))
			r.With(a.can("models", "read")).Get("/mcp-servers", a.handle(a.listMCPServers))
			r.With(a.can("models", "write")).Post("/mcp-servers", a.handle(a.createMCPServer))
			r.With(a.can("models", "write")).Delete("/mcp-servers/{id}", a.handle(a.deleteMCPServer))
			r.With(a.can("models", "read")).Get("/agents", a.handle(a.listAgents))
			r.With(a.can("models", "write")).Post("/agents", a.handle(a.createAgent))
			r.With(a.can("models", "write")).Delete("/agents/{id}", a.handle(a.deleteAgent))
			r.With(a.can("fleet", "read")).Get("/fleet", a.handle(a.fleet))
			r.With(a.can("teams", "write")).Put("/teams/{team}/limits", a.handle(a.setTeamLimits))
			r.With(a.can("teams", "write")).Put("/teams/{team}/log-contents", a.handle(a.setLogContents))
			r.With(a.can("team", "read")).Get("/teams/{team}/guardrails", a.handle(a.listGuardrails))
			r.With(a.can("teams", "write")).Post("/teams/{team}/guardrails", a.handle(a.createGuardrail))
			r.With(a.can("teams", "write")).Delete("/teams/{team}/guardrails/{id}", a.handle(a.deleteGuardrail))
			r.With(a.can("team", "read")).Get("/teams/{team}/guardrail-triggers", a.handle(a.guardrailTriggers))
			r.With(a.can("models", "write")).Put("/models/{id}/limits", a.handle(a.setModelLimits))
			r.With(a.can("models", "write")).Put("/models/{id}/routing", a.handle(a.setModelRouting))
			r.With(a.can("models", "read")).Get("/models/{id}/deployments", a.handle(a.listDeployments))
			r.With(a.can("models", "write")).Post("/models/{id}/deployments", a.handle(a.createDeployment))
			r.With(a.can("models", "write")).Delete("/models/{id}/deployments/{dep}", a.handle(a.deleteDeployment))
			r.With(a.can("members", "read")).Get("/members", a.handle(a.listMembers))
			r.With(a.can("members", "write")).Post("/members", a.handle(a.addMember))
			r.With(a.can("members", "write")).Put("/members/{user}", a.handle(a.setMemberRole))
			r.With(a.can("members", "write")).Delete("/members/{user}", a.handle(a.removeMember))
			r.With(a.can("sso", "read")).Get("/sso", a.handle(a.getSSO))
			r.With(a.can("sso", "write")).Put("/sso", a.handle(a.putSSO))
			r.With(a.can("sso", "read")).Get("/sso/mappings", a.handle(a.listMappings))
			r.With(a.can("sso", "write")).Post("/sso/mappings", a.handle(a.createMapping))
			r.With(a.can("sso", "write")).Delete("/sso/mappings/{mapping}", a.handle(a.deleteMapping))
			r.With(a.can("tokens", "read")).Get("/tokens", a.handle(a.listTokens))
			r.With(a.can("tokens", "write")).Post("/tokens", a.handle(a.createToken))
			r.With(a.can("tokens", "write")).Post("/tokens/{token}/revoke", a.handle(a.revokeToken))
			r.With(a.can("audit", "read")).Get("/audit", a.handle(a.listAudit))
			r.With(a.can("usage", "read")).Get("/usage", a.handle(a.usageSummary))
		})
	})
	r.NotFound(a.handle(func(http.ResponseWriter, *http.Request) error {
		return &HTTPError{Status: http.StatusNotFound, Code: "not_found", Msg: "no such API route"}
	}))
	r.MethodNotAllowed(a.handle(func(http.ResponseWriter, *http.Request) error {
		return &HTTPError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Msg: "method not allowed on this route"}
	}))
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPI)
}

type list[T any] struct {
	Data []T `json:"data"`
}

func (a *API) listOrgs(w http.ResponseWriter, r *http.Request) error {
	p := principal(r.Context())
	var orgs []store.Org
	var err error
	switch {
	case p.Bootstrap:
		orgs, err = a.store.ListOrgs(r.Context())
	case p.OrgID != "":
		var o store.Org
		o, err = a.store.ResolveOrg(r.Context(), p.OrgID)
		orgs = []store.Org{o}
	default:
		var u store.User
		if u, err = a.store.GetUser(r.Context(), p.UserID); err == nil {
			orgs, err = a.store.OrgsForUser(r.Context(), u)
		}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[store.Org]{orgs})
	return nil
}

type createOrgReq struct {
	Slug string `json:"slug"`
	Name string `json:"name"`
}

func (a *API) createOrg(w http.ResponseWriter, r *http.Request) error {
	var in createOrgReq
	if err := decode(r, &in); err != nil {
		return err
	}
	org, err := a.store.CreateOrg(r.Context(), actor(r), in.Slug, in.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, org)
	return nil
}

func (a *API) getOrg(w http.ResponseWriter, r *http.Request) error {
	org := requestScope(r).org
	writeJSON(w, http.StatusOK, org)
	return nil
}

func (a *API) listTeams(w http.ResponseWriter, r *http.Request) error {
	org := requestScope(r).org
	teams, err := a.store.ListTeams(r.Context(), org.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[store.Team]{teams})
	return nil
}

func (a *API) createTeam(w http.ResponseWriter, r *http.Request) error {
	org := requestScope(r).org
	var in createOrgReq
	if err := decode(r, &in); err != nil {
		return err
	}
	team, err := a.store.CreateTeam(r.Context(), actor(r), org.ID, in.Slug, in.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, team)
	return nil
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request) error {
	org, team := requestScope(r).org, requestScope(r).team
	keys, err := a.store.ListKeys(r.Context(), org.ID, team.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[store.Key]{keys})
	return nil
}

type createKeyReq struct {
	Name           string       `json:"name"`
	AllowedModels  []string     `json:"allowed_models"`
	AgentIdentity  string       `json:"agent_identity"`
	AllowedTools   []string     `json:"allowed_tools"`
	AllowedAgents  []string     `json:"allowed_agents"`
	AllowedRegions []string     `json:"allowed_regions"`
	Limits         store.Limits `json:"limits"`
	ExpiresAt      *time.Time   `json:"expires_at"`
}

type createdKey struct {
	store.Key
	// Secret is shown in this response only.
	Secret string `json:"secret"`
}

func (a *API) createKey(w http.ResponseWriter, r *http.Request) error {
	org, team := requestScope(r).org, requestScope(r).team
	var in createKeyReq
	if err := decode(r, &in); err != nil {
		return err
	}
	key, secret, err := a.store.CreateKey(r.Context(), actor(r), org.ID, team.ID, store.NewKey{
		Name: in.Name, AllowedModels: in.AllowedModels, ExpiresAt: in.ExpiresAt, AgentIdentity: in.AgentIdentity,
		AllowedTools: in.AllowedTools, AllowedAgents: in.AllowedAgents, AllowedRegions: in.AllowedRegions, Limits: in.Limits,
	})
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, createdKey{Key: key, Secret: secret})
	return nil
}

func (a *API) revokeKey(w http.ResponseWriter, r *http.Request) error {
	org := requestScope(r).org
	key, err := a.store.RevokeKey(r.Context(), actor(r), org.ID, requestScope(r).team.ID, chi.URLParam(r, "key"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, key)
	return nil
}

func (a *API) listProviders(w http.ResponseWriter, r *http.Request) error {
	org := requestScope(r).org
	ps, err := a.store.ListProviders(r.Context(), org.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[store.Provider]{ps})
	return nil
}

func (a *API) listModels(w http.ResponseWriter, r *http.Request) error {
	org := requestScope(r).org
	ms, err := a.store.ListModels(r.Context(), org.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[store.Model]{ms})
	return nil
}

func (a *API) listAudit(w http.ResponseWriter, r *http.Request) error {
	f, err := auditFilter(r)
	if err != nil {
		return err
	}
	entries, err := a.store.FilterAudit(r.Context(), requestScope(r).org.ID, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[store.AuditEntry]{entries})
	return nil
}

// UsageRange parses ?range= (default 24h).
func UsageRange(r *http.Request) (time.Duration, error) {
	name := r.URL.Query().Get("range")
	if name == "" {
		name = "24h"
	}
	d, ok := store.UsageRanges[name]
	if !ok {
		return 0, &HTTPError{Status: http.StatusBadRequest, Code: "bad_request", Msg: "range must be 1h, 24h or 7d", Fields: map[string]string{"range": "unknown"}}
	}
	return d, nil
}

func (a *API) usageSummary(w http.ResponseWriter, r *http.Request) error {
	d, err := UsageRange(r)
	if err != nil {
		return err
	}
	org := requestScope(r).org
	sum, err := a.store.UsageSummary(r.Context(), org.ID)
	if err != nil {
		return err
	}
	detail, err := a.store.UsageDetail(r.Context(), org.ID, time.Now().Add(-d))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		store.UsageSummary
		Range     string                    `json:"range"`
		Breakdown []store.UsageBreakdownRow `json:"breakdown"`
		Recent    []store.UsageRecord       `json:"recent"`
	}{UsageSummary: sum, Range: d.String(), Breakdown: detail.Breakdown, Recent: detail.Recent})
	return nil
}

func limitParam(r *http.Request, def, max int32) (int32, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > int(max) {
		return 0, &HTTPError{Status: http.StatusBadRequest, Code: "bad_request", Msg: "limit must be an integer between 1 and " + strconv.Itoa(int(max)),
			Fields: map[string]string{"limit": "out of range"}}
	}
	return int32(n), nil
}
