// Package session keeps console sessions: server-side rows in Postgres (revocable)
// behind an opaque cookie, idle and absolute timeouts, a CSRF token per session, a
// double-submit token for forms shown before sign-in, and the cookie that binds an
// OIDC state to the browser. It does not decide who may do what.
package session

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
)

// ErrNoSession means the request carries no valid session.
var ErrNoSession = errors.New("no valid session")

// Config sets the timeouts and cookie security.
type Config struct {
	// Secure marks cookies Secure (and uses the __Host- prefix). Off only for http
	// loopback development.
	Secure   bool
	Idle     time.Duration
	Absolute time.Duration
}

// Manager issues and checks sessions.
type Manager struct {
	cfg   Config
	store *store.Store
	now   func() time.Time
}

// New returns a Manager.
func New(cfg Config, st *store.Store) *Manager {
	if cfg.Idle == 0 {
		cfg.Idle = 2 * time.Hour
	}
	if cfg.Absolute == 0 {
		cfg.Absolute = 12 * time.Hour
	}
	return &Manager{cfg: cfg, store: st, now: time.Now}
}

// Session is a loaded, valid session.
type Session struct {
	ID string
	store.Session
}

func (m *Manager) name(base string) string {
	if m.cfg.Secure {
		return "__Host-" + base
	}
	return base
}

func (m *Manager) cookie(name, value string, maxAge int, sameSite http.SameSite) *http.Cookie {
	return &http.Cookie{Name: m.name(name), Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		Secure: m.cfg.Secure, SameSite: sameSite}
}

// Start creates a session for user and sets its cookie.
func (m *Manager) Start(ctx context.Context, w http.ResponseWriter, r *http.Request, userID string) error {
	id, csrf := Random(32), Random(32)
	if err := m.store.CreateSession(ctx, id, userID, csrf, m.cfg.Absolute, r.UserAgent()); err != nil {
		return err
	}
	http.SetCookie(w, m.cookie("gh_session", id, int(m.cfg.Absolute.Seconds()), http.SameSiteLaxMode))
	return nil
}

// Load returns the request's session, or ErrNoSession when it is missing, revoked,
// past its absolute or idle timeout, or its user is disabled.
func (m *Manager) Load(r *http.Request) (*Session, error) {
	c, err := r.Cookie(m.name("gh_session"))
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return nil, ErrNoSession
	}
	s, err := m.store.GetSession(r.Context(), c.Value)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, err
	}
	now := m.now()
	if s.Revoked || s.Disabled || !now.Before(s.ExpiresAt) || now.Sub(s.LastSeenAt) > m.cfg.Idle {
		return nil, ErrNoSession
	}
	if now.Sub(s.LastSeenAt) > time.Minute {
		if err := m.store.TouchSession(r.Context(), c.Value); err != nil {
			return nil, err
		}
	}
	return &Session{ID: c.Value, Session: s}, nil
}

// End revokes the session and clears its cookie.
func (m *Manager) End(w http.ResponseWriter, r *http.Request) error {
	if c, err := r.Cookie(m.name("gh_session")); err == nil && c.Value != "" {
		if err := m.store.RevokeSession(r.Context(), c.Value); err != nil {
			return err
		}
	}
	http.SetCookie(w, m.cookie("gh_session", "", -1, http.SameSiteLaxMode))
	return nil
}

// CheckCSRF compares a submitted token with the session's, in constant time.
func CheckCSRF(s *Session, submitted string) bool {
	return submitted != "" && subtle.ConstantTimeCompare([]byte(submitted), []byte(s.CSRFToken)) == 1
}

// PreToken returns the double-submit token for forms shown before sign-in, setting its
// cookie when the browser has none.
func (m *Manager) PreToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(m.name("gh_csrf")); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	tok := Random(32)
	http.SetCookie(w, m.cookie("gh_csrf", tok, 3600, http.SameSiteStrictMode))
	return tok
}

// CheckPreToken checks a pre-sign-in form's token against its cookie.
func (m *Manager) CheckPreToken(r *http.Request, submitted string) bool {
	c, err := r.Cookie(m.name("gh_csrf"))
	return err == nil && submitted != "" && subtle.ConstantTimeCompare([]byte(c.Value), []byte(submitted)) == 1
}

// BindState remembers the OIDC state in this browser. SameSite=Lax so the cookie
// comes back on the IdP's top-level redirect.
func (m *Manager) BindState(w http.ResponseWriter, state string) {
	http.SetCookie(w, m.cookie("gh_login", state, 600, http.SameSiteLaxMode))
}

// BoundState returns the bound state and clears it.
func (m *Manager) BoundState(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(m.name("gh_login"))
	if err != nil {
		return ""
	}
	http.SetCookie(w, m.cookie("gh_login", "", -1, http.SameSiteLaxMode))
	return c.Value
}

// Random returns n random bytes, base64url encoded.
func Random(n int) string {
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck // never fails
	return base64.RawURLEncoding.EncodeToString(b)
}
