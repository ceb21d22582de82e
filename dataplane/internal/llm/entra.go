package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// DefaultEntraAuthority is Microsoft Entra ID's global authority; sovereign clouds
// have their own (e.g. https://login.microsoftonline.us).
const DefaultEntraAuthority = "https://login.microsoftonline.com"

// entraScope asks for tokens of Azure AI services, Azure OpenAI among them.
const entraScope = "https://cognitiveservices.azure.com/.default"

const (
	// entraRefreshBefore: a token is renewed in the background this long before it
	// expires (or half its lifetime before, when that is shorter), while requests go on
	// using it.
	entraRefreshBefore = 5 * time.Minute
	// entraRetryAfter: a failed token request is not repeated sooner — the requests in
	// between fail at once, rather than each asking the directory (which throttles).
	entraRetryAfter = 5 * time.Second
	// entraFetchTimeout bounds one token request.
	entraFetchTimeout = 30 * time.Second
	// entraDefaultLifetime stands in for a token response without expires_in.
	entraDefaultLifetime = 10 * time.Minute
	// entraExpiryMargin: a token is not sent in its last minute (or tenth of its
	// lifetime, if shorter); requests then wait for the new one.
	entraExpiryMargin = time.Minute
	// entraIdle: registrations no request used for this long are forgotten.
	entraIdle = 24 * time.Hour
)

// ErrUpstreamToken means the gateway could not get a Microsoft Entra ID token for a
// provider: the directory refused its app registration or could not be reached.
var ErrUpstreamToken = errors.New("no entra id token for the provider")

// entraTokens gets and caches the tokens of the Entra ID app registrations of Azure
// OpenAI providers: one token request per registration at a time, renewed before it
// expires, shared by every request and config snapshot that names the registration.
type entraTokens struct {
	authority string
	client    *http.Client
	log       *slog.Logger
	now       func() time.Time

	mu      sync.Mutex
	entries map[string]*entraEntry
	swept   time.Time
}

type entraEntry struct {
	tokenURL, clientID, secret string

	mu        sync.Mutex
	token     string
	expiry    time.Time
	margin    time.Duration // see usable
	refreshAt time.Time
	err       error     // the last failure, answered until retryAt
	retryAt   time.Time // no token request before this
	fetching  chan struct{}
	// used is when a request last asked for the entry (guarded by entraTokens.mu).
	used time.Time
}

func newEntraTokens(authority string, client *http.Client, log *slog.Logger) *entraTokens {
	if authority == "" {
		authority = DefaultEntraAuthority
	}
	return &entraTokens{authority: strings.TrimSuffix(authority, "/"), client: client, log: log, now: time.Now,
		entries: map[string]*entraEntry{}}
}

// entry returns the cache entry of app, made on first use.
func (t *entraTokens) entry(app *runtime.EntraApp) *entraEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if now.Sub(t.swept) > time.Hour {
		t.swept = now
		for k, e := range t.entries {
			if now.Sub(e.used) <= entraIdle {
				continue
			}
			e.mu.Lock()
			idle := e.fetching == nil
			e.mu.Unlock()
			if idle {
				delete(t.entries, k)
			}
		}
	}
	e := t.entries[app.Key]
	if e == nil {
		e = &entraEntry{
			tokenURL: t.authority + "/" + url.PathEscape(app.TenantID) + "/oauth2/v2.0/token",
			clientID: app.ClientID, secret: app.Secret,
		}
		t.entries[app.Key] = e
	}
	e.used = now // under t.mu, as the sweep reads it: it cannot drop the entry before its use
	return e
}

// token returns a bearer token for provider p's app registration. It waits for a
// token request only when there is no usable token; a failure is ErrUpstreamToken, or
// ctx's error when ctx ended first.
func (t *entraTokens) token(ctx context.Context, p *runtime.Provider) (string, error) {
	e := t.entry(p.Entra)
	e.mu.Lock()
	now := t.now()
	if e.usable(now) {
		if !now.Before(e.refreshAt) && e.fetching == nil && !now.Before(e.retryAt) {
			t.fetch(e) // renewed in the background; this one is still good
		}
		tok := e.token
		e.mu.Unlock()
		return tok, nil
	}
	if e.fetching == nil {
		if now.Before(e.retryAt) {
			err := e.err
			e.mu.Unlock()
			return "", fmt.Errorf("%w %s: %w", ErrUpstreamToken, p.ID, err)
		}
		t.fetch(e)
	}
	done := e.fetching
	e.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.usable(t.now()) {
		return e.token, nil
	}
	err := e.err
	if err == nil {
		err = errors.New("the token expired on arrival")
	}
	// The cause only: the entry is shared by every provider (of any org) naming the
	// same registration, so the provider is this caller's.
	return "", fmt.Errorf("%w %s: %w", ErrUpstreamToken, p.ID, err)
}

// usable reports whether e's token may still be sent at now (e.mu held): not in the
// last minute (a tenth of its lifetime, if shorter) before it expires, which a request
// in flight or a clock a little ahead of the directory's would cross.
func (e *entraEntry) usable(now time.Time) bool {
	return e.token != "" && now.Before(e.expiry.Add(-e.margin))
}

// fetch starts a token request for e (e.mu held). It runs on its own context: the
// request that started it may leave, the others still wait for it.
func (t *entraTokens) fetch(e *entraEntry) {
	e.fetching = make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), entraFetchTimeout)
		defer cancel()
		start := t.now()
		tok, lifetime, err := t.request(ctx, e)
		e.mu.Lock()
		defer e.mu.Unlock()
		now := t.now()
		margin := min(entraExpiryMargin, lifetime/10)
		if err == nil && !now.Before(start.Add(lifetime-margin)) {
			err = fmt.Errorf("the directory's token lives %s, too short to use", lifetime)
		}
		if err != nil {
			// A still usable token stays in use until it is not; the directory is asked
			// again after a pause.
			e.err = err
			e.retryAt = now.Add(entraRetryAfter)
			t.log.Warn("entra id token request failed", "client_id", e.clientID, "token_url", e.tokenURL, "err", err.Error())
		} else {
			// Counted from before the request, on the cache's clock.
			expiry := start.Add(lifetime)
			e.token, e.expiry, e.margin, e.err = tok, expiry, margin, nil
			e.refreshAt = expiry.Add(-min(entraRefreshBefore, lifetime/2))
		}
		close(e.fetching)
		e.fetching = nil
	}()
}

// request asks the directory for a token by the client credentials grant (RFC 6749
// section 4.4, the secret in the form as Entra ID documents it). Its errors never
// hold the secret: the directory's error code and the first line of its description
// (AADSTS…; trace and correlation ids follow), or the transport's error.
func (t *entraTokens) request(ctx context.Context, e *entraEntry) (string, time.Duration, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {e.clientID}, "client_secret": {e.secret}, "scope": {entraScope}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := t.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the host is enough
		}
		return "", 0, fmt.Errorf("token request to %s: %w", req.URL.Host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", 0, fmt.Errorf("token response: %w", err)
	}
	var r struct {
		AccessToken string          `json:"access_token"`
		TokenType   string          `json:"token_type"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
		Error       string          `json:"error"`
		Description string          `json:"error_description"`
	}
	decodeErr := json.Unmarshal(body, &r)
	if resp.StatusCode != http.StatusOK {
		msg := fmt.Sprintf("the directory answered %d", resp.StatusCode)
		if r.Error != "" {
			msg += " " + truncateString(r.Error, 100)
		}
		if d, _, _ := strings.Cut(strings.ReplaceAll(r.Description, "\r", ""), "\n"); d != "" {
			msg += ": " + truncateString(d, 300)
		}
		return "", 0, errors.New(msg)
	}
	if decodeErr != nil || r.AccessToken == "" || !strings.EqualFold(r.TokenType, "Bearer") {
		return "", 0, fmt.Errorf("the directory's answer has no bearer access_token (token_type %q)", truncateString(r.TokenType, 40))
	}
	// expires_in is a number of seconds, a string of one from older endpoints.
	lifetime := entraDefaultLifetime
	if n, err := strconv.ParseInt(strings.Trim(string(r.ExpiresIn), `"`), 10, 64); err == nil && n > 0 {
		lifetime = time.Duration(min(n, 86_400)) * time.Second
	}
	return r.AccessToken, lifetime, nil
}

// truncateString cuts s to at most n bytes, at a character boundary.
func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
