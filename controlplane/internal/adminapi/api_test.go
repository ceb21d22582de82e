package adminapi_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/adminapi"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/cptest"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

const token = "test-admin-token"

func newServer(t *testing.T) (*httptest.Server, chi.Router) {
	t.Helper()
	srv, r, _ := newServerStore(t)
	return srv, r
}

// newServerStore is newServer that also returns its store, for tests that write rows
// the API only reads (gateways' guardrail triggers).
func newServerStore(t *testing.T) (*httptest.Server, chi.Router, *store.Store) {
	t.Helper()
	st := cptest.Store(t)
	authz := cptest.Authorizer(t, st)
	api := adminapi.New(st, authz, authz.Reload, token, slog.New(slog.DiscardHandler))
	r := chi.NewRouter()
	r.Use(middleware.RequestID)
	r.Route("/api/v1", api.Routes)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv, r, st
}

type client struct {
	t   *testing.T
	url string
}

func (c client) do(method, path, body string) (int, map[string]any) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+"/api/v1"+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		c.t.Fatalf("%s %s: body is not JSON: %q", method, path, raw)
	}
	return resp.StatusCode, out
}

// TestEveryRouteIsDocumented walks the router: a route added without an OpenAPI entry
// fails here.
func TestEveryRouteIsDocumented(t *testing.T) {
	t.Parallel()
	srv, r := newServer(t)
	resp, err := http.Get(srv.URL + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`\{[a-z]+\}`)
	n := 0
	err = chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		path := strings.TrimSuffix(strings.TrimPrefix(route, "/api/v1"), "/")
		if path == "" {
			return nil
		}
		n++
		ops, ok := doc.Paths[path]
		if !ok {
			// OpenAPI names path parameters too; compare shapes.
			for p, o := range doc.Paths {
				if param.ReplaceAllString(p, "{}") == param.ReplaceAllString(path, "{}") {
					ops, ok = o, true
				}
			}
		}
		if !ok {
			t.Errorf("route %s %s is not in openapi.json", method, path)
			return nil
		}
		if _, ok := ops[strings.ToLower(method)]; !ok {
			t.Errorf("route %s %s: method not in openapi.json", method, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("walked only %d routes", n)
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t)
	for _, h := range []string{"", "Bearer wrong", "Basic " + token, "Bearer " + token + "x"} {
		req, _ := http.NewRequest("GET", srv.URL+"/api/v1/orgs", nil)
		if h != "" {
			req.Header.Set("Authorization", h)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: status %d", h, resp.StatusCode)
		}
	}
}

func TestCRUDAndBadInput(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t)
	c := client{t, srv.URL}

	status, org := c.do("POST", "/orgs", `{"slug":"acme","name":"Acme"}`)
	if status != 201 || org["slug"] != "acme" {
		t.Fatalf("create org: %d %v", status, org)
	}
	if status, _ := c.do("POST", "/orgs/acme/teams", `{"slug":"search"}`); status != 201 {
		t.Fatalf("create team: %d", status)
	}
	if status, _ := c.do("POST", "/orgs/acme/providers", `{"name":"up","base_url":"http://127.0.0.1:9/v1","api_key":"sk-x"}`); status != 201 {
		t.Fatalf("create provider: %d", status)
	}
	if status, p := c.do("POST", "/orgs/acme/providers", `{"name":"oai","base_url":"http://127.0.0.1:9/v1","native_responses":true}`); status != 201 || p["native_responses"] != true {
		t.Fatalf("create native provider: %d %v", status, p)
	}
	if status, _ := c.do("POST", "/orgs/acme/models", `{"name":"demo","provider":"up"}`); status != 201 {
		t.Fatalf("create model: %d", status)
	}
	status, key := c.do("POST", "/orgs/acme/teams/search/keys", `{"name":"ci"}`)
	secret, _ := key["secret"].(string)
	if status != 201 || !strings.HasPrefix(secret, "gate_") {
		t.Fatalf("create key: %d %v", status, key)
	}
	status, keys := c.do("GET", "/orgs/acme/teams/search/keys", "")
	if status != 200 || strings.Contains(mustJSON(t, keys), secret) {
		t.Fatalf("list keys leaks the secret or failed: %d", status)
	}
	if status, k := c.do("POST", "/orgs/acme/teams/search/keys/"+key["id"].(string)+"/revoke", ""); status != 200 || k["revoked_at"] == nil {
		t.Fatalf("revoke: %d %v", status, k)
	}
	status, audit := c.do("GET", "/orgs/acme/audit", "")
	if status != 200 || len(audit["data"].([]any)) != 7 {
		t.Fatalf("audit: %d %v", status, audit)
	}

	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
		field                    string
	}{
		{"malformed json", "POST", "/orgs", `{"slug":`, 400, "bad_request", ""},
		{"unknown field", "POST", "/orgs", `{"slug":"x","nmae":"typo"}`, 400, "bad_request", ""},
		{"wrong type", "POST", "/orgs", `{"slug":1}`, 400, "bad_request", ""},
		{"trailing data", "POST", "/orgs", `{"slug":"x"} {}`, 400, "bad_request", ""},
		{"duplicate org", "POST", "/orgs", `{"slug":"acme"}`, 409, "conflict", "slug"},
		{"invalid slug", "POST", "/orgs", `{"slug":"NOT OK"}`, 422, "invalid", "slug"},
		{"invalid url", "POST", "/orgs/acme/providers", `{"name":"p","base_url":"javascript:alert(1)"}`, 422, "invalid", "base_url"},
		{"native responses on anthropic", "POST", "/orgs/acme/providers", `{"name":"a","type":"anthropic","base_url":"http://127.0.0.1:9","native_responses":true}`, 422, "invalid", "native_responses"},
		{"unknown provider", "POST", "/orgs/acme/models", `{"name":"m","provider":"nope"}`, 422, "invalid", "provider"},
		{"unknown org", "GET", "/orgs/nope/teams", "", 404, "not_found", ""},
		{"unknown team", "GET", "/orgs/acme/teams/nope/keys", "", 404, "not_found", ""},
		{"unknown key", "POST", "/orgs/acme/teams/search/keys/zzzzzzzzzzzz/revoke", "", 404, "not_found", ""},
		{"bad limit", "GET", "/orgs/acme/audit?limit=0", "", 400, "bad_request", "limit"},
		{"unknown route", "GET", "/nope", "", 404, "not_found", ""},
		{"wrong method", "DELETE", "/orgs", "", 405, "method_not_allowed", ""},
		{"huge body", "POST", "/orgs", `{"slug":"` + strings.Repeat("a", 2<<20) + `"}`, 413, "too_large", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := c.do(tc.method, tc.path, tc.body)
			e, _ := body["error"].(map[string]any)
			if status != tc.status || e == nil || e["code"] != tc.code {
				t.Fatalf("got %d %v, want %d %s", status, body, tc.status, tc.code)
			}
			if tc.field != "" {
				if f, _ := e["fields"].(map[string]any); f[tc.field] == nil {
					t.Fatalf("fields = %v, want %q", e["fields"], tc.field)
				}
			}
		})
	}
	// Nothing half-created: still one org.
	if _, orgs := c.do("GET", "/orgs", ""); len(orgs["data"].([]any)) != 1 {
		t.Fatalf("orgs = %v", orgs)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
