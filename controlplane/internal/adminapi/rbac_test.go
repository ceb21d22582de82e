package adminapi_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/adminapi"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/cptest"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// Principals of the matrix. Org "acme" has teams alpha and beta; every team-scoped
// route is called against beta, so the alpha principals prove isolation between teams
// and "outsider" (admin of another org) proves isolation between orgs.
const (
	pPlatform   = "platform"
	pOrgAdmin   = "org_admin"
	pOrgViewer  = "org_viewer"
	pAlphaAdmin = "alpha_team_admin"
	pAlphaMem   = "alpha_member"
	pBetaMember = "beta_member"
	pOutsider   = "outsider"
	pScoped     = "org_admin_readonly_token"
)

var allPrincipals = []string{pPlatform, pOrgAdmin, pOrgViewer, pAlphaAdmin, pAlphaMem, pBetaMember, pOutsider, pScoped}

// Who may call each route (besides the platform admin, who may call all). Every route
// of the router must be listed: a route added without a rule fails the test.
var matrix = map[string][]string{
	"GET /orgs":                                        allPrincipals,
	"PUT /orgs/{org}/teams/{team}/limits":              {pOrgAdmin},
	"PUT /orgs/{org}/teams/{team}/log-contents":        {pOrgAdmin},
	"GET /orgs/{org}/teams/{team}/guardrails":          {pOrgAdmin, pOrgViewer, pBetaMember, pScoped},
	"POST /orgs/{org}/teams/{team}/guardrails":         {pOrgAdmin},
	"DELETE /orgs/{org}/teams/{team}/guardrails/{id}":  {pOrgAdmin},
	"GET /orgs/{org}/teams/{team}/guardrail-triggers":  {pOrgAdmin, pOrgViewer, pBetaMember, pScoped},
	"PUT /orgs/{org}/models/{id}/limits":               {pOrgAdmin},
	"PUT /orgs/{org}/models/{id}/routing":              {pOrgAdmin},
	"GET /orgs/{org}/models/{id}/deployments":          {pOrgAdmin, pOrgViewer, pAlphaAdmin, pAlphaMem, pBetaMember, pScoped},
	"POST /orgs/{org}/models/{id}/deployments":         {pOrgAdmin},
	"DELETE /orgs/{org}/models/{id}/deployments/{dep}": {pOrgAdmin},
	"GET /regions":                                    allPrincipals,
	"DELETE /orgs/{org}/providers/{id}":               {pOrgAdmin},
	"PATCH /orgs/{org}/providers/{id}":                {pOrgAdmin},
	"PATCH /orgs/{org}/models/{id}":                   {pOrgAdmin},
	"DELETE /orgs/{org}/models/{id}":                  {pOrgAdmin},
	"GET /orgs/{org}/mcp-servers":                     {pOrgAdmin, pOrgViewer, pAlphaAdmin, pAlphaMem, pBetaMember, pScoped},
	"POST /orgs/{org}/mcp-servers":                    {pOrgAdmin},
	"DELETE /orgs/{org}/mcp-servers/{id}":             {pOrgAdmin},
	"GET /orgs/{org}/agents":                          {pOrgAdmin, pOrgViewer, pAlphaAdmin, pAlphaMem, pBetaMember, pScoped},
	"POST /orgs/{org}/agents":                         {pOrgAdmin},
	"DELETE /orgs/{org}/agents/{id}":                  {pOrgAdmin},
	"GET /orgs/{org}/fleet":                           {pOrgAdmin, pOrgViewer, pScoped},
	"POST /orgs/{org}/teams/{team}/suspend":           {pOrgAdmin},
	"PUT /orgs/{org}/teams/{team}/regions":            {pOrgAdmin},
	"GET /orgs/{org}/teams/{team}/aliases":            {pOrgAdmin, pOrgViewer, pBetaMember, pScoped},
	"POST /orgs/{org}/teams/{team}/aliases":           {pOrgAdmin},
	"DELETE /orgs/{org}/teams/{team}/aliases/{alias}": {pOrgAdmin},
	"POST /orgs":                                          {},
	"POST /users/{user}/disable":                          {},
	"POST /users/{user}/enable":                           {},
	"GET /orgs/{org}":                                     {pOrgAdmin, pOrgViewer, pAlphaAdmin, pAlphaMem, pBetaMember, pScoped},
	"GET /orgs/{org}/teams":                               {pOrgAdmin, pOrgViewer, pAlphaAdmin, pAlphaMem, pBetaMember, pScoped},
	"POST /orgs/{org}/teams":                              {pOrgAdmin},
	"GET /orgs/{org}/providers":                           {pOrgAdmin, pOrgViewer, pAlphaAdmin, pAlphaMem, pBetaMember, pScoped},
	"POST /orgs/{org}/providers":                          {pOrgAdmin},
	"GET /orgs/{org}/models":                              {pOrgAdmin, pOrgViewer, pAlphaAdmin, pAlphaMem, pBetaMember, pScoped},
	"POST /orgs/{org}/models":                             {pOrgAdmin},
	"GET /orgs/{org}/members":                             {pOrgAdmin, pOrgViewer, pScoped},
	"POST /orgs/{org}/members":                            {pOrgAdmin},
	"PUT /orgs/{org}/members/{user}":                      {pOrgAdmin},
	"DELETE /orgs/{org}/members/{user}":                   {pOrgAdmin},
	"GET /orgs/{org}/sso":                                 {pOrgAdmin, pOrgViewer, pScoped},
	"PUT /orgs/{org}/sso":                                 {pOrgAdmin},
	"GET /orgs/{org}/sso/mappings":                        {pOrgAdmin, pOrgViewer, pScoped},
	"POST /orgs/{org}/sso/mappings":                       {pOrgAdmin},
	"DELETE /orgs/{org}/sso/mappings/{mapping}":           {pOrgAdmin},
	"GET /orgs/{org}/tokens":                              {pOrgAdmin, pScoped},
	"POST /orgs/{org}/tokens":                             {pOrgAdmin},
	"POST /orgs/{org}/tokens/{token}/revoke":              {pOrgAdmin},
	"GET /orgs/{org}/audit":                               {pOrgAdmin, pOrgViewer, pScoped},
	"GET /orgs/{org}/usage":                               {pOrgAdmin, pOrgViewer, pScoped},
	"GET /orgs/{org}/teams/{team}/keys":                   {pOrgAdmin, pOrgViewer, pBetaMember, pScoped},
	"POST /orgs/{org}/teams/{team}/keys":                  {pOrgAdmin, pBetaMember},
	"POST /orgs/{org}/teams/{team}/keys/{key}/revoke":     {pOrgAdmin, pBetaMember},
	"GET /orgs/{org}/teams/{team}/members":                {pOrgAdmin, pOrgViewer, pBetaMember, pScoped},
	"POST /orgs/{org}/teams/{team}/members":               {pOrgAdmin},
	"POST /orgs/{org}/teams/{team}/members/{user}/remove": {pOrgAdmin},
}

func TestRBACMatrix(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := cptest.Store(t)
	authz := cptest.Authorizer(t, st)
	api := adminapi.New(st, authz, authz.Reload, "bootstrap", slog.New(slog.DiscardHandler))
	router := chi.NewRouter()
	router.Use(middleware.RequestID)
	router.Route("/api/v1", api.Routes)
	srv := httptest.NewServer(router)
	defer srv.Close()

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	acme, err := st.CreateOrg(ctx, "test", "acme", "")
	must(err)
	other, err := st.CreateOrg(ctx, "test", "other", "")
	must(err)
	alpha, err := st.CreateTeam(ctx, "test", acme.ID, "alpha", "")
	must(err)
	beta, err := st.CreateTeam(ctx, "test", acme.ID, "beta", "")
	must(err)

	grants := map[string]struct {
		org   store.Org
		grant store.Grant
	}{
		pOrgAdmin:   {acme, store.Grant{Role: "org_admin"}},
		pScoped:     {acme, store.Grant{Role: "org_admin"}},
		pOrgViewer:  {acme, store.Grant{Role: "viewer"}},
		pAlphaAdmin: {acme, store.Grant{TeamID: alpha.ID, Role: "team_admin"}},
		pAlphaMem:   {acme, store.Grant{TeamID: alpha.ID, Role: "member"}},
		pBetaMember: {acme, store.Grant{TeamID: beta.ID, Role: "member"}},
		pOutsider:   {other, store.Grant{Role: "org_admin"}},
	}
	tokens := map[string]string{}
	for name, g := range grants {
		m, err := st.AddMember(ctx, "test", g.org.ID, name+"@example.com", g.grant)
		must(err)
		scopes := []string{"*"}
		if name == pScoped {
			scopes = []string{"org:read", "teams:read", "models:read", "members:read", "sso:read", "tokens:read", "audit:read", "usage:read", "keys:read", "team_members:read", "team:read", "fleet:read"}
		}
		_, secret, err := st.CreateAPIToken(ctx, "test", g.org.ID, m.ID, store.NewAPIToken{Name: name, Scopes: scopes})
		must(err)
		tokens[name] = secret
	}
	pa, err := st.ProvisionSSOUser(ctx, store.SSOLogin{Email: "root@platform.example", PlatformAdmin: true})
	must(err)
	_, secret, err := st.CreateAPIToken(ctx, "test", acme.ID, pa.ID, store.NewAPIToken{Name: "platform", Scopes: []string{"*"}})
	must(err)
	tokens[pPlatform] = secret
	must(authz.Reload(ctx))

	params := strings.NewReplacer("{org}", "acme", "{team}", "beta", "{key}", "zzzzzzzzzzzz",
		"{user}", "00000000-0000-0000-0000-000000000000", "{mapping}", "00000000-0000-0000-0000-000000000000", "{token}", "zzzzzzzzzzzz", "{id}", "00000000-0000-0000-0000-000000000000", "{alias}", "nope", "{dep}", "00000000-0000-0000-0000-000000000000")
	seen := map[string]bool{}
	err = chi.Walk(router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		path := strings.TrimSuffix(strings.TrimPrefix(route, "/api/v1"), "/")
		if path == "" || path == "/openapi.json" {
			return nil
		}
		key := method + " " + path
		seen[key] = true
		allowed, ok := matrix[key]
		if !ok {
			t.Errorf("route %s has no RBAC rule in the matrix", key)
			return nil
		}
		for _, who := range allPrincipals {
			req, _ := http.NewRequest(method, srv.URL+"/api/v1"+params.Replace(path), strings.NewReader("{}"))
			req.Header.Set("Authorization", "Bearer "+tokens[who])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			want := who == pPlatform || slices.Contains(allowed, who)
			got := resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusUnauthorized
			if want != got {
				t.Errorf("%s as %s: status %d, want allowed=%v", key, who, resp.StatusCode, want)
			}
		}
		return nil
	})
	must(err)
	for key := range matrix {
		if !seen[key] {
			t.Errorf("matrix lists %s, which is not a route", key)
		}
	}
}
