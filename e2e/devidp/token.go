package devidp

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// wrongIssuer is the "iss" of tokens under FaultWrongIssuer.
const wrongIssuer = "https://wrong-issuer.devidp.invalid"

// idClaims are the claims of an ID token.
type idClaims struct {
	Issuer        string   `json:"iss"`
	Subject       string   `json:"sub"`
	Audience      string   `json:"aud"`
	Expiry        int64    `json:"exp"`
	IssuedAt      int64    `json:"iat"`
	AuthTime      int64    `json:"auth_time"`
	Nonce         string   `json:"nonce,omitempty"`
	AccessHash    string   `json:"at_hash"`
	Email         string   `json:"email"`
	EmailVerified bool     `json:"email_verified"`
	Name          string   `json:"name,omitempty"`
	Groups        []string `json:"groups,omitempty"`
}

// userClaims are the claims served at /userinfo.
type userClaims struct {
	Subject       string   `json:"sub"`
	Email         string   `json:"email"`
	EmailVerified bool     `json:"email_verified"`
	Name          string   `json:"name,omitempty"`
	Groups        []string `json:"groups,omitempty"`
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	IDToken     string `json:"id_token"`
}

func invalidGrant(desc string) error {
	return &oauthError{Status: http.StatusBadRequest, Code: "invalid_grant", Description: desc}
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return &oauthError{Status: http.StatusBadRequest, Code: "invalid_request", Description: "malformed form body", Err: err}
	}
	// Authenticate before looking at the code, so that a failed attempt
	// (x/oauth2 probes basic, then post) does not burn it.
	client, err := p.authenticateClient(r)
	if err != nil {
		return err
	}
	if gt := r.PostForm.Get("grant_type"); gt != "authorization_code" {
		return &oauthError{Status: http.StatusBadRequest, Code: "unsupported_grant_type", Description: "only authorization_code is supported"}
	}
	code := r.PostForm.Get("code")
	if code == "" {
		return &oauthError{Status: http.StatusBadRequest, Code: "invalid_request", Description: "missing code"}
	}

	now := p.now()
	p.mu.Lock()
	ac, ok := p.codes[code]
	switch {
	case !ok || now.After(ac.expires):
		p.mu.Unlock()
		return invalidGrant("unknown or expired code")
	case ac.redeemed:
		// A replayed code may be stolen: revoke what it already bought.
		ac.replayed = true
		delete(p.access, ac.accessToken)
		p.mu.Unlock()
		return invalidGrant("code already used")
	}
	// Any redemption attempt uses the code up, even a failed one.
	ac.redeemed = true
	p.mu.Unlock()

	if ac.clientID != client.ID {
		return invalidGrant("code was issued to another client")
	}
	if r.PostForm.Get("redirect_uri") != ac.redirectURI {
		return invalidGrant("redirect_uri does not match the authorization request")
	}
	if !pkceMatches(r.PostForm.Get("code_verifier"), ac.codeChallenge) {
		return invalidGrant("PKCE verification failed")
	}

	access := randomToken()
	idToken, err := p.mintIDToken(r, ac, client.ID, access, now)
	if err != nil {
		return fmt.Errorf("mint id token: %w", err)
	}
	p.mu.Lock()
	if ac.replayed {
		p.mu.Unlock()
		return invalidGrant("code already used")
	}
	for k, g := range p.access {
		if now.After(g.expires) {
			delete(p.access, k)
		}
	}
	p.access[access] = accessGrant{user: ac.user, expires: now.Add(p.tokenTTL)}
	ac.accessToken = access
	p.mu.Unlock()

	p.logger.Info("dev idp issued tokens", slog.String("client_id", client.ID), slog.String("sub", ac.user.Subject))
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: access,
		TokenType:   "Bearer",
		ExpiresIn:   int64(p.tokenTTL / time.Second),
		IDToken:     idToken,
	})
	return nil
}

// authenticateClient checks client_secret_basic, else client_secret_post.
func (p *Provider) authenticateClient(r *http.Request) (Client, error) {
	id, secret, basic := r.BasicAuth()
	fail := func(desc string, err error) (Client, error) {
		oe := &oauthError{Status: http.StatusUnauthorized, Code: "invalid_client", Description: desc, Err: err}
		if basic {
			oe.Challenge = `Basic realm="dev-idp"`
		}
		return Client{}, oe
	}
	if basic {
		// RFC 6749 section 2.3.1: both parts are form-encoded first.
		var err error
		if id, err = url.QueryUnescape(id); err != nil {
			return fail("malformed client credentials", err)
		}
		if secret, err = url.QueryUnescape(secret); err != nil {
			return fail("malformed client credentials", err)
		}
		if bodyID := r.PostForm.Get("client_id"); bodyID != "" && bodyID != id {
			return fail("client_id in body and header differ", nil)
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id == "" {
		return fail("client authentication required", nil)
	}
	c, ok := p.clients[id]
	if !ok || subtle.ConstantTimeCompare([]byte(secret), []byte(c.Secret)) != 1 {
		return fail("unknown client or wrong secret", nil)
	}
	return c, nil
}

func pkceMatches(verifier, challenge string) bool {
	// RFC 7636 section 4.1: 43 to 128 unreserved characters.
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for _, c := range verifier {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.ContainsRune("-._~", c)) {
			return false
		}
	}
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}

// mintIDToken signs the ID token for a redeemed code, bent by the current
// fault.
func (p *Provider) mintIDToken(r *http.Request, ac *authCode, clientID, access string, now time.Time) (string, error) {
	atHash := sha256.Sum256([]byte(access))
	c := idClaims{
		Issuer:        p.issuerFor(r),
		Subject:       ac.user.Subject,
		Audience:      clientID,
		IssuedAt:      now.Unix(),
		Expiry:        now.Add(p.tokenTTL).Unix(),
		AuthTime:      ac.authTime.Unix(),
		Nonce:         ac.nonce,
		AccessHash:    base64.RawURLEncoding.EncodeToString(atHash[:len(atHash)/2]),
		Email:         ac.user.Email,
		EmailVerified: ac.user.EmailVerified,
		Name:          ac.user.Name,
		Groups:        ac.user.Groups,
	}
	signer := p.signer
	switch fault := p.currentFault(); fault {
	case FaultWrongNonce:
		c.Nonce = "wrong-" + randomToken()
	case FaultExpiredToken:
		c.Expiry = now.Add(-time.Hour).Unix()
		c.IssuedAt = now.Add(-time.Hour - p.tokenTTL).Unix()
	case FaultWrongAudience:
		c.Audience = "not-" + clientID
	case FaultWrongIssuer:
		c.Issuer = wrongIssuer
	case FaultBadSignature:
		var err error
		if signer, err = p.badSigner(); err != nil {
			return "", err
		}
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode claims: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return jws.CompactSerialize()
}

func (p *Provider) userinfo(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	fail := func(desc string) error {
		return &oauthError{
			Status: http.StatusUnauthorized, Code: "invalid_token", Description: desc,
			Challenge: `Bearer error="invalid_token"`,
		}
	}
	token := ""
	if scheme, rest, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		token = strings.TrimSpace(rest)
	} else if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			return &oauthError{Status: http.StatusBadRequest, Code: "invalid_request", Description: "malformed form body", Err: err}
		}
		token = r.PostForm.Get("access_token")
	}
	if token == "" {
		return fail("missing access token")
	}
	p.mu.Lock()
	g, ok := p.access[token]
	p.mu.Unlock()
	if !ok || p.now().After(g.expires) {
		return fail("unknown or expired access token")
	}
	writeJSON(w, http.StatusOK, userClaims{
		Subject:       g.user.Subject,
		Email:         g.user.Email,
		EmailVerified: g.user.EmailVerified,
		Name:          g.user.Name,
		Groups:        g.user.Groups,
	})
	return nil
}
