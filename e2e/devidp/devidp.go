// Package devidp is a small OpenID Connect provider for development and
// tests: the identity provider that `make dev` and the control plane's login
// tests sign users in with, served from loopback with no external service.
//
// It implements what go-oidc and x/oauth2 need for the authorization code
// flow with PKCE: discovery, JWKS, /authorize (an HTML sign-in page, or an
// immediate redirect with AutoApprove and a known login_hint), /token
// (client_secret_basic or client_secret_post, S256 PKCE only, single-use
// codes), /userinfo and an RP-initiated /logout. ID tokens are RS256 with a
// key generated at start. Faults (SetFault) make it misbehave on purpose:
// wrong nonce, expired token, wrong audience or issuer, a signature by a key
// that is not published, or an authorization error.
//
// It is not a production identity provider: it has no passwords, no browser
// session (every authorization request signs in anew), no consent screen, no
// refresh tokens, no CSRF protection on its sign-in form, and it keeps all
// state in memory. Scopes other than openid are accepted but do not filter
// claims: ID tokens and userinfo always carry email, name and groups.
package devidp

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Endpoint paths, relative to the issuer.
const (
	pathDiscovery = "/.well-known/openid-configuration"
	pathJWKS      = "/jwks"
	pathAuthorize = "/authorize"
	pathToken     = "/token"
	pathUserinfo  = "/userinfo"
	pathLogout    = "/logout"
)

const (
	defaultTokenTTL = 5 * time.Minute
	// codeTTL bounds how long an authorization code can be redeemed.
	codeTTL = 60 * time.Second
	// maxFormBytes bounds request bodies; real requests are a few hundred bytes.
	maxFormBytes = 64 << 10
)

// User is a person who can sign in. The JSON form is what cmd/dev-idp
// accepts in --users.
type User struct {
	// Subject is the stable "sub" claim; it defaults to Email.
	Subject string `json:"subject,omitempty"`
	// Email identifies the user on the sign-in page and in login_hint
	// (compared case-insensitively). Required.
	Email         string   `json:"email"`
	Name          string   `json:"name,omitempty"`
	EmailVerified bool     `json:"email_verified,omitempty"`
	Groups        []string `json:"groups,omitempty"`
}

// Client is a registered relying party.
type Client struct {
	ID     string
	Secret string
	// RedirectURIs are matched exactly. When empty, any http URI on
	// 127.0.0.1, [::1] or localhost (any port and path) is accepted.
	RedirectURIs []string
}

// Options configures a Provider.
type Options struct {
	// Issuer is the "iss" of tokens and the base of all endpoints, as
	// scheme://host[:port] without a path or trailing slash. When empty it is
	// derived from each request's Host (http, or https behind TLS).
	Issuer  string
	Clients []Client
	Users   []User
	// TokenTTL is the lifetime of ID and access tokens; default 5m.
	TokenTTL time.Duration
	// AutoApprove makes /authorize redirect at once, without the sign-in
	// page, when login_hint is the email of a known user.
	AutoApprove bool
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// Fault is a deliberate misbehaviour, for testing relying parties.
type Fault int

// Faults. Token faults apply to ID tokens issued by /token after SetFault;
// FaultAuthorizeError applies to /authorize requests after SetFault.
const (
	FaultNone Fault = iota
	// FaultWrongNonce puts a nonce other than the requested one in the ID token.
	FaultWrongNonce
	// FaultExpiredToken issues ID tokens whose exp is an hour in the past.
	FaultExpiredToken
	// FaultWrongAudience issues ID tokens for another client id.
	FaultWrongAudience
	// FaultWrongIssuer issues ID tokens with another "iss".
	FaultWrongIssuer
	// FaultBadSignature signs ID tokens (with the published kid) by a key
	// that is not in the JWKS.
	FaultBadSignature
	// FaultAuthorizeError makes /authorize redirect back with
	// error=access_denied instead of a code.
	FaultAuthorizeError
)

var faultNames = [...]string{
	FaultNone:           "none",
	FaultWrongNonce:     "wrong_nonce",
	FaultExpiredToken:   "expired_token",
	FaultWrongAudience:  "wrong_audience",
	FaultWrongIssuer:    "wrong_issuer",
	FaultBadSignature:   "bad_signature",
	FaultAuthorizeError: "authorize_error",
}

func (f Fault) String() string {
	if f >= 0 && int(f) < len(faultNames) {
		return faultNames[f]
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

// Provider is an OpenID Connect provider. Its methods are safe for
// concurrent use.
type Provider struct {
	issuer      string
	clients     map[string]Client
	tokenTTL    time.Duration
	autoApprove bool
	logger      *slog.Logger
	now         func() time.Time

	signer    jose.Signer // the published key
	jwks      jose.JSONWebKeySet
	kid       string
	badSigner func() (jose.Signer, error) // an unpublished key, made on first use

	mu     sync.Mutex
	fault  Fault
	users  map[string]User // by lower-cased email
	order  []string        // lower-cased emails in the order added, for the sign-in page
	codes  map[string]*authCode
	access map[string]accessGrant
}

// authCode is an issued authorization code and what it was bound to.
type authCode struct {
	clientID      string
	redirectURI   string
	nonce         string
	codeChallenge string
	user          User
	authTime      time.Time
	expires       time.Time
	redeemed      bool
	replayed      bool
	accessToken   string // issued on redemption; revoked if the code is replayed
}

// accessGrant is what an access token stands for at /userinfo.
type accessGrant struct {
	user    User
	expires time.Time
}

// New validates o and returns a Provider with a freshly generated RSA-2048
// signing key.
func New(o Options) (*Provider, error) {
	if err := validateIssuer(o.Issuer); err != nil {
		return nil, fmt.Errorf("devidp: issuer: %w", err)
	}
	p := &Provider{
		issuer:      o.Issuer,
		clients:     make(map[string]Client, len(o.Clients)),
		tokenTTL:    o.TokenTTL,
		autoApprove: o.AutoApprove,
		logger:      o.Logger,
		now:         o.Now,
		users:       make(map[string]User, len(o.Users)),
		codes:       make(map[string]*authCode),
		access:      make(map[string]accessGrant),
	}
	if p.tokenTTL == 0 {
		p.tokenTTL = defaultTokenTTL
	}
	if p.tokenTTL < 0 {
		return nil, errors.New("devidp: token TTL must not be negative")
	}
	if p.logger == nil {
		p.logger = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	for _, c := range o.Clients {
		if err := validateClient(c); err != nil {
			return nil, fmt.Errorf("devidp: client %q: %w", c.ID, err)
		}
		if _, dup := p.clients[c.ID]; dup {
			return nil, fmt.Errorf("devidp: client %q registered twice", c.ID)
		}
		c.RedirectURIs = slices.Clone(c.RedirectURIs)
		p.clients[c.ID] = c
	}
	for _, u := range o.Users {
		key := strings.ToLower(u.Email)
		if _, dup := p.users[key]; dup {
			return nil, fmt.Errorf("devidp: user %q listed twice", u.Email)
		}
		if err := p.AddUser(u); err != nil {
			return nil, err
		}
	}

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("devidp: generate signing key: %w", err)
	}
	pub := jose.JSONWebKey{Key: &key.PublicKey, Algorithm: string(jose.RS256), Use: "sig"}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("devidp: key id: %w", err)
	}
	p.kid = base64.RawURLEncoding.EncodeToString(thumb)
	pub.KeyID = p.kid
	p.jwks = jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}}
	if p.signer, err = newSigner(key, p.kid); err != nil {
		return nil, err
	}
	p.badSigner = sync.OnceValues(func() (jose.Signer, error) {
		other, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("generate unpublished key: %w", err)
		}
		return newSigner(other, p.kid)
	})
	return p, nil
}

func newSigner(key *rsa.PrivateKey, kid string) (jose.Signer, error) {
	s, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return nil, fmt.Errorf("devidp: signer: %w", err)
	}
	return s, nil
}

func validateIssuer(issuer string) error {
	if issuer == "" {
		return nil
	}
	u, err := url.Parse(issuer)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", issuer)
	}
	if u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q must be scheme://host[:port], without path, query or trailing slash", issuer)
	}
	return nil
}

func validateClient(c Client) error {
	if c.ID == "" {
		return errors.New("empty client id")
	}
	if c.Secret == "" {
		return errors.New("empty client secret")
	}
	for _, r := range c.RedirectURIs {
		u, err := url.Parse(r)
		if err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" {
			return fmt.Errorf("redirect URI %q must be an absolute URL without fragment", r)
		}
	}
	return nil
}

// AddUser adds u, or replaces the user with the same email.
func (p *Provider) AddUser(u User) error {
	if u.Email == "" {
		return errors.New("devidp: user without email")
	}
	if u.Subject == "" {
		u.Subject = u.Email
	}
	u.Groups = slices.Clone(u.Groups)
	key := strings.ToLower(u.Email)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.users[key]; !ok {
		p.order = append(p.order, key)
	}
	p.users[key] = u
	return nil
}

// SetFault makes the provider misbehave as f from now on; FaultNone restores
// correct behaviour.
func (p *Provider) SetFault(f Fault) {
	p.mu.Lock()
	p.fault = f
	p.mu.Unlock()
	p.logger.Info("dev idp fault set", slog.String("fault", f.String()))
}

func (p *Provider) currentFault() Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fault
}

func (p *Provider) lookupUser(email string) (User, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	u, ok := p.users[strings.ToLower(strings.TrimSpace(email))]
	return u, ok
}

func (p *Provider) listUsers() []User {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]User, 0, len(p.order))
	for _, k := range p.order {
		out = append(out, p.users[k])
	}
	return out
}

// Handler serves all endpoints at the root of the issuer.
func (p *Provider) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathDiscovery, p.discovery)
	mux.HandleFunc("GET "+pathJWKS, p.serveJWKS)
	mux.Handle("GET "+pathAuthorize, p.pageHandler(p.authorizeGet))
	mux.Handle("POST "+pathAuthorize, p.pageHandler(p.authorizePost))
	mux.Handle("POST "+pathToken, p.oauthHandler(p.token))
	mux.Handle("GET "+pathUserinfo, p.oauthHandler(p.userinfo))
	mux.Handle("POST "+pathUserinfo, p.oauthHandler(p.userinfo))
	mux.Handle("GET "+pathLogout, p.pageHandler(p.logout))
	mux.Handle("POST "+pathLogout, p.pageHandler(p.logout))
	return mux
}

// issuerFor is the configured issuer, or one derived from the request.
func (p *Provider) issuerFor(r *http.Request) string {
	if p.issuer != "" {
		return p.issuer
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (p *Provider) discovery(w http.ResponseWriter, r *http.Request) {
	iss := p.issuerFor(r)
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                iss,
		"authorization_endpoint":                iss + pathAuthorize,
		"token_endpoint":                        iss + pathToken,
		"jwks_uri":                              iss + pathJWKS,
		"userinfo_endpoint":                     iss + pathUserinfo,
		"end_session_endpoint":                  iss + pathLogout,
		"response_types_supported":              []string{"code"},
		"grant_types_supported":                 []string{"authorization_code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{string(jose.RS256)},
		"scopes_supported":                      []string{"openid", "email", "profile", "groups"},
		"claims_supported": []string{
			"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash",
			"email", "email_verified", "name", "groups",
		},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
	})
}

func (p *Provider) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, p.jwks)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// randomToken returns an unguessable token (256 random bits, base32).
func randomToken() string {
	return rand.Text() + rand.Text()
}
