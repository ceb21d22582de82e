package devidp

import (
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

const (
	testClientID     = "gatehouse-test"
	testClientSecret = "s3cret/with+odd=chars"
	// testRedirect is never listened on: the browser stops before following it.
	testRedirect = "http://127.0.0.1:9/auth/callback"
)

var (
	alice = User{Subject: "alice-1", Email: "alice@example.test", Name: "Alice Admin", EmailVerified: true, Groups: []string{"gatehouse-admins", "ops"}}
	bob   = User{Subject: "bob-2", Email: "bob@example.test", Name: "Bob Builder", Groups: []string{"platform-developers"}}
)

// harness is a provider behind httptest, with the real go-oidc and x/oauth2
// clients pointed at it.
type harness struct {
	p        *Provider
	url      string
	op       *oidc.Provider
	conf     oauth2.Config
	verifier *oidc.IDTokenVerifier
	browser  *http.Client
	// clockOffset shifts the provider's clock (not the verifier's).
	clockOffset *atomic.Int64
}

type harnessConfig struct {
	opts Options
	// explicitIssuer sets Options.Issuer to the server URL instead of
	// letting the provider derive it from Host.
	explicitIssuer bool
	authStyle      oauth2.AuthStyle
	redirect       string
}

func newHarness(t *testing.T, hc harnessConfig) *harness {
	t.Helper()
	o := hc.opts
	if o.Clients == nil {
		o.Clients = []Client{{ID: testClientID, Secret: testClientSecret}}
	}
	if o.Users == nil {
		o.Users = []User{alice, bob}
	}
	if hc.redirect == "" {
		hc.redirect = testRedirect
	}
	offset := new(atomic.Int64)
	o.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }

	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String()
	if hc.explicitIssuer {
		o.Issuer = issuer
	}
	p, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv.Config.Handler = p.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	if srv.URL != issuer {
		t.Fatalf("server URL %q, want %q", srv.URL, issuer)
	}

	op, err := oidc.NewProvider(t.Context(), srv.URL)
	if err != nil {
		t.Fatalf("oidc discovery: %v", err)
	}
	ep := op.Endpoint()
	ep.AuthStyle = hc.authStyle
	redirect, err := url.Parse(hc.redirect)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{
		p:   p,
		url: srv.URL,
		op:  op,
		conf: oauth2.Config{
			ClientID:     testClientID,
			ClientSecret: testClientSecret,
			Endpoint:     ep,
			RedirectURL:  hc.redirect,
			Scopes:       []string{oidc.ScopeOpenID, "email", "profile", "groups"},
		},
		verifier: op.Verifier(&oidc.Config{ClientID: testClientID}),
		browser: &http.Client{
			Timeout: 10 * time.Second,
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if sameEndpoint(req.URL, redirect) {
					return http.ErrUseLastResponse
				}
				if len(via) >= 10 {
					return errors.New("too many redirects")
				}
				return nil
			},
		},
		clockOffset: offset,
	}
}

// sameEndpoint reports whether a and b differ at most in query and fragment.
func sameEndpoint(a, b *url.URL) bool {
	return a.Scheme == b.Scheme && a.Host == b.Host && a.Path == b.Path
}

// page is a browser response with its body read.
type page struct {
	status   int
	location string
	body     string
}

func (h *harness) get(t *testing.T, u string) page {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h.do(t, req)
}

func (h *harness) postForm(t *testing.T, u string, form url.Values) page {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return h.do(t, req)
}

func (h *harness) do(t *testing.T, req *http.Request) page {
	t.Helper()
	resp, err := h.browser.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return page{status: resp.StatusCode, location: resp.Header.Get("Location"), body: string(body)}
}

// callback asserts that pg redirected to the client and returns the query.
func (h *harness) callback(t *testing.T, pg page) url.Values {
	t.Helper()
	u, err := url.Parse(pg.location)
	if err != nil {
		t.Fatal(err)
	}
	want, err := url.Parse(h.conf.RedirectURL)
	if err != nil {
		t.Fatal(err)
	}
	if pg.status != http.StatusFound || !sameEndpoint(u, want) {
		t.Fatalf("got %d Location %q, want a redirect to %s\n%s", pg.status, pg.location, h.conf.RedirectURL, pg.body)
	}
	for k, vs := range want.Query() {
		if !cmp.Equal(u.Query()[k], vs) {
			t.Errorf("callback lost the redirect URI's own parameter %s=%v", k, vs)
		}
	}
	return u.Query()
}

// authFlow is one client-side authorization attempt.
type authFlow struct {
	state, nonce, verifier string
}

func newAuthFlow() authFlow {
	return authFlow{state: oauth2.GenerateVerifier()[:16], nonce: oauth2.GenerateVerifier()[:20], verifier: oauth2.GenerateVerifier()}
}

func (f authFlow) authURL(h *harness, loginHint string) string {
	return h.conf.AuthCodeURL(f.state, oidc.Nonce(f.nonce), oauth2.S256ChallengeOption(f.verifier),
		oauth2.SetAuthURLParam("login_hint", loginHint))
}

// login runs an auto-approved authorization and returns the code.
func (h *harness) login(t *testing.T, f authFlow, email string) string {
	t.Helper()
	q := h.callback(t, h.get(t, f.authURL(h, email)))
	if got := q.Get("state"); got != f.state {
		t.Fatalf("state = %q, want %q", got, f.state)
	}
	if q.Get("code") == "" {
		t.Fatalf("no code in callback: %v", q)
	}
	return q.Get("code")
}

func (h *harness) exchange(t *testing.T, f authFlow, code string) (*oauth2.Token, string) {
	t.Helper()
	tok, err := h.conf.Exchange(t.Context(), code, oauth2.VerifierOption(f.verifier))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("token response without id_token")
	}
	return tok, raw
}

type profileClaims struct {
	Email         string   `json:"email"`
	EmailVerified bool     `json:"email_verified"`
	Name          string   `json:"name"`
	Groups        []string `json:"groups"`
}

func TestHappyPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		hc   harnessConfig
	}{
		{name: "derived issuer, auth style probed", hc: harnessConfig{}},
		{name: "explicit issuer, client_secret_basic", hc: harnessConfig{explicitIssuer: true, authStyle: oauth2.AuthStyleInHeader}},
		{name: "client_secret_post", hc: harnessConfig{authStyle: oauth2.AuthStyleInParams}},
		{
			name: "registered redirect URI",
			hc: harnessConfig{
				opts:     Options{Clients: []Client{{ID: testClientID, Secret: testClientSecret, RedirectURIs: []string{"https://gatehouse.example/oidc/callback?org=acme"}}}},
				redirect: "https://gatehouse.example/oidc/callback?org=acme",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.hc.opts.AutoApprove = true
			h := newHarness(t, tt.hc)
			f := newAuthFlow()
			code := h.login(t, f, "Alice@Example.test")
			tok, raw := h.exchange(t, f, code)

			if tok.TokenType != "Bearer" || tok.AccessToken == "" {
				t.Errorf("token type %q, access token %q", tok.TokenType, tok.AccessToken)
			}
			if until := time.Until(tok.Expiry); until < 4*time.Minute || until > 5*time.Minute {
				t.Errorf("access token expires in %v, want about 5m", until)
			}
			idt, err := h.verifier.Verify(t.Context(), raw)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if idt.Issuer != h.url || idt.Subject != alice.Subject || idt.Nonce != f.nonce {
				t.Errorf("iss %q sub %q nonce %q, want %q %q %q", idt.Issuer, idt.Subject, idt.Nonce, h.url, alice.Subject, f.nonce)
			}
			if diff := cmp.Diff([]string{testClientID}, idt.Audience); diff != "" {
				t.Errorf("aud (-want +got):\n%s", diff)
			}
			if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
				t.Errorf("at_hash: %v", err)
			}
			want := profileClaims{Email: alice.Email, EmailVerified: true, Name: alice.Name, Groups: alice.Groups}
			var got profileClaims
			if err := idt.Claims(&got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("ID token claims (-want +got):\n%s", diff)
			}
			var extra struct {
				AuthTime int64 `json:"auth_time"`
			}
			if err := idt.Claims(&extra); err != nil || extra.AuthTime == 0 {
				t.Errorf("auth_time = %d, err %v", extra.AuthTime, err)
			}

			ui, err := h.op.UserInfo(t.Context(), oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatalf("UserInfo: %v", err)
			}
			got = profileClaims{}
			if err := ui.Claims(&got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" || ui.Subject != alice.Subject {
				t.Errorf("userinfo sub %q, claims (-want +got):\n%s", ui.Subject, diff)
			}
		})
	}
}

func TestDiscovery(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessConfig{})
	var got map[string]any
	if err := h.op.Claims(&got); err != nil {
		t.Fatal(err)
	}
	list := func(s ...string) []any {
		out := make([]any, len(s))
		for i, v := range s {
			out[i] = v
		}
		return out
	}
	want := map[string]any{
		"issuer":                                h.url,
		"authorization_endpoint":                h.url + "/authorize",
		"token_endpoint":                        h.url + "/token",
		"jwks_uri":                              h.url + "/jwks",
		"userinfo_endpoint":                     h.url + "/userinfo",
		"end_session_endpoint":                  h.url + "/logout",
		"response_types_supported":              list("code"),
		"grant_types_supported":                 list("authorization_code"),
		"subject_types_supported":               list("public"),
		"id_token_signing_alg_values_supported": list("RS256"),
		"scopes_supported":                      list("openid", "email", "profile", "groups"),
		"claims_supported": list("iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash",
			"email", "email_verified", "name", "groups"),
		"code_challenge_methods_supported":      list("S256"),
		"token_endpoint_auth_methods_supported": list("client_secret_basic", "client_secret_post"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("discovery (-want +got):\n%s", diff)
	}

	pg := h.get(t, h.url+"/jwks")
	if pg.status != http.StatusOK || !strings.Contains(pg.body, `"kid":"`+h.p.kid+`"`) || !strings.Contains(pg.body, `"alg":"RS256"`) {
		t.Errorf("GET /jwks = %d %s", pg.status, pg.body)
	}
	if strings.Contains(pg.body, `"d":`) {
		t.Error("JWKS leaks the private exponent")
	}
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessConfig{opts: Options{
		AutoApprove: true,
		Clients: []Client{
			{ID: testClientID, Secret: testClientSecret},
			{ID: "other-client", Secret: "other-secret"},
		},
	}})
	tests := []struct {
		name string
		// exchange redeems a fresh, valid code in some wrong way.
		exchange   func(t *testing.T, f authFlow, code string) error
		wantCode   string
		wantStatus int
	}{
		{
			name: "PKCE verifier mismatch",
			exchange: func(t *testing.T, _ authFlow, code string) error {
				_, err := h.conf.Exchange(t.Context(), code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
				return err
			},
			wantCode: "invalid_grant", wantStatus: http.StatusBadRequest,
		},
		{
			name: "PKCE verifier missing",
			exchange: func(t *testing.T, _ authFlow, code string) error {
				_, err := h.conf.Exchange(t.Context(), code)
				return err
			},
			wantCode: "invalid_grant", wantStatus: http.StatusBadRequest,
		},
		{
			name: "code reused",
			exchange: func(t *testing.T, f authFlow, code string) error {
				tok, _ := h.exchange(t, f, code)
				_, err := h.conf.Exchange(t.Context(), code, oauth2.VerifierOption(f.verifier))
				// The replay revokes the access token the code bought.
				if _, uerr := h.op.UserInfo(t.Context(), oauth2.StaticTokenSource(tok)); uerr == nil {
					t.Error("access token still valid at /userinfo after code replay")
				}
				return err
			},
			wantCode: "invalid_grant", wantStatus: http.StatusBadRequest,
		},
		{
			name: "wrong client secret",
			exchange: func(t *testing.T, f authFlow, code string) error {
				conf := h.conf
				conf.ClientSecret = "wrong"
				_, err := conf.Exchange(t.Context(), code, oauth2.VerifierOption(f.verifier))
				return err
			},
			wantCode: "invalid_client", wantStatus: http.StatusUnauthorized,
		},
		{
			name: "unknown client",
			exchange: func(t *testing.T, f authFlow, code string) error {
				conf := h.conf
				conf.ClientID = "nobody"
				_, err := conf.Exchange(t.Context(), code, oauth2.VerifierOption(f.verifier))
				return err
			},
			wantCode: "invalid_client", wantStatus: http.StatusUnauthorized,
		},
		{
			name: "code of another client",
			exchange: func(t *testing.T, f authFlow, code string) error {
				conf := h.conf
				conf.ClientID, conf.ClientSecret = "other-client", "other-secret"
				_, err := conf.Exchange(t.Context(), code, oauth2.VerifierOption(f.verifier))
				return err
			},
			wantCode: "invalid_grant", wantStatus: http.StatusBadRequest,
		},
		{
			name: "redirect_uri differs",
			exchange: func(t *testing.T, f authFlow, code string) error {
				conf := h.conf
				conf.RedirectURL = "http://127.0.0.1:9/other"
				_, err := conf.Exchange(t.Context(), code, oauth2.VerifierOption(f.verifier))
				return err
			},
			wantCode: "invalid_grant", wantStatus: http.StatusBadRequest,
		},
		{
			name: "unknown code",
			exchange: func(t *testing.T, f authFlow, _ string) error {
				_, err := h.conf.Exchange(t.Context(), "not-a-code", oauth2.VerifierOption(f.verifier))
				return err
			},
			wantCode: "invalid_grant", wantStatus: http.StatusBadRequest,
		},
		{
			name: "unsupported grant type",
			exchange: func(t *testing.T, _ authFlow, _ string) error {
				_, err := h.conf.PasswordCredentialsToken(t.Context(), alice.Email, "password")
				return err
			},
			wantCode: "unsupported_grant_type", wantStatus: http.StatusBadRequest,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newAuthFlow()
			err := tt.exchange(t, f, h.login(t, f, bob.Email))
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v, want an *oauth2.RetrieveError", err)
			}
			if re.ErrorCode != tt.wantCode || re.Response.StatusCode != tt.wantStatus {
				t.Errorf("got %d %q (%s), want %d %q", re.Response.StatusCode, re.ErrorCode, re.ErrorDescription, tt.wantStatus, tt.wantCode)
			}
		})
	}
}

func TestCodeExpires(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessConfig{opts: Options{AutoApprove: true}})
	f := newAuthFlow()
	code := h.login(t, f, alice.Email)
	h.clockOffset.Store(int64(61 * time.Second))
	_, err := h.conf.Exchange(t.Context(), code, oauth2.VerifierOption(f.verifier))
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("Exchange of a 61s old code: %v, want invalid_grant", err)
	}
}

func TestAuthorizeErrorPages(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessConfig{opts: Options{
		AutoApprove: true,
		Clients: []Client{
			{ID: testClientID, Secret: testClientSecret},
			{ID: "registered", Secret: "x", RedirectURIs: []string{"http://127.0.0.1:9/cb"}},
		},
	}})
	valid := func() url.Values {
		f := newAuthFlow()
		u, err := url.Parse(f.authURL(h, alice.Email))
		if err != nil {
			t.Fatal(err)
		}
		return u.Query()
	}
	tests := []struct {
		name   string
		modify func(url.Values)
	}{
		{name: "unknown client", modify: func(v url.Values) { v.Set("client_id", "nobody") }},
		{name: "missing redirect_uri", modify: func(v url.Values) { v.Del("redirect_uri") }},
		{name: "non-loopback redirect", modify: func(v url.Values) { v.Set("redirect_uri", "https://evil.example/cb") }},
		{name: "https loopback redirect", modify: func(v url.Values) { v.Set("redirect_uri", "https://127.0.0.1:9/cb") }},
		{name: "lookalike host", modify: func(v url.Values) { v.Set("redirect_uri", "http://localhost.evil.example/cb") }},
		{
			name: "unregistered redirect",
			modify: func(v url.Values) {
				v.Set("client_id", "registered")
				v.Set("redirect_uri", "http://127.0.0.1:9/cb/other")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := valid()
			tt.modify(v)
			pg := h.get(t, h.url+"/authorize?"+v.Encode())
			if pg.status != http.StatusBadRequest || pg.location != "" {
				t.Fatalf("got %d Location %q, want 400 and no redirect", pg.status, pg.location)
			}
			if !strings.Contains(pg.body, `data-testid="error"`) {
				t.Errorf("no error message on page:\n%s", pg.body)
			}
		})
	}
}

func TestAuthorizeErrorRedirects(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessConfig{opts: Options{AutoApprove: true}})
	tests := []struct {
		name     string
		authURL  func(f authFlow) string
		wantCode string
	}{
		{
			name: "no PKCE",
			authURL: func(f authFlow) string {
				return h.conf.AuthCodeURL(f.state, oidc.Nonce(f.nonce), oauth2.SetAuthURLParam("login_hint", alice.Email))
			},
			wantCode: "invalid_request",
		},
		{
			name: "plain PKCE",
			authURL: func(f authFlow) string {
				return h.conf.AuthCodeURL(f.state, oauth2.SetAuthURLParam("code_challenge", f.verifier),
					oauth2.SetAuthURLParam("code_challenge_method", "plain"), oauth2.SetAuthURLParam("login_hint", alice.Email))
			},
			wantCode: "invalid_request",
		},
		{
			name: "no openid scope",
			authURL: func(f authFlow) string {
				conf := h.conf
				conf.Scopes = []string{"email"}
				return conf.AuthCodeURL(f.state, oauth2.S256ChallengeOption(f.verifier), oauth2.SetAuthURLParam("login_hint", alice.Email))
			},
			wantCode: "invalid_scope",
		},
		{
			name: "implicit flow",
			authURL: func(f authFlow) string {
				return h.conf.AuthCodeURL(f.state, oauth2.S256ChallengeOption(f.verifier),
					oauth2.SetAuthURLParam("response_type", "id_token"), oauth2.SetAuthURLParam("login_hint", alice.Email))
			},
			wantCode: "unsupported_response_type",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newAuthFlow()
			q := h.callback(t, h.get(t, tt.authURL(f)))
			if q.Get("error") != tt.wantCode || q.Get("state") != f.state || q.Has("code") {
				t.Errorf("callback query %v, want error=%s and state=%s", q, tt.wantCode, f.state)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fault Fault
		// check inspects the outcome of a login under the fault.
		check func(t *testing.T, h *harness, f authFlow)
	}{
		{FaultWrongNonce, func(t *testing.T, h *harness, f authFlow) {
			_, raw := h.exchange(t, f, h.login(t, f, alice.Email))
			idt, err := h.verifier.Verify(t.Context(), raw)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if idt.Nonce == f.nonce {
				t.Errorf("nonce %q is the requested one", idt.Nonce)
			}
		}},
		{FaultExpiredToken, func(t *testing.T, h *harness, f authFlow) {
			_, raw := h.exchange(t, f, h.login(t, f, alice.Email))
			_, err := h.verifier.Verify(t.Context(), raw)
			if _, ok := errors.AsType[*oidc.TokenExpiredError](err); !ok {
				t.Errorf("Verify: %v, want *oidc.TokenExpiredError", err)
			}
		}},
		{FaultWrongAudience, verifyFails("audience")},
		{FaultWrongIssuer, verifyFails("different provider")},
		{FaultBadSignature, verifyFails("signature")},
		{FaultAuthorizeError, func(t *testing.T, h *harness, f authFlow) {
			q := h.callback(t, h.get(t, f.authURL(h, alice.Email)))
			if q.Get("error") != "access_denied" || q.Get("error_description") == "" || q.Get("state") != f.state || q.Has("code") {
				t.Errorf("callback query %v, want error=access_denied with a description and state=%s", q, f.state)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.fault.String(), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessConfig{opts: Options{AutoApprove: true}})
			h.p.SetFault(tt.fault)
			tt.check(t, h, newAuthFlow())

			// Clearing the fault restores a verifiable login.
			h.p.SetFault(FaultNone)
			f := newAuthFlow()
			_, raw := h.exchange(t, f, h.login(t, f, alice.Email))
			if idt, err := h.verifier.Verify(t.Context(), raw); err != nil || idt.Nonce != f.nonce {
				t.Errorf("after FaultNone: Verify err %v", err)
			}
		})
	}
}

// verifyFails checks that go-oidc rejects the ID token with an error that
// mentions what.
func verifyFails(what string) func(t *testing.T, h *harness, f authFlow) {
	return func(t *testing.T, h *harness, f authFlow) {
		_, raw := h.exchange(t, f, h.login(t, f, alice.Email))
		_, err := h.verifier.Verify(t.Context(), raw)
		if err == nil || !strings.Contains(err.Error(), what) {
			t.Errorf("Verify: %v, want an error mentioning %q", err, what)
		}
	}
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// signInForm returns the hidden fields of a sign-in page.
func signInForm(t *testing.T, pg page) url.Values {
	t.Helper()
	if pg.status != http.StatusOK || !strings.Contains(pg.body, `data-testid="sign-in-form"`) {
		t.Fatalf("got %d Location %q, want the sign-in page:\n%s", pg.status, pg.location, pg.body)
	}
	form := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(pg.body, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	return form
}

func TestSignInPage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessConfig{})
	f := newAuthFlow()
	first := h.get(t, f.authURL(h, bob.Email))
	form := signInForm(t, first)
	for _, want := range []string{
		`name="email" value="bob@example.test"`,
		`data-testid="user-alice@example.test"`,
		`data-testid="user-bob@example.test"`,
	} {
		if !strings.Contains(first.body, want) {
			t.Errorf("sign-in page lacks %s", want)
		}
	}
	if form.Get("state") != f.state || form.Get("nonce") != f.nonce || form.Get("code_challenge") == "" {
		t.Fatalf("hidden fields %v do not carry the request", form)
	}

	// An unknown email shows the page again, with an error.
	form.Set("email", "mallory@example.test")
	again := h.postForm(t, h.url+"/authorize", form)
	signInForm(t, again)
	if !strings.Contains(again.body, `data-testid="sign-in-error"`) {
		t.Errorf("no sign-in error on the page:\n%s", again.body)
	}

	tests := []struct {
		name   string
		field  string
		value  string
		wantID string
	}{
		{name: "user button", field: "user", value: bob.Email, wantID: bob.Subject},
		{name: "typed email", field: "email", value: " ALICE@example.test ", wantID: alice.Subject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newAuthFlow()
			form := signInForm(t, h.get(t, f.authURL(h, "")))
			form.Set(tt.field, tt.value)
			q := h.callback(t, h.postForm(t, h.url+"/authorize", form))
			if q.Get("state") != f.state {
				t.Errorf("state = %q, want %q", q.Get("state"), f.state)
			}
			_, raw := h.exchange(t, f, q.Get("code"))
			idt, err := h.verifier.Verify(t.Context(), raw)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if idt.Subject != tt.wantID || idt.Nonce != f.nonce {
				t.Errorf("sub %q nonce %q, want %q %q", idt.Subject, idt.Nonce, tt.wantID, f.nonce)
			}
		})
	}
}

func TestAutoApproveNeedsKnownHint(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessConfig{opts: Options{AutoApprove: true}})
	for _, hint := range []string{"", "stranger@example.test"} {
		f := newAuthFlow()
		signInForm(t, h.get(t, f.authURL(h, hint)))
	}
}

func TestAddUser(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessConfig{opts: Options{AutoApprove: true}})
	if err := h.p.AddUser(User{Name: "No Email"}); err == nil {
		t.Error("AddUser without email succeeded")
	}

	// Users added while logins run can sign in; -race checks the locking.
	t.Run("concurrent", func(t *testing.T) {
		for i := range 4 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				u := User{Email: fmt.Sprintf("new%d@example.test", i), Groups: []string{"late"}}
				if err := h.p.AddUser(u); err != nil {
					t.Fatalf("AddUser: %v", err)
				}
				h.p.SetFault(FaultNone)
				f := newAuthFlow()
				_, raw := h.exchange(t, f, h.login(t, f, u.Email))
				idt, err := h.verifier.Verify(t.Context(), raw)
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if idt.Subject != u.Email {
					t.Errorf("sub %q, want the email %q as default subject", idt.Subject, u.Email)
				}
			})
		}
	})

	// Adding a known email replaces the user.
	renamed := alice
	renamed.Name = "Alice Renamed"
	if err := h.p.AddUser(renamed); err != nil {
		t.Fatal(err)
	}
	f := newAuthFlow()
	_, raw := h.exchange(t, f, h.login(t, f, alice.Email))
	idt, err := h.verifier.Verify(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	var got profileClaims
	if err := idt.Claims(&got); err != nil || got.Name != "Alice Renamed" {
		t.Errorf("name %q (err %v), want the replaced user's", got.Name, err)
	}
}

func TestUserinfoRejectsBadTokens(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessConfig{})
	tests := []struct {
		name   string
		header string
	}{
		{name: "no token"},
		{name: "unknown token", header: "Bearer nope"},
		{name: "wrong scheme", header: "Basic Zm9vOmJhcg=="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, h.url+"/userinfo", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") {
				t.Errorf("got %d WWW-Authenticate %q, want 401 invalid_token", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestLogout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessConfig{})
	tests := []struct {
		name         string
		query        url.Values
		wantLocation string
	}{
		{
			name:         "loopback redirect keeps state",
			query:        url.Values{"post_logout_redirect_uri": {"http://localhost:8080/signed-out?x=1"}, "state": {"st"}},
			wantLocation: "http://localhost:8080/signed-out?state=st&x=1",
		},
		{name: "non-loopback redirect", query: url.Values{"post_logout_redirect_uri": {"https://evil.example/"}}},
		{name: "no redirect", query: url.Values{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, h.url+"/logout?"+tt.query.Encode(), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tt.wantLocation != "" {
				if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != tt.wantLocation {
					t.Errorf("got %d Location %q, want 302 to %q", resp.StatusCode, resp.Header.Get("Location"), tt.wantLocation)
				}
				return
			}
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `data-testid="signed-out"`) {
				t.Errorf("got %d, want the signed-out page:\n%s", resp.StatusCode, body)
			}
		})
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	ok := Client{ID: "c", Secret: "s"}
	tests := []struct {
		name string
		opts Options
	}{
		{name: "issuer with trailing slash", opts: Options{Issuer: "http://127.0.0.1:8060/"}},
		{name: "issuer with path", opts: Options{Issuer: "http://127.0.0.1:8060/idp"}},
		{name: "relative issuer", opts: Options{Issuer: "127.0.0.1:8060"}},
		{name: "client without id", opts: Options{Clients: []Client{{Secret: "s"}}}},
		{name: "client without secret", opts: Options{Clients: []Client{{ID: "c"}}}},
		{name: "duplicate client", opts: Options{Clients: []Client{ok, ok}}},
		{name: "relative redirect URI", opts: Options{Clients: []Client{{ID: "c", Secret: "s", RedirectURIs: []string{"/cb"}}}}},
		{name: "user without email", opts: Options{Users: []User{{Name: "x"}}}},
		{name: "duplicate user", opts: Options{Users: []User{alice, {Email: "ALICE@example.test"}}}},
		{name: "negative TTL", opts: Options{TokenTTL: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := New(tt.opts); err == nil {
				t.Error("New succeeded")
			}
		})
	}
}
