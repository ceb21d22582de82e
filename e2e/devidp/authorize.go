package devidp

import (
	"encoding/base64"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// authRequest is a validated authorization request.
type authRequest struct {
	clientID      string
	redirectURI   string
	redirectURL   *url.URL
	scope         string
	state         string
	nonce         string
	codeChallenge string
	loginHint     string
}

// hiddenFields carries the request through the sign-in form.
func (a authRequest) hiddenFields() []formField {
	return []formField{
		{"client_id", a.clientID},
		{"redirect_uri", a.redirectURI},
		{"response_type", "code"},
		{"scope", a.scope},
		{"state", a.state},
		{"nonce", a.nonce},
		{"code_challenge", a.codeChallenge},
		{"code_challenge_method", "S256"},
	}
}

type formField struct{ Name, Value string }

// parseAuthRequest validates an authorization request. Until the client and
// redirect URI are known good, errors are pages; after that, they are
// redirects to the client.
func (p *Provider) parseAuthRequest(v url.Values) (authRequest, error) {
	a := authRequest{
		clientID:      v.Get("client_id"),
		redirectURI:   v.Get("redirect_uri"),
		scope:         v.Get("scope"),
		state:         v.Get("state"),
		nonce:         v.Get("nonce"),
		codeChallenge: v.Get("code_challenge"),
		loginHint:     v.Get("login_hint"),
	}
	client, ok := p.clients[a.clientID]
	if !ok {
		return authRequest{}, &pageError{Status: http.StatusBadRequest, Message: "Unknown client_id."}
	}
	if a.redirectURI == "" {
		return authRequest{}, &pageError{Status: http.StatusBadRequest, Message: "Missing redirect_uri."}
	}
	u, err := url.Parse(a.redirectURI)
	if err != nil {
		return authRequest{}, &pageError{Status: http.StatusBadRequest, Message: "Malformed redirect_uri.", Err: err}
	}
	if !redirectAllowed(client, a.redirectURI, u) {
		return authRequest{}, &pageError{Status: http.StatusBadRequest, Message: "redirect_uri is not registered for this client."}
	}
	a.redirectURL = u

	fail := func(code, desc string) (authRequest, error) {
		return authRequest{}, &redirectError{RedirectURI: u, State: a.state, Code: code, Description: desc}
	}
	switch {
	case v.Get("response_type") != "code":
		return fail("unsupported_response_type", "only response_type=code is supported")
	case !slices.Contains(strings.Fields(a.scope), "openid"):
		return fail("invalid_scope", "scope must include openid")
	case a.codeChallenge == "":
		return fail("invalid_request", "PKCE code_challenge is required")
	case v.Get("code_challenge_method") != "S256":
		return fail("invalid_request", "code_challenge_method must be S256")
	case !validS256Challenge(a.codeChallenge):
		return fail("invalid_request", "code_challenge is not a base64url SHA-256 digest")
	}
	return a, nil
}

// redirectAllowed matches registered URIs exactly, or any loopback http URI
// for a client that registered none.
func redirectAllowed(c Client, raw string, u *url.URL) bool {
	if len(c.RedirectURIs) > 0 {
		return slices.Contains(c.RedirectURIs, raw)
	}
	return isLoopbackHTTP(u)
}

func isLoopbackHTTP(u *url.URL) bool {
	if u.Scheme != "http" || u.User != nil || u.Fragment != "" {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func validS256Challenge(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == 32
}

func (p *Provider) authorizeGet(w http.ResponseWriter, r *http.Request) error {
	a, err := p.parseAuthRequest(r.URL.Query())
	if err != nil {
		return err
	}
	if err := p.injectedAuthorizeError(a); err != nil {
		return err
	}
	if p.autoApprove {
		if u, ok := p.lookupUser(a.loginHint); ok {
			return p.approve(w, r, a, u)
		}
	}
	p.renderSignIn(w, a, a.loginHint, "")
	return nil
}

func (p *Provider) authorizePost(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return &pageError{Status: http.StatusBadRequest, Message: "Malformed form.", Err: err}
	}
	a, err := p.parseAuthRequest(r.PostForm)
	if err != nil {
		return err
	}
	if err := p.injectedAuthorizeError(a); err != nil {
		return err
	}
	// A user button wins over the typed email.
	email := r.PostForm.Get("user")
	if email == "" {
		email = r.PostForm.Get("email")
	}
	u, ok := p.lookupUser(email)
	if !ok {
		p.renderSignIn(w, a, email, "No user with that email.")
		return nil
	}
	return p.approve(w, r, a, u)
}

func (p *Provider) injectedAuthorizeError(a authRequest) error {
	if p.currentFault() != FaultAuthorizeError {
		return nil
	}
	return &redirectError{
		RedirectURI: a.redirectURL, State: a.state,
		Code: "access_denied", Description: "denied by dev idp fault injection",
	}
}

// approve issues a code for u and redirects back to the client.
func (p *Provider) approve(w http.ResponseWriter, r *http.Request, a authRequest, u User) error {
	now := p.now()
	code := randomToken()
	p.mu.Lock()
	for k, c := range p.codes {
		if now.After(c.expires) {
			delete(p.codes, k)
		}
	}
	p.codes[code] = &authCode{
		clientID:      a.clientID,
		redirectURI:   a.redirectURI,
		nonce:         a.nonce,
		codeChallenge: a.codeChallenge,
		user:          u,
		authTime:      now,
		expires:       now.Add(codeTTL),
	}
	p.mu.Unlock()
	p.logger.Info("dev idp signed in", slog.String("client_id", a.clientID), slog.String("sub", u.Subject))
	q := url.Values{"code": {code}}
	if a.state != "" {
		q.Set("state", a.state)
	}
	http.Redirect(w, r, withQuery(a.redirectURL, q), http.StatusFound)
	return nil
}

// logout is RP-initiated logout. There is no session to end, so it only
// sends the browser back to a loopback post_logout_redirect_uri.
func (p *Provider) logout(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return &pageError{Status: http.StatusBadRequest, Message: "Malformed request.", Err: err}
	}
	if raw := r.Form.Get("post_logout_redirect_uri"); raw != "" {
		if u, err := url.Parse(raw); err == nil && isLoopbackHTTP(u) {
			q := url.Values{}
			if s := r.Form.Get("state"); s != "" {
				q.Set("state", s)
			}
			http.Redirect(w, r, withQuery(u, q), http.StatusFound)
			return nil
		}
	}
	p.renderPage(w, http.StatusOK, "signed-out", nil)
	return nil
}

type signInView struct {
	Hidden []formField
	Email  string
	Users  []User
	Error  string
}

func (p *Provider) renderSignIn(w http.ResponseWriter, a authRequest, email, errMsg string) {
	p.renderPage(w, http.StatusOK, "sign-in", signInView{
		Hidden: a.hiddenFields(),
		Email:  email,
		Users:  p.listUsers(),
		Error:  errMsg,
	})
}

func (p *Provider) renderPage(w http.ResponseWriter, status int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		p.logger.Warn("dev idp render page", slog.String("page", name), slog.String("error", err.Error()))
	}
}

// pages are the only HTML the provider serves; data-testid attributes are
// for tests and headless browsers.
var pages = template.Must(template.New("pages").Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Gatehouse dev IdP</title>
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}
input,button{font:inherit;padding:.4rem;margin:.2rem 0;width:100%;box-sizing:border-box}
.error{color:#b00020}</style></head><body><h1>Gatehouse dev IdP</h1>{{end}}

{{define "sign-in"}}{{template "head"}}
<form method="post" action="` + pathAuthorize + `" data-testid="sign-in-form">
{{range .Hidden}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}{{if .Error}}<p class="error" data-testid="sign-in-error">{{.Error}}</p>
{{end}}<label>Email <input type="email" name="email" value="{{.Email}}" autofocus data-testid="email"></label>
<button type="submit" data-testid="sign-in">Sign in</button>
{{if .Users}}<p>Or sign in as:</p>
{{range .Users}}<button type="submit" name="user" value="{{.Email}}" formnovalidate data-testid="user-{{.Email}}">{{if .Name}}{{.Name}} &lt;{{.Email}}&gt;{{else}}{{.Email}}{{end}}</button>
{{end}}{{end}}</form></body></html>
{{end}}

{{define "error"}}{{template "head"}}
<p class="error" data-testid="error">{{.}}</p></body></html>
{{end}}

{{define "signed-out"}}{{template "head"}}
<p data-testid="signed-out">You are signed out.</p></body></html>
{{end}}
`))
