// Package sso signs people in with OpenID Connect: it routes an email to its org's
// IdP (or the platform IdP), runs the authorization code flow with PKCE, state and
// nonce (go-oidc + x/oauth2), verifies the ID token and provisions the user just in
// time with their group mappings re-applied. It does not manage cookies or sessions.
package sso

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	"golang.org/x/oauth2"
)

// Errors a caller shows as friendly pages.
var (
	// ErrUnknownDomain means no org (and not the platform) signs in this email's domain.
	ErrUnknownDomain = errors.New("no organization signs in with this email domain")
	// ErrLoginExpired means the state is unknown, used or expired, or does not match
	// this browser.
	ErrLoginExpired = errors.New("the sign-in attempt expired or was not started in this browser")
	// ErrEmailNotAllowed means the IdP returned an email outside the org's domains, or
	// an unverified one.
	ErrEmailNotAllowed = errors.New("the identity provider returned an email this organization does not accept")
)

// IdPError is an error the identity provider reported or caused (bad token, refused
// exchange). Message is safe to show.
type IdPError struct {
	Message string
	Err     error
}

func (e *IdPError) Error() string { return e.Message + ": " + fmt.Sprint(e.Err) }
func (e *IdPError) Unwrap() error { return e.Err }

// Platform is the platform IdP that signs in platform admins.
type Platform struct {
	Issuer, ClientID, ClientSecret string
	// Domains are email domains routed to the platform IdP.
	Domains []string
	// AdminEmails and AdminGroup grant platform admin at login.
	AdminEmails []string
	AdminGroup  string
}

// Config configures the flow.
type Config struct {
	// RedirectURL is the callback registered at every IdP: <public url>/auth/callback.
	RedirectURL string
	Platform    *Platform
	// HTTPClient talks to IdPs (discovery, token exchange).
	HTTPClient *http.Client
}

// Service runs logins.
type Service struct {
	cfg   Config
	store *store.Store
	log   *slog.Logger
	now   func() time.Time

	mu        sync.Mutex
	providers map[string]*oidc.Provider
}

// New returns a Service.
func New(cfg Config, st *store.Store, log *slog.Logger) *Service {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	return &Service{cfg: cfg, store: st, log: log, now: time.Now, providers: map[string]*oidc.Provider{}}
}

// attemptTTL bounds how long a user may take at the IdP.
const attemptTTL = 10 * time.Minute

type idp struct {
	orgID        string
	issuer       string
	clientID     string
	clientSecret string
	domains      []string
}

// route finds the IdP for an email.
func (s *Service) route(ctx context.Context, email string) (idp, error) {
	domain := store.EmailDomain(email)
	if p := s.cfg.Platform; p != nil && (slices.Contains(p.Domains, domain) || slices.Contains(p.AdminEmails, email)) {
		return idp{issuer: p.Issuer, clientID: p.ClientID, clientSecret: p.ClientSecret, domains: p.Domains}, nil
	}
	conn, err := s.store.SSOForEmailDomain(ctx, domain)
	if errors.Is(err, store.ErrNotFound) {
		return idp{}, ErrUnknownDomain
	}
	if err != nil {
		return idp{}, err
	}
	return idp{orgID: conn.OrgID, issuer: conn.Issuer, clientID: conn.ClientID, clientSecret: conn.ClientSecret, domains: conn.AllowedDomains}, nil
}

func (s *Service) idpFor(ctx context.Context, orgID string) (idp, error) {
	if orgID == "" {
		p := s.cfg.Platform
		if p == nil {
			return idp{}, ErrLoginExpired
		}
		return idp{issuer: p.Issuer, clientID: p.ClientID, clientSecret: p.ClientSecret, domains: p.Domains}, nil
	}
	conn, err := s.store.SSOForOrg(ctx, orgID)
	if errors.Is(err, store.ErrNotFound) {
		return idp{}, ErrUnknownDomain
	}
	if err != nil {
		return idp{}, err
	}
	return idp{orgID: orgID, issuer: conn.Issuer, clientID: conn.ClientID, clientSecret: conn.ClientSecret, domains: conn.AllowedDomains}, nil
}

func (s *Service) provider(ctx context.Context, issuer string) (*oidc.Provider, error) {
	s.mu.Lock()
	p, ok := s.providers[issuer]
	s.mu.Unlock()
	if ok {
		return p, nil
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, s.cfg.HTTPClient), 15*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return nil, &IdPError{Message: "the identity provider could not be reached", Err: err}
	}
	s.mu.Lock()
	s.providers[issuer] = p
	s.mu.Unlock()
	return p, nil
}

func (s *Service) oauth(p *oidc.Provider, i idp) *oauth2.Config {
	return &oauth2.Config{ClientID: i.clientID, ClientSecret: i.clientSecret, Endpoint: p.Endpoint(),
		RedirectURL: s.cfg.RedirectURL, Scopes: []string{oidc.ScopeOpenID, "email", "profile", "groups"}}
}

// Begin starts a login for email and returns the IdP URL to redirect to and the state
// to bind to the browser (a cookie).
func (s *Service) Begin(ctx context.Context, rawEmail, next string) (redirect, state string, err error) {
	email, err := store.NormalizeEmail(rawEmail)
	if err != nil {
		return "", "", err
	}
	i, err := s.route(ctx, email)
	if err != nil {
		return "", "", err
	}
	p, err := s.provider(ctx, i.issuer)
	if err != nil {
		return "", "", err
	}
	state, nonce, verifier := random(32), random(32), oauth2.GenerateVerifier()
	if err := s.store.SaveLoginAttempt(ctx, state, store.LoginAttempt{
		OrgID: i.orgID, Nonce: nonce, PKCEVerifier: verifier, Next: SafeNext(next), EmailHint: email,
	}, attemptTTL); err != nil {
		return "", "", fmt.Errorf("begin login: %w", err)
	}
	url := s.oauth(p, i).AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("login_hint", email))
	return url, state, nil
}

// Callback is what the IdP sent back.
type Callback struct {
	State, Code             string
	Error, ErrorDescription string
	// BrowserState is the state bound to the browser at Begin (cookie).
	BrowserState string
}

// Result is a completed login.
type Result struct {
	User store.User
	Next string
}

// Complete finishes a login: checks state against the browser, exchanges the code
// with the PKCE verifier, verifies the ID token (signature, issuer, audience, expiry)
// and its nonce, checks the email, and provisions the user.
func (s *Service) Complete(ctx context.Context, cb Callback) (Result, error) {
	if cb.State == "" || cb.BrowserState == "" || !constantEq(cb.State, cb.BrowserState) {
		return Result{}, ErrLoginExpired
	}
	attempt, err := s.store.TakeLoginAttempt(ctx, cb.State)
	if errors.Is(err, store.ErrNotFound) {
		return Result{}, ErrLoginExpired
	}
	if err != nil {
		return Result{}, err
	}
	if cb.Error != "" {
		msg := "the identity provider refused the sign-in (" + truncate(cb.Error, 80) + ")"
		if cb.ErrorDescription != "" {
			msg += ": " + truncate(cb.ErrorDescription, 300)
		}
		return Result{}, &IdPError{Message: msg, Err: errors.New(cb.Error)}
	}
	if cb.Code == "" {
		return Result{}, &IdPError{Message: "the identity provider returned no authorization code", Err: errors.New("no code")}
	}
	i, err := s.idpFor(ctx, attempt.OrgID)
	if err != nil {
		return Result{}, err
	}
	p, err := s.provider(ctx, i.issuer)
	if err != nil {
		return Result{}, err
	}
	octx := oidc.ClientContext(ctx, s.cfg.HTTPClient)
	tok, err := s.oauth(p, i).Exchange(octx, cb.Code, oauth2.VerifierOption(attempt.PKCEVerifier))
	if err != nil {
		return Result{}, &IdPError{Message: "the identity provider refused the authorization code", Err: err}
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return Result{}, &IdPError{Message: "the identity provider returned no ID token", Err: errors.New("no id_token")}
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: i.clientID, Now: s.now}).Verify(octx, raw)
	if err != nil {
		return Result{}, &IdPError{Message: "the identity provider's ID token is not valid", Err: err}
	}
	if !constantEq(idt.Nonce, attempt.Nonce) {
		return Result{}, &IdPError{Message: "the identity provider's ID token does not belong to this sign-in (nonce mismatch)", Err: errors.New("nonce mismatch")}
	}
	var claims struct {
		Email         string   `json:"email"`
		EmailVerified *bool    `json:"email_verified"`
		Name          string   `json:"name"`
		Groups        []string `json:"groups"`
	}
	if err := idt.Claims(&claims); err != nil {
		return Result{}, &IdPError{Message: "the identity provider's ID token has malformed claims", Err: err}
	}
	email, err := store.NormalizeEmail(claims.Email)
	if err != nil || (claims.EmailVerified != nil && !*claims.EmailVerified) {
		return Result{}, ErrEmailNotAllowed
	}
	platformAdmin := false
	if attempt.OrgID == "" {
		pl := s.cfg.Platform
		platformAdmin = slices.Contains(pl.AdminEmails, email) || (pl.AdminGroup != "" && slices.Contains(claims.Groups, pl.AdminGroup))
		if !platformAdmin && !slices.Contains(pl.Domains, store.EmailDomain(email)) {
			return Result{}, ErrEmailNotAllowed
		}
	} else if !slices.Contains(i.domains, store.EmailDomain(email)) {
		return Result{}, ErrEmailNotAllowed
	}
	u, err := s.store.ProvisionSSOUser(ctx, store.SSOLogin{OrgID: attempt.OrgID, Email: email, Name: claims.Name, Groups: claims.Groups, PlatformAdmin: platformAdmin})
	if err != nil {
		return Result{}, err
	}
	return Result{User: u, Next: attempt.Next}, nil
}

// SafeNext keeps a post-login redirect on this site: a path starting with one slash,
// no scheme, no host, no backslashes. Anything else becomes "/".
func SafeNext(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n\t") ||
		strings.Contains(next, "://") || len(next) > 1000 {
		return "/"
	}
	return next
}

func random(n int) string {
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck // never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func constantEq(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	var v byte
	for i := 0; i < len(a); i++ {
		v |= a[i] ^ b[i]
	}
	return v == 0
}
