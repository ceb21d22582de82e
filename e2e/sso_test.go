package e2e_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/controlplane/pgtest"
	"github.com/gatehouse-dev/gatehouse/e2e/devidp"
	"github.com/gatehouse-dev/gatehouse/e2e/stack"
)

// ssoStack runs the system with an in-process dev IdP (a real OIDC server on
// loopback whose faults the test controls) connected to the demo org.
func ssoStack(t *testing.T) (*stack.Stack, *devidp.Provider, *stack.Admin) {
	t.Helper()
	ctx := context.Background()
	secrets := stack.NewSecrets()
	idp, err := devidp.New(devidp.Options{
		Clients:     []devidp.Client{{ID: stack.IdPClientID, Secret: secrets.IdPClientSecret}},
		Users:       []devidp.User{{Email: stack.DevAdminEmail, Name: "Demo Admin", EmailVerified: true, Groups: []string{"gatehouse-admins"}}, {Email: stack.DevDeveloperEmail, EmailVerified: true, Groups: []string{"platform-developers"}}, {Email: "unverified@demo.gatehouse.dev", EmailVerified: false}},
		AutoApprove: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	idpSrv := httptest.NewServer(idp.Handler())
	t.Cleanup(idpSrv.Close)
	st, err := stack.Start(ctx, stack.Options{BinDir: binDir, StateDir: t.TempDir(), DatabaseURL: pgtest.NewURL(t), Secrets: secrets, IdPIssuer: idpSrv.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Stop)
	admin := stack.NewAdmin(st.ControlPlane, secrets.AdminToken)
	if _, err := stack.Seed(ctx, admin, st.Upstream, secrets.UpstreamAPIKey, ""); err != nil {
		t.Fatal(err)
	}
	if err := stack.SeedSSO(ctx, admin, idpSrv.URL, secrets.IdPClientSecret); err != nil {
		t.Fatal(err)
	}
	return st, idp, admin
}

// browser is a cookie-keeping HTTP client, like a browser without JavaScript.
type browser struct {
	t    *testing.T
	c    *http.Client
	base string
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar}, base: base}
}

type page struct {
	status int
	url    string
	body   string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, url: resp.Request.URL.String(), body: string(body)}
}

func (b *browser) get(path string) page {
	req, _ := http.NewRequest("GET", b.base+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) page {
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func csrf(t *testing.T, p page) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no csrf token on %s (status %d)", p.url, p.status)
	}
	return m[1]
}

// login signs in through the IdP and returns the page the browser lands on.
func (b *browser) login(email, next string) page {
	lp := b.get("/login")
	return b.post("/login", url.Values{"email": {email}, "csrf_token": {csrf(b.t, lp)}, "next": {next}})
}

func TestSSOLogin(t *testing.T) {
	st, idp, admin := ssoStack(t)
	ctx := context.Background()

	t.Run("happy path provisions the user and applies group mappings", func(t *testing.T) {
		b := newBrowser(t, st.ControlPlane)
		p := b.login(stack.DevAdminEmail, "/orgs/demo/members")
		if p.status != 200 || !strings.HasSuffix(p.url, "/orgs/demo/members") || !strings.Contains(p.body, `data-testid="members-table"`) {
			t.Fatalf("landed on %s (%d)", p.url, p.status)
		}
		var members struct {
			Data []struct {
				Email   string `json:"email"`
				OrgRole string `json:"org_role"`
				Source  string `json:"source"`
			} `json:"data"`
		}
		if err := admin.Do(ctx, "GET", "/orgs/demo/members", nil, &members); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, m := range members.Data {
			if m.Email == stack.DevAdminEmail {
				found = m.OrgRole == "org_admin" && m.Source == "sso"
			}
		}
		if !found {
			t.Fatalf("group mapping not applied: %+v", members.Data)
		}
		if !strings.Contains(p.body, stack.DevAdminEmail) {
			t.Fatal("members page does not list the signed-in admin")
		}
		// Logout ends the session.
		p = b.post("/logout", url.Values{"csrf_token": {csrf(t, p)}})
		if !strings.Contains(p.url, "/login") {
			t.Fatalf("after logout at %s", p.url)
		}
		if p = b.get("/orgs/demo/teams"); !strings.Contains(p.url, "/login") {
			t.Fatalf("session survived logout: %s", p.url)
		}
	})

	t.Run("team member from group mapping cannot administer", func(t *testing.T) {
		b := newBrowser(t, st.ControlPlane)
		p := b.login(stack.DevDeveloperEmail, "/orgs/demo/teams")
		if p.status != 200 {
			t.Fatalf("developer login: %d %s", p.status, p.url)
		}
		if strings.Contains(p.body, `data-testid="create-team"`) {
			t.Fatal("a member sees the create-team form")
		}
		if p := b.get("/orgs/demo/sso"); p.status != 403 {
			t.Fatalf("member opened SSO settings: %d", p.status)
		}
		if p := b.post("/orgs/demo/teams", url.Values{"slug": {"x"}, "csrf_token": {csrf(t, p)}}); p.status != 403 {
			t.Fatalf("member created a team: %d", p.status)
		}
		// Registry edits are for org admins.
		const someID = "00000000-0000-0000-0000-000000000000"
		for _, path := range []string{"/orgs/demo/providers/" + someID, "/orgs/demo/models/" + someID + "/settings"} {
			if p := b.post(path, url.Values{"name": {"x"}, "api_key": {"sk-x"}, "csrf_token": {csrf(t, p)}}); p.status != 403 {
				t.Fatalf("member posted %s: %d", path, p.status)
			}
		}
	})

	t.Run("registry edits need the CSRF token", func(t *testing.T) {
		b := newBrowser(t, st.ControlPlane)
		p := b.login(stack.DevAdminEmail, "/orgs/demo/providers")
		if p.status != 200 {
			t.Fatalf("admin login: %d %s", p.status, p.url)
		}
		m := regexp.MustCompile(`href="/orgs/demo/providers/([0-9a-f-]{36})"`).FindStringSubmatch(p.body)
		if m == nil {
			t.Fatal("no provider link on the providers page")
		}
		if p := b.post("/orgs/demo/providers/"+m[1], url.Values{"name": {"renamed"}, "base_url": {"http://127.0.0.1:9/v1"}}); p.status != 403 {
			t.Fatalf("provider edit without a CSRF token: %d", p.status)
		}
		if p := b.get("/orgs/demo/providers/" + m[1]); p.status != 200 || strings.Contains(p.body, "renamed") {
			t.Fatalf("provider page after the refused edit: %d", p.status)
		}
	})

	faults := []struct {
		name   string
		fault  devidp.Fault
		status int
		want   string
	}{
		{"wrong nonce", devidp.FaultWrongNonce, 502, "nonce"},
		{"expired token", devidp.FaultExpiredToken, 502, "ID token is not valid"},
		{"wrong audience", devidp.FaultWrongAudience, 502, "ID token is not valid"},
		{"bad signature", devidp.FaultBadSignature, 502, "ID token is not valid"},
		{"idp error", devidp.FaultAuthorizeError, 502, "access_denied"},
	}
	for _, tc := range faults {
		t.Run(tc.name, func(t *testing.T) {
			idp.SetFault(tc.fault)
			defer idp.SetFault(devidp.FaultNone)
			b := newBrowser(t, st.ControlPlane)
			p := b.login(stack.DevAdminEmail, "/")
			if p.status != tc.status || !strings.Contains(p.body, tc.want) || strings.Contains(p.body, "goroutine") {
				t.Fatalf("status %d, body lacks %q:\n%s", p.status, tc.want, p.body)
			}
			if p := b.get("/orgs/demo/teams"); !strings.Contains(p.url, "/login") {
				t.Fatal("a failed login left a session")
			}
		})
	}
	idp.SetFault(devidp.FaultNone)

	t.Run("wrong state", func(t *testing.T) {
		b := newBrowser(t, st.ControlPlane)
		b.c.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), st.ControlPlane+"/auth/callback") {
				return http.ErrUseLastResponse
			}
			return nil
		}
		lp := b.get("/login")
		req, _ := http.NewRequest("POST", st.ControlPlane+"/login", strings.NewReader(url.Values{"email": {stack.DevAdminEmail}, "csrf_token": {csrf(t, lp)}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		cb, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || cb.Query().Get("code") == "" {
			t.Fatalf("no callback redirect: %v", resp.Header)
		}
		q := cb.Query()
		q.Set("state", q.Get("state")+"x")
		b.c.CheckRedirect = nil
		p := b.get("/auth/callback?" + q.Encode())
		if p.status != 400 || !strings.Contains(p.body, "Sign-in expired") {
			t.Fatalf("tampered state: %d %s", p.status, p.body)
		}
		// The untouched callback in another browser (no state cookie) fails too.
		other := newBrowser(t, st.ControlPlane)
		if p := other.get("/auth/callback?" + cb.RawQuery); p.status != 400 {
			t.Fatalf("callback without the browser's state cookie: %d", p.status)
		}
	})

	t.Run("unknown domain gets a friendly page", func(t *testing.T) {
		b := newBrowser(t, st.ControlPlane)
		p := b.login("someone@unknown.example", "/")
		if p.status != 422 || !strings.Contains(p.body, "No organization signs in with unknown.example") {
			t.Fatalf("%d %s", p.status, p.body)
		}
	})

	t.Run("unverified email is refused", func(t *testing.T) {
		b := newBrowser(t, st.ControlPlane)
		if p := b.login("unverified@demo.gatehouse.dev", "/"); p.status != 403 {
			t.Fatalf("status %d", p.status)
		}
	})

	t.Run("disabled user", func(t *testing.T) {
		var members struct {
			Data []struct {
				ID    string `json:"id"`
				Email string `json:"email"`
			} `json:"data"`
		}
		if err := admin.Do(ctx, "GET", "/orgs/demo/members", nil, &members); err != nil {
			t.Fatal(err)
		}
		var id string
		for _, m := range members.Data {
			if m.Email == stack.DevAdminEmail {
				id = m.ID
			}
		}
		if id == "" {
			t.Fatal("admin not provisioned")
		}
		b := newBrowser(t, st.ControlPlane)
		if p := b.login(stack.DevAdminEmail, "/"); p.status != 200 {
			t.Fatalf("login before disabling: %d", p.status)
		}
		if err := admin.Do(ctx, "POST", "/users/"+id+"/disable", nil, nil); err != nil {
			t.Fatal(err)
		}
		defer admin.Do(ctx, "POST", "/users/"+id+"/enable", nil, nil) //nolint:errcheck // best effort
		if p := b.get("/orgs/demo/teams"); !strings.Contains(p.url, "/login") {
			t.Fatal("disabled user's session still works")
		}
		p := newBrowser(t, st.ControlPlane).login(stack.DevAdminEmail, "/")
		if p.status != 403 || !strings.Contains(p.body, "disabled") {
			t.Fatalf("disabled user signed in: %d", p.status)
		}
	})

	t.Run("csrf and open redirects", func(t *testing.T) {
		b := newBrowser(t, st.ControlPlane)
		if p := b.post("/login", url.Values{"email": {stack.DevAdminEmail}}); p.status != 403 {
			t.Fatalf("login without csrf: %d", p.status)
		}
		p := b.login(stack.DevAdminEmail, "//evil.example/steal")
		if !strings.HasPrefix(p.url, st.ControlPlane) {
			t.Fatalf("open redirect to %s", p.url)
		}
		for _, tok := range []string{"", "forged"} {
			if p := b.post("/orgs/demo/teams", url.Values{"slug": {"nope"}, "csrf_token": {tok}}); p.status != 403 {
				t.Fatalf("team created with csrf %q: %d", tok, p.status)
			}
		}
		var teams struct{ Data []stack.Object }
		if err := admin.Do(ctx, "GET", "/orgs/demo/teams", nil, &teams); err != nil {
			t.Fatal(err)
		}
		for _, tm := range teams.Data {
			if tm.Slug == "nope" {
				t.Fatal("forged request created a team")
			}
		}
	})
}
