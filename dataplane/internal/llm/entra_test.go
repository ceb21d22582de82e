package llm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

const (
	entraTenant = "11111111-2222-3333-4444-555555555555"
	entraClient = "66666666-7777-8888-9999-000000000000"
	entraSecret = "s3cr3t~client~secret"
)

// tokenServer is a Microsoft Entra ID token endpoint on loopback.
type tokenServer struct {
	srv *httptest.Server

	mu        sync.Mutex
	requests  int
	form      url.Values
	path      string
	refuse    bool          // answer 401 invalid_client
	expiresIn int           // seconds
	gate      chan struct{} // when set, each request waits for it
	arrived   chan struct{} // receives when a request reaches the gate
}

func newTokenServer(t *testing.T) *tokenServer {
	ts := &tokenServer{expiresIn: 3600, arrived: make(chan struct{}, 16)}
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.mu.Lock()
		gate := ts.gate
		ts.mu.Unlock()
		if gate != nil {
			ts.arrived <- struct{}{}
			<-gate
		}
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		ts.mu.Lock()
		ts.requests++
		n, refuse, exp := ts.requests, ts.refuse, ts.expiresIn
		ts.form, ts.path = form, r.URL.Path
		ts.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if refuse {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 0d5e\r\nCorrelation ID: 77aa","error_codes":[7000215]}`)
			return
		}
		fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":%d,"ext_expires_in":%d,"access_token":"tok-%d"}`, exp, exp, n)
	}))
	t.Cleanup(ts.srv.Close)
	return ts
}

func (ts *tokenServer) count() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.requests
}

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func entraProvider(secret string) *runtime.Provider {
	return &runtime.Provider{ID: "az", Entra: &runtime.EntraApp{TenantID: entraTenant, ClientID: entraClient, Secret: secret, Key: "key-" + secret}}
}

func newTestTokens(t *testing.T, ts *tokenServer, logs io.Writer) (*entraTokens, *clock) {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	tk := newEntraTokens(ts.srv.URL+"/", ts.srv.Client(), slog.New(slog.NewTextHandler(logs, nil)))
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	tk.now = clk.Now
	return tk, clk
}

// waitIdle waits until no token request is in flight for p.
func waitIdle(t *testing.T, tk *entraTokens, p *runtime.Provider) {
	t.Helper()
	e := tk.entry(p.Entra)
	e.mu.Lock()
	done := e.fetching
	e.mu.Unlock()
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("token request still in flight")
	}
}

func TestEntraTokenIsCachedAndRenewedAhead(t *testing.T) {
	ts := newTokenServer(t)
	tk, clk := newTestTokens(t, ts, nil)
	p := entraProvider(entraSecret)
	ctx := context.Background()

	tok, err := tk.token(ctx, p)
	if err != nil || tok != "tok-1" {
		t.Fatalf("first token %q, %v", tok, err)
	}
	ts.mu.Lock()
	form, path := ts.form, ts.path
	ts.mu.Unlock()
	if path != "/"+entraTenant+"/oauth2/v2.0/token" || form.Get("grant_type") != "client_credentials" ||
		form.Get("client_id") != entraClient || form.Get("client_secret") != entraSecret ||
		form.Get("scope") != "https://cognitiveservices.azure.com/.default" {
		t.Fatalf("token request to %s with %v", path, form)
	}
	for i := 0; i < 5; i++ {
		if tok, err := tk.token(ctx, p); err != nil || tok != "tok-1" {
			t.Fatalf("cached token %q, %v", tok, err)
		}
	}
	if n := ts.count(); n != 1 {
		t.Fatalf("%d token requests for 6 calls, want 1", n)
	}

	// Four minutes before expiry: the token in hand still serves, and one renewal
	// starts in the background.
	clk.add(56 * time.Minute)
	for i := 0; i < 3; i++ {
		if tok, err := tk.token(ctx, p); err != nil || tok != "tok-1" {
			t.Fatalf("token during renewal %q, %v", tok, err)
		}
	}
	waitIdle(t, tk, p)
	if tok, err := tk.token(ctx, p); err != nil || tok != "tok-2" {
		t.Fatalf("renewed token %q, %v", tok, err)
	}
	if n := ts.count(); n != 2 {
		t.Fatalf("%d token requests, want 2", n)
	}

	// Expired (the clock jumped past it): the call waits for a new one.
	clk.add(2 * time.Hour)
	if tok, err := tk.token(ctx, p); err != nil || tok != "tok-3" {
		t.Fatalf("token after expiry %q, %v", tok, err)
	}

	// A rotated secret is another registration: tokens of its own.
	if tok, err := tk.token(ctx, entraProvider("rotated")); err != nil || tok != "tok-4" {
		t.Fatalf("token of the rotated secret %q, %v", tok, err)
	}
}

// A short-lived token is renewed half its lifetime ahead, not 5 minutes (which would
// renew it on every call).
func TestEntraShortTokenRenewedAtHalfLife(t *testing.T) {
	ts := newTokenServer(t)
	ts.expiresIn = 120
	tk, clk := newTestTokens(t, ts, nil)
	p := entraProvider(entraSecret)
	if _, err := tk.token(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	clk.add(50 * time.Second)
	if _, err := tk.token(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, tk, p)
	if n := ts.count(); n != 1 {
		t.Fatalf("%d token requests at 50 s of 120, want 1", n)
	}
	clk.add(15 * time.Second)
	if tok, err := tk.token(context.Background(), p); err != nil || tok != "tok-1" {
		t.Fatalf("token at 65 s %q, %v", tok, err)
	}
	waitIdle(t, tk, p)
	if n := ts.count(); n != 2 {
		t.Fatalf("%d token requests at 65 s of 120, want 2", n)
	}
}

func TestEntraConcurrentCallersShareOneRequest(t *testing.T) {
	ts := newTokenServer(t)
	gate := make(chan struct{})
	ts.gate = gate
	tk, _ := newTestTokens(t, ts, nil)
	p := entraProvider(entraSecret)

	// One caller starts the request and gives up while waiting; the request goes on
	// for the others.
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() {
		_, err := tk.token(ctx, p)
		gone <- err
	}()
	<-ts.arrived
	var wg sync.WaitGroup
	toks := make(chan string, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := tk.token(context.Background(), p)
			if err != nil {
				t.Error(err)
			}
			toks <- tok
		}()
	}
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	close(gate)
	wg.Wait()
	close(toks)
	for tok := range toks {
		if tok != "tok-1" {
			t.Fatalf("a caller got %q", tok)
		}
	}
	if n := ts.count(); n != 1 {
		t.Fatalf("%d token requests for 21 callers, want 1", n)
	}
}

func TestEntraRefusalIsRememberedBriefly(t *testing.T) {
	ts := newTokenServer(t)
	ts.refuse = true
	var logs strings.Builder
	var logMu sync.Mutex
	tk, clk := newTestTokens(t, ts, writerFunc(func(b []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(b)
	}))
	p := entraProvider(entraSecret)
	_, err := tk.token(context.Background(), p)
	if !errors.Is(err, ErrUpstreamToken) || !strings.Contains(err.Error(), "401 invalid_client: AADSTS7000215: Invalid client secret provided.") ||
		strings.Contains(err.Error(), "Trace ID") || strings.Contains(err.Error(), entraSecret) {
		t.Fatalf("refusal: %v", err)
	}
	// Within the next 5 seconds the directory is not asked again.
	clk.add(4 * time.Second)
	if _, err := tk.token(context.Background(), p); !errors.Is(err, ErrUpstreamToken) {
		t.Fatalf("second call: %v", err)
	}
	if n := ts.count(); n != 1 {
		t.Fatalf("%d token requests within 5 s of a refusal, want 1", n)
	}
	// Then it is, and a fixed registration gets its token.
	ts.mu.Lock()
	ts.refuse = false
	ts.mu.Unlock()
	clk.add(2 * time.Second)
	if tok, err := tk.token(context.Background(), p); err != nil || tok != "tok-2" {
		t.Fatalf("after the pause: %q, %v", tok, err)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "AADSTS7000215") || strings.Contains(logs.String(), entraSecret) {
		t.Fatalf("log: %s", logs.String())
	}
}

// An unreachable directory is ErrUpstreamToken too, naming the endpoint without
// anything of the request.
func TestEntraUnreachable(t *testing.T) {
	ts := newTokenServer(t)
	tk, _ := newTestTokens(t, ts, nil)
	ts.srv.Close()
	_, err := tk.token(context.Background(), entraProvider(entraSecret))
	if !errors.Is(err, ErrUpstreamToken) || !strings.Contains(err.Error(), "token request to 127.0.0.1:") || strings.Contains(err.Error(), entraSecret) {
		t.Fatalf("unreachable: %v", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// The directory's answer as older endpoints give it (expires_in a string) is read; an
// answer without a bearer token is a failure, not an empty Authorization header.
func TestEntraTokenAnswers(t *testing.T) {
	answer := `{"token_type":"Bearer","expires_in":"1200","access_token":"tok-s"}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, answer)
	}))
	t.Cleanup(srv.Close)
	tk := newEntraTokens(srv.URL, srv.Client(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	tk.now = clk.Now
	p := entraProvider(entraSecret)
	if tok, err := tk.token(context.Background(), p); err != nil || tok != "tok-s" {
		t.Fatalf("string expires_in: %q, %v", tok, err)
	}
	if e := tk.entry(p.Entra); !e.expiry.Equal(clk.Now().Add(20*time.Minute)) || !e.refreshAt.Equal(clk.Now().Add(15*time.Minute)) {
		t.Fatalf("expiry %v, renewal %v", e.expiry, e.refreshAt)
	}
	answer = `{"token_type":"mac","access_token":"x"}`
	if _, err := tk.token(context.Background(), entraProvider("other")); !errors.Is(err, ErrUpstreamToken) || !strings.Contains(err.Error(), `token_type "mac"`) {
		t.Fatalf("not a bearer token: %v", err)
	}
}

// A renewal the directory refuses leaves the token in hand in use until its last
// minute, asking again every 5 seconds; after that, callers get the refusal.
func TestEntraFailedRenewalKeepsTheToken(t *testing.T) {
	ts := newTokenServer(t)
	tk, clk := newTestTokens(t, ts, nil)
	p := entraProvider(entraSecret)
	ctx := context.Background()
	if tok, err := tk.token(ctx, p); err != nil || tok != "tok-1" {
		t.Fatalf("first token %q, %v", tok, err)
	}
	ts.mu.Lock()
	ts.refuse = true
	ts.mu.Unlock()
	clk.add(56 * time.Minute) // renewal due
	for i := 0; i < 3; i++ {
		if tok, err := tk.token(ctx, p); err != nil || tok != "tok-1" {
			t.Fatalf("during a refused renewal: %q, %v", tok, err)
		}
		waitIdle(t, tk, p)
	}
	if n := ts.count(); n != 2 {
		t.Fatalf("%d token requests within 5 s of a refused renewal, want 2", n)
	}
	clk.add(6 * time.Second)
	if tok, err := tk.token(ctx, p); err != nil || tok != "tok-1" {
		t.Fatalf("after the pause: %q, %v", tok, err)
	}
	waitIdle(t, tk, p)
	if n := ts.count(); n != 3 {
		t.Fatalf("%d token requests after the pause, want 3", n)
	}
	// In its last minute the token is not sent: a request in flight would carry it
	// past its expiry.
	clk.add(3*time.Minute + 10*time.Second) // 59:16
	if tok, err := tk.token(ctx, p); !errors.Is(err, ErrUpstreamToken) {
		t.Fatalf("a token in its last minute: %q, %v", tok, err)
	}
	ts.mu.Lock()
	ts.refuse = false
	ts.mu.Unlock()
	clk.add(6 * time.Second)
	if tok, err := tk.token(ctx, p); err != nil || tok != "tok-5" {
		t.Fatalf("after the directory came back: %q, %v", tok, err)
	}
}

// A token too short-lived to use is a failure, remembered as one: the directory is
// not asked by every caller in turn.
func TestEntraTokenTooShort(t *testing.T) {
	ts := newTokenServer(t)
	ts.expiresIn = 1
	tk, clk := newTestTokens(t, ts, nil)
	clk.add(0)
	p := entraProvider(entraSecret)
	// The cache's clock does not move while the request runs, so a 1 s token is
	// usable for 0.9 s; move the clock inside the directory to make it arrive late.
	ts.mu.Lock()
	ts.srv.Config.Handler = slowHandler(ts.srv.Config.Handler, func() { clk.add(2 * time.Second) })
	ts.mu.Unlock()
	if _, err := tk.token(context.Background(), p); !errors.Is(err, ErrUpstreamToken) || !strings.Contains(err.Error(), "too short") {
		t.Fatalf("a token expired on arrival: %v", err)
	}
	if _, err := tk.token(context.Background(), p); !errors.Is(err, ErrUpstreamToken) {
		t.Fatalf("second call: %v", err)
	}
	if n := ts.count(); n != 1 {
		t.Fatalf("%d token requests, want 1", n)
	}
}

func slowHandler(h http.Handler, before func()) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		before()
		h.ServeHTTP(w, r)
	})
}
