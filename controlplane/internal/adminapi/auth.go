package adminapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	"github.com/go-chi/chi/v5"
)

// Principal is who calls the API.
type Principal struct {
	Actor store.Actor
	// Bootstrap is the bootstrap admin token from the environment: everything allowed.
	Bootstrap bool
	UserID    string
	// OrgID limits a token to one org; Scopes to some permissions ("*" = all).
	OrgID  string
	Scopes []string
}

// Authorizer answers whether a user may act on obj in an org or team.
type Authorizer interface {
	Allowed(userID, orgID, teamID, obj, act string) bool
}

type principalKey struct{}
type scopeKey struct{}

// scope is the org and team a request addresses, resolved once by the authz middleware.
type scope struct {
	org  store.Org
	team store.Team
}

func withPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

func principal(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

func requestScope(r *http.Request) scope {
	s, _ := r.Context().Value(scopeKey{}).(scope)
	return s
}

var errUnauthenticated = &HTTPError{Status: http.StatusUnauthorized, Code: "unauthenticated", Msg: "a valid admin token is required"}

// authenticate resolves the bearer token: the bootstrap token or an admin API token.
func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		tok = strings.TrimSpace(tok)
		if !ok || tok == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse-admin"`)
			writeError(w, r, a.log, errUnauthenticated)
			return
		}
		var p *Principal
		if a.hasToken {
			sum := sha256.Sum256([]byte(tok))
			if subtle.ConstantTimeCompare(sum[:], a.adminToken[:]) == 1 {
				p = &Principal{Actor: "bootstrap-admin", Bootstrap: true}
			}
		}
		if p == nil {
			tp, err := a.store.ResolveAPIToken(r.Context(), tok)
			if err != nil {
				if !errors.Is(err, store.ErrTokenInvalid) {
					writeError(w, r, a.log, err)
					return
				}
				w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse-admin", error="invalid_token"`)
				writeError(w, r, a.log, errUnauthenticated)
				return
			}
			p = &Principal{Actor: store.Actor(tp.Email + " (token " + tp.TokenID + ")"), UserID: tp.UserID, OrgID: tp.OrgID, Scopes: tp.Scopes}
		}
		next.ServeHTTP(w, r.WithContext(withPrincipal(r.Context(), p)))
	})
}

// Objects the platform-level routes act on.
const (
	objPlatform = "platform"
	objAny      = "authenticated"
)

// can authorizes the request for obj/act in the org (and team) named by the URL,
// resolving them once for the handler. Unknown orgs and teams answer 404 only to
// callers who could see them; everyone else gets 403, so ids cannot be probed.
func (a *API) can(obj, act string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := principal(r.Context())
			forbidden := &HTTPError{Status: http.StatusForbidden, Code: "forbidden", Msg: "you may not " + act + " " + obj + " here"}
			if p == nil {
				writeError(w, r, a.log, errUnauthenticated)
				return
			}
			var sc scope
			if ref := chi.URLParam(r, "org"); ref != "" {
				org, err := a.store.ResolveOrg(r.Context(), ref)
				if err != nil {
					if errors.Is(err, store.ErrNotFound) && !p.Bootstrap {
						err = forbidden
					}
					writeError(w, r, a.log, err)
					return
				}
				sc.org = org
				if ref := chi.URLParam(r, "team"); ref != "" {
					team, err := a.store.ResolveTeam(r.Context(), org.ID, ref)
					if err != nil {
						if errors.Is(err, store.ErrNotFound) && !p.Bootstrap && !a.authz.Allowed(p.UserID, org.ID, "", "teams", "read") {
							err = forbidden
						}
						writeError(w, r, a.log, err)
						return
					}
					sc.team = team
				}
			}
			if !a.allowed(p, sc, obj, act) {
				writeError(w, r, a.log, forbidden)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), scopeKey{}, sc)))
		})
	}
}

func (a *API) allowed(p *Principal, sc scope, obj, act string) bool {
	if p.Bootstrap {
		return true
	}
	if obj == objAny {
		return true
	}
	// A token is bound to its org; platform-level routes (no org) are left to the
	// owner's platform role.
	if p.OrgID != "" && sc.org.ID != "" && sc.org.ID != p.OrgID {
		return false
	}
	if p.Scopes != nil && !scopeAllows(p.Scopes, obj, act) {
		return false
	}
	return a.authz.Allowed(p.UserID, sc.org.ID, sc.team.ID, obj, act)
}

// scopeAllows reports whether token scopes cover obj:act; write implies read.
func scopeAllows(scopes []string, obj, act string) bool {
	return slices.Contains(scopes, "*") || slices.Contains(scopes, obj+":"+act) ||
		(act == "read" && slices.Contains(scopes, obj+":write"))
}

func actor(r *http.Request) store.Actor {
	if p := principal(r.Context()); p != nil {
		return p.Actor
	}
	return "unknown"
}
