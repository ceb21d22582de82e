// Package console serves the server-rendered console: sign-in through the org's IdP,
// the org and team switcher, teams, members, SSO settings, API tokens and the audit
// log. Handlers check the session, the CSRF token and the role next to each route,
// gather view models and render templ components from the web module; the domain work
// is the store's. It serves no JSON.
package console

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/session"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/sso"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	"github.com/gatehouse-dev/gatehouse/web"
	v "github.com/gatehouse-dev/gatehouse/web/console"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// Health reports whether the control plane's dependencies answer.
type Health interface {
	DatabaseOK(ctx context.Context) bool
	NATSOK() bool
}

// Authorizer answers whether a user may act on obj in an org or team.
type Authorizer interface {
	Allowed(userID, orgID, teamID, obj, act string) bool
}

// Config wires the console.
type Config struct {
	Store    *store.Store
	Sessions *session.Manager
	SSO      *sso.Service
	Authz    Authorizer
	// Reload refreshes the authorizer after this replica changed role assignments.
	Reload      func(context.Context) error
	Health      Health
	Version     string
	Regions     []string
	RedirectURI string
	// GatewayURL is shown in key examples (the public gateway URL of the main region).
	GatewayURL string
	Log        *slog.Logger
}

// Console serves the console.
type Console struct{ Config }

// New returns the console.
func New(cfg Config) *Console { return &Console{cfg} }

// Routes mounts every console route on r, with its permission next to it.
func (c *Console) Routes(r chi.Router) {
	static, err := fs.Sub(web.Static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	r.Handle("/static/*", http.StripPrefix("/static/", http.FileServerFS(static)))
	r.Get("/status", c.handle(c.status))
	r.Get("/login", c.handle(c.loginPage))
	r.Post("/login", c.handle(c.login))
	r.Get("/auth/callback", c.handle(c.callback))
	r.Group(func(r chi.Router) {
		r.Use(c.requireSession, c.checkCSRF)
		r.Get("/", c.handle(c.home))
		r.Post("/logout", c.handle(c.logout))
		r.Get("/console/switch", c.handle(c.switchOrg))
		r.Route("/orgs/{org}", func(r chi.Router) {
			r.With(c.can("teams", "read")).Get("/teams", c.handle(c.teams))
			r.With(c.can("teams", "write")).Post("/teams", c.handle(c.createTeam))
			r.With(c.can("members", "read")).Get("/members", c.handle(c.members))
			r.With(c.can("members", "write")).Post("/members", c.handle(c.invite))
			r.With(c.can("members", "write")).Post("/members/{user}/role", c.handle(c.setRole))
			r.With(c.can("members", "write")).Post("/members/{user}/remove", c.handle(c.removeMember))
			r.With(c.can("sso", "read")).Get("/sso", c.handle(c.ssoPage))
			r.With(c.can("sso", "write")).Post("/sso", c.handle(c.saveSSO))
			r.With(c.can("sso", "write")).Post("/sso/mappings", c.handle(c.addMapping))
			r.With(c.can("sso", "write")).Post("/sso/mappings/{mapping}/delete", c.handle(c.deleteMapping))
			r.With(c.can("tokens", "read")).Get("/tokens", c.handle(c.tokens))
			r.With(c.can("tokens", "write")).Post("/tokens", c.handle(c.createToken))
			r.With(c.can("tokens", "write")).Post("/tokens/{token}/revoke", c.handle(c.revokeToken))
			r.With(c.can("audit", "read")).Get("/audit", c.handle(c.audit))
			r.With(c.can("models", "read")).Get("/providers", c.handle(c.providers))
			r.With(c.can("models", "write")).Post("/providers", c.handle(c.createProvider))
			r.With(c.can("models", "write")).Post("/providers/{id}/delete", c.handle(c.deleteEntry("providers", c.Store.DeleteProvider)))
			r.With(c.can("models", "read")).Get("/providers/{id}", c.handle(c.provider))
			r.With(c.can("models", "write")).Post("/providers/{id}", c.handle(c.updateProvider))
			r.With(c.can("models", "read")).Get("/models", c.handle(c.models))
			r.With(c.can("models", "write")).Post("/models", c.handle(c.createModel))
			r.With(c.can("models", "write")).Post("/models/{id}/delete", c.handle(c.deleteEntry("models", c.Store.DeleteModel)))
			r.With(c.can("models", "read")).Get("/mcp", c.handle(c.mcpServers))
			r.With(c.can("models", "write")).Post("/mcp", c.handle(c.createMCPServer))
			r.With(c.can("models", "write")).Post("/mcp/{id}/delete", c.handle(c.deleteEntry("mcp", c.Store.DeleteMCPServer)))
			r.With(c.can("models", "read")).Get("/agents", c.handle(c.agents))
			r.With(c.can("models", "write")).Post("/agents", c.handle(c.createAgent))
			r.With(c.can("models", "write")).Post("/agents/{id}/delete", c.handle(c.deleteEntry("agents", c.Store.DeleteAgent)))
			r.With(c.can("fleet", "read")).Get("/fleet", c.handle(c.fleet))
			r.With(c.can("team", "read")).Get("/teams/{team}", c.handle(c.team))
			r.With(c.can("team", "write")).Post("/teams/{team}/suspend", c.handle(c.suspendTeam))
			r.With(c.can("teams", "write")).Post("/teams/{team}/regions", c.handle(c.teamRegions))
			r.With(c.can("team", "write")).Post("/teams/{team}/aliases", c.handle(c.addAlias))
			r.With(c.can("team", "write")).Post("/teams/{team}/aliases/{alias}/delete", c.handle(c.deleteAlias))
			r.With(c.can("keys", "write")).Post("/teams/{team}/keys", c.handle(c.createKey))
			r.With(c.can("keys", "write")).Post("/teams/{team}/keys/{key}/revoke", c.handle(c.revokeKey))
			r.With(c.can("teams", "write")).Post("/teams/{team}/limits", c.handle(c.teamLimits))
			r.With(c.can("teams", "write")).Post("/teams/{team}/guardrails", c.handle(c.addGuardrail))
			r.With(c.can("teams", "write")).Post("/teams/{team}/guardrails/{id}/delete", c.handle(c.deleteGuardrail))
			r.With(c.can("teams", "write")).Post("/teams/{team}/log-contents", c.handle(c.logContents))
			r.With(c.can("models", "read")).Get("/models/{id}", c.handle(c.model))
			r.With(c.can("models", "write")).Post("/models/{id}/deployments", c.handle(c.addDeployment))
			r.With(c.can("models", "write")).Post("/models/{id}/deployments/{dep}/delete", c.handle(c.deleteDeployment))
			r.With(c.can("models", "write")).Post("/models/{id}/routing", c.handle(c.modelRouting))
			r.With(c.can("models", "write")).Post("/models/{id}/limits", c.handle(c.modelLimits))
			r.With(c.can("models", "write")).Post("/models/{id}/settings", c.handle(c.modelSettings))
			r.With(c.can("usage", "read")).Get("/usage", c.handle(c.usage))
		})
	})
}

// pageError is an error shown as a friendly page with a status.
type pageError struct {
	status         int
	title, message string
	err            error
}

func (e *pageError) Error() string {
	if e.err != nil {
		return e.message + ": " + e.err.Error()
	}
	return e.message
}

func (e *pageError) Unwrap() error { return e.err }

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle renders a handler's error as a friendly page; details go to the log only.
func (c *Console) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			c.errorPage(w, r, err)
		}
	}
}

func (c *Console) errorPage(w http.ResponseWriter, r *http.Request, err error) {
	reqID := middleware.GetReqID(r.Context())
	var pe *pageError
	switch {
	case errors.As(err, &pe):
	case errors.Is(err, store.ErrNotFound):
		pe = &pageError{status: http.StatusNotFound, title: "Not found", message: "That page or item does not exist, or you cannot see it."}
	default:
		pe = &pageError{status: http.StatusInternalServerError, title: "Something went wrong", message: "The console could not complete the request. Try again; if it keeps failing, quote the request id to your administrator.", err: err}
	}
	if pe.status >= 500 {
		c.Log.Error("console error", "request_id", reqID, "path", r.URL.Path, "error", err)
	} else if pe.err != nil {
		c.Log.Info("console refused", "request_id", reqID, "status", pe.status, "error", pe.err)
	}
	c.render(w, r, pe.status, v.ErrorPage(v.ErrorView{Status: pe.status, Title: pe.title, Message: pe.message, RequestID: reqID, BackURL: "/"}))
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, comp templ.Component) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self' *")
	w.WriteHeader(status)
	if err := comp.Render(r.Context(), w); err != nil {
		c.Log.Error("render", "path", r.URL.Path, "error", err)
	}
}

type sessionKey struct{}
type orgKey struct{}
type teamKey struct{}

func currentSession(r *http.Request) *session.Session {
	s, _ := r.Context().Value(sessionKey{}).(*session.Session)
	return s
}

func currentOrg(r *http.Request) store.Org {
	o, _ := r.Context().Value(orgKey{}).(store.Org)
	return o
}

func currentTeam(r *http.Request) store.Team {
	t, _ := r.Context().Value(teamKey{}).(store.Team)
	return t
}

// requireSession sends anonymous browsers to the login page, remembering where they
// were going.
func (c *Console) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := c.Sessions.Load(r)
		if errors.Is(err, session.ErrNoSession) {
			target := "/login"
			if r.Method == http.MethodGet && r.URL.Path != "/" {
				target += "?next=" + url.QueryEscape(r.URL.RequestURI())
			}
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
		if err != nil {
			c.errorPage(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
	})
}

// checkCSRF refuses a state-changing request whose csrf_token is not the session's.
func (c *Console) checkCSRF(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if !session.CheckCSRF(currentSession(r), r.PostFormValue("csrf_token")) {
				c.errorPage(w, r, &pageError{status: http.StatusForbidden, title: "Request refused",
					message: "The form was stale or did not come from this console (missing or wrong CSRF token). Reload the page and try again."})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

var errForbidden = &pageError{status: http.StatusForbidden, title: "Not allowed", message: "Your role does not allow this. Ask an org admin if you need access."}

// can resolves the org of the URL and authorizes the signed-in user for obj/act in it.
func (c *Console) can(obj, act string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := currentSession(r)
			org, err := c.Store.ResolveOrg(r.Context(), chi.URLParam(r, "org"))
			if err != nil {
				if errors.Is(err, store.ErrNotFound) {
					err = errForbidden
				}
				c.errorPage(w, r, err)
				return
			}
			ctx := context.WithValue(r.Context(), orgKey{}, org)
			var team store.Team
			if ref := chi.URLParam(r, "team"); ref != "" {
				if team, err = c.Store.ResolveTeam(r.Context(), org.ID, ref); err != nil {
					if errors.Is(err, store.ErrNotFound) && !c.Authz.Allowed(s.UserID, org.ID, "", "teams", "read") {
						err = errForbidden
					}
					c.errorPage(w, r, err)
					return
				}
				ctx = context.WithValue(ctx, teamKey{}, team)
			}
			if !c.Authz.Allowed(s.UserID, org.ID, team.ID, obj, act) {
				c.errorPage(w, r, errForbidden)
				return
			}
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

func (c *Console) allowed(r *http.Request, obj, act string) bool {
	return c.Authz.Allowed(currentSession(r).UserID, currentOrg(r).ID, currentTeam(r).ID, obj, act)
}

// shell builds the frame of a signed-in page.
func (c *Console) shell(r *http.Request, title string, nav v.NavSection) (v.Shell, error) {
	s := currentSession(r)
	org := currentOrg(r)
	sh := v.Shell{Title: title, Nav: nav, CSRFToken: s.CSRFToken,
		User:       v.User{Name: s.Name, Email: s.Email, IsPlatformAdmin: s.PlatformAdmin},
		CurrentOrg: v.OrgRef{Slug: org.Slug, Name: org.Name}}
	orgs, err := c.Store.OrgsForUser(r.Context(), store.User{ID: s.UserID, PlatformAdmin: s.PlatformAdmin})
	if err != nil {
		return sh, err
	}
	for _, o := range orgs {
		sh.Orgs = append(sh.Orgs, v.OrgLink{ID: o.ID, Slug: o.Slug, Name: o.Name, Current: o.ID == org.ID})
	}
	if org.ID != "" {
		teams, err := c.Store.ListTeams(r.Context(), org.ID)
		if err != nil {
			return sh, err
		}
		for _, t := range teams {
			sh.Teams = append(sh.Teams, v.TeamLink{Slug: t.Slug, Name: t.Name, Current: r.URL.Query().Get("team") == t.Slug})
		}
	}
	if msg, ok := flashes[r.URL.Query().Get("done")]; ok {
		sh.Flash = v.Flash{Kind: v.FlashSuccess, Message: msg}
	}
	return sh, nil
}

// flashes are the success messages a redirect after a POST may show.
var flashes = map[string]string{
	"team":       "Team created.",
	"invited":    "Member added.",
	"role":       "Role updated.",
	"removed":    "Member removed.",
	"sso":        "SSO connection saved.",
	"mapping":    "Group mapping added.",
	"unmapped":   "Group mapping removed.",
	"revoked":    "Token revoked.",
	"signed-out": "Signed out.",
	"created":    "Saved.",
	"deleted":    "Deleted.",
	"suspended":  "Team suspended: its keys stop working on every gateway within a second.",
	"resumed":    "Team resumed.",
	"regions":    "Regions saved.",
	"alias":      "Alias added.",
	"limits":     "Limits saved.",
	"guardrail":  "Guardrail added.",
	"logging":    "Content logging updated.",
	"routing":    "Routing saved.",
	"settings":   "Settings saved. The gateways have them within a second.",
	"provider":   "Provider saved. The gateways have it within a second.",
	"unaliased":  "Alias removed.",
}

func (c *Console) done(w http.ResponseWriter, r *http.Request, section, flash string) error {
	http.Redirect(w, r, "/orgs/"+currentOrg(r).Slug+"/"+section+"?done="+flash, http.StatusSeeOther)
	return nil
}

func (c *Console) afterRBACChange(r *http.Request) {
	if c.Reload != nil {
		if err := c.Reload(r.Context()); err != nil {
			c.Log.Error("rbac reload failed", "error", err)
		}
	}
}

func actor(r *http.Request) store.Actor { return store.Actor(currentSession(r).Email) }

func (c *Console) status(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	c.render(w, r, http.StatusOK, v.Home(v.HomeView{
		Version: c.Version, DatabaseOK: c.Health.DatabaseOK(ctx), NATSOK: c.Health.NATSOK(),
		Regions: c.Regions, APIDocsPath: "/api/v1/openapi.json",
	}))
	return nil
}

// home sends a signed-in user to their first org.
func (c *Console) home(w http.ResponseWriter, r *http.Request) error {
	s := currentSession(r)
	orgs, err := c.Store.OrgsForUser(r.Context(), store.User{ID: s.UserID, PlatformAdmin: s.PlatformAdmin})
	if err != nil {
		return err
	}
	if len(orgs) == 0 {
		return &pageError{status: http.StatusOK, title: "No organization yet", message: "You are signed in, but no organization has given you a role yet. Ask an org admin to add you."}
	}
	http.Redirect(w, r, "/orgs/"+orgs[0].Slug+"/teams", http.StatusSeeOther)
	return nil
}

func (c *Console) switchOrg(w http.ResponseWriter, r *http.Request) error {
	slug := r.URL.Query().Get("org")
	org, err := c.Store.ResolveOrg(r.Context(), slug)
	if err != nil || !c.Authz.Allowed(currentSession(r).UserID, org.ID, "", "teams", "read") {
		return errForbidden
	}
	section := "teams"
	switch s := r.URL.Query().Get("section"); s {
	case "members", "sso", "tokens", "audit", "models", "mcp", "agents", "fleet", "usage":
		section = s
	}
	http.Redirect(w, r, "/orgs/"+org.Slug+"/"+section, http.StatusSeeOther)
	return nil
}

func strings2(s string) []string {
	var out []string
	for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
