// Package adminapi serves the control plane's JSON admin API under /api/v1. Handlers
// parse input, call the store and render JSON; authentication and authorization are
// middleware declared next to each route. It does not serve the console.
package adminapi

import (
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	"github.com/go-chi/chi/v5"
)

//go:embed openapi.json
var openAPI []byte

// API is the admin API.
type API struct {
	store      *store.Store
	log        *slog.Logger
	adminToken [32]byte
	hasToken   bool
}

// New returns the admin API. adminToken is the bootstrap token; empty disables it.
func New(st *store.Store, adminToken string, log *slog.Logger) *API {
	a := &API{store: st, log: log}
	if adminToken != "" {
		a.adminToken, a.hasToken = sha256.Sum256([]byte(adminToken)), true
	}
	return a
}

// Permission names what a route needs. Today only the bootstrap admin holds any; the
// identity work maps roles to permissions per org and team.
type Permission string

// Permissions used by routes.
const (
	PermPlatformRead  Permission = "platform:read"
	PermPlatformWrite Permission = "platform:write"
	PermOrgRead       Permission = "org:read"
	PermOrgWrite      Permission = "org:write"
	PermKeysWrite     Permission = "keys:write"
)

// Routes mounts the API on r (at /api/v1).
func (a *API) Routes(r chi.Router) {
	r.Get("/openapi.json", serveOpenAPI)
	r.Group(func(r chi.Router) {
		r.Use(a.authenticate)
		r.With(a.can(PermPlatformRead)).Get("/orgs", a.handle(a.listOrgs))
		r.With(a.can(PermPlatformWrite)).Post("/orgs", a.handle(a.createOrg))
		r.Route("/orgs/{org}", func(r chi.Router) {
			r.With(a.can(PermOrgRead)).Get("/", a.handle(a.getOrg))
			r.With(a.can(PermOrgRead)).Get("/teams", a.handle(a.listTeams))
			r.With(a.can(PermOrgWrite)).Post("/teams", a.handle(a.createTeam))
			r.With(a.can(PermOrgRead)).Get("/teams/{team}/keys", a.handle(a.listKeys))
			r.With(a.can(PermKeysWrite)).Post("/teams/{team}/keys", a.handle(a.createKey))
			r.With(a.can(PermKeysWrite)).Post("/keys/{key}/revoke", a.handle(a.revokeKey))
			r.With(a.can(PermOrgRead)).Get("/providers", a.handle(a.listProviders))
			r.With(a.can(PermOrgWrite)).Post("/providers", a.handle(a.createProvider))
			r.With(a.can(PermOrgRead)).Get("/models", a.handle(a.listModels))
			r.With(a.can(PermOrgWrite)).Post("/models", a.handle(a.createModel))
			r.With(a.can(PermOrgRead)).Get("/audit", a.handle(a.listAudit))
			r.With(a.can(PermOrgRead)).Get("/usage", a.handle(a.usageSummary))
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

type principalKey struct{}

// Principal is who calls the API.
type Principal struct {
	Actor store.Actor
	// Platform is true for the bootstrap admin, which may do everything.
	Platform bool
}

// authenticate resolves the bearer token to a principal or answers 401.
func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !a.hasToken {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse-admin"`)
			writeError(w, r, a.log, &HTTPError{Status: http.StatusUnauthorized, Code: "unauthenticated", Msg: "a valid admin token is required"})
			return
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if subtle.ConstantTimeCompare(sum[:], a.adminToken[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse-admin", error="invalid_token"`)
			writeError(w, r, a.log, &HTTPError{Status: http.StatusUnauthorized, Code: "unauthenticated", Msg: "a valid admin token is required"})
			return
		}
		p := &Principal{Actor: "bootstrap-admin", Platform: true}
		next.ServeHTTP(w, r.WithContext(withPrincipal(r.Context(), p)))
	})
}

// can authorizes the principal for perm.
func (a *API) can(perm Permission) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := principal(r.Context())
			if p == nil || !p.Platform {
				writeError(w, r, a.log, &HTTPError{Status: http.StatusForbidden, Code: "forbidden", Msg: "not allowed: " + string(perm)})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func actor(r *http.Request) store.Actor {
	if p := principal(r.Context()); p != nil {
		return p.Actor
	}
	return "unknown"
}

func (a *API) org(r *http.Request) (store.Org, error) {
	return a.store.ResolveOrg(r.Context(), chi.URLParam(r, "org"))
}

func (a *API) team(r *http.Request) (store.Org, store.Team, error) {
	org, err := a.org(r)
	if err != nil {
		return store.Org{}, store.Team{}, err
	}
	team, err := a.store.ResolveTeam(r.Context(), org.ID, chi.URLParam(r, "team"))
	return org, team, err
}

type list[T any] struct {
	Data []T `json:"data"`
}

func (a *API) listOrgs(w http.ResponseWriter, r *http.Request) error {
	orgs, err := a.store.ListOrgs(r.Context())
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
	org, err := a.org(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, org)
	return nil
}

func (a *API) listTeams(w http.ResponseWriter, r *http.Request) error {
	org, err := a.org(r)
	if err != nil {
		return err
	}
	teams, err := a.store.ListTeams(r.Context(), org.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[store.Team]{teams})
	return nil
}

func (a *API) createTeam(w http.ResponseWriter, r *http.Request) error {
	org, err := a.org(r)
	if err != nil {
		return err
	}
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
	org, team, err := a.team(r)
	if err != nil {
		return err
	}
	keys, err := a.store.ListKeys(r.Context(), org.ID, team.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[store.Key]{keys})
	return nil
}

type createKeyReq struct {
	Name          string     `json:"name"`
	AllowedModels []string   `json:"allowed_models"`
	ExpiresAt     *time.Time `json:"expires_at"`
}

type createdKey struct {
	store.Key
	// Secret is shown in this response only.
	Secret string `json:"secret"`
}

func (a *API) createKey(w http.ResponseWriter, r *http.Request) error {
	org, team, err := a.team(r)
	if err != nil {
		return err
	}
	var in createKeyReq
	if err := decode(r, &in); err != nil {
		return err
	}
	key, secret, err := a.store.CreateKey(r.Context(), actor(r), org.ID, team.ID, store.NewKey{
		Name: in.Name, AllowedModels: in.AllowedModels, ExpiresAt: in.ExpiresAt,
	})
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, createdKey{Key: key, Secret: secret})
	return nil
}

func (a *API) revokeKey(w http.ResponseWriter, r *http.Request) error {
	org, err := a.org(r)
	if err != nil {
		return err
	}
	key, err := a.store.RevokeKey(r.Context(), actor(r), org.ID, chi.URLParam(r, "key"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, key)
	return nil
}

func (a *API) listProviders(w http.ResponseWriter, r *http.Request) error {
	org, err := a.org(r)
	if err != nil {
		return err
	}
	ps, err := a.store.ListProviders(r.Context(), org.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[store.Provider]{ps})
	return nil
}

type createProviderReq struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	BaseURL string `json:"base_url"`
	APIKey  string `json:"api_key"`
}

func (a *API) createProvider(w http.ResponseWriter, r *http.Request) error {
	org, err := a.org(r)
	if err != nil {
		return err
	}
	var in createProviderReq
	if err := decode(r, &in); err != nil {
		return err
	}
	p, err := a.store.CreateProvider(r.Context(), actor(r), org.ID, store.NewProvider(in))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, p)
	return nil
}

func (a *API) listModels(w http.ResponseWriter, r *http.Request) error {
	org, err := a.org(r)
	if err != nil {
		return err
	}
	ms, err := a.store.ListModels(r.Context(), org.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[store.Model]{ms})
	return nil
}

type createModelReq struct {
	Name                          string `json:"name"`
	Provider                      string `json:"provider"`
	UpstreamModel                 string `json:"upstream_model"`
	InputPricePerMTokMicros       int64  `json:"input_price_per_mtok_micros"`
	OutputPricePerMTokMicros      int64  `json:"output_price_per_mtok_micros"`
	CachedInputPricePerMTokMicros int64  `json:"cached_input_price_per_mtok_micros"`
}

func (a *API) createModel(w http.ResponseWriter, r *http.Request) error {
	org, err := a.org(r)
	if err != nil {
		return err
	}
	var in createModelReq
	if err := decode(r, &in); err != nil {
		return err
	}
	m, err := a.store.CreateModel(r.Context(), actor(r), org.ID, store.NewModel(in))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, m)
	return nil
}

func (a *API) listAudit(w http.ResponseWriter, r *http.Request) error {
	org, err := a.org(r)
	if err != nil {
		return err
	}
	limit, err := limitParam(r, 100, 1000)
	if err != nil {
		return err
	}
	entries, err := a.store.ListAudit(r.Context(), org.ID, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[store.AuditEntry]{entries})
	return nil
}

func (a *API) usageSummary(w http.ResponseWriter, r *http.Request) error {
	org, err := a.org(r)
	if err != nil {
		return err
	}
	sum, err := a.store.UsageSummary(r.Context(), org.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sum)
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
