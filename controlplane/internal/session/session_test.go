package session

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/cptest"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
)

func TestSessionLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := cptest.Store(t)
	u, err := st.ProvisionSSOUser(ctx, store.SSOLogin{Email: "ana@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	m := New(Config{Secure: true, Idle: time.Hour, Absolute: 3 * time.Hour}, st)

	rec := httptest.NewRecorder()
	if err := m.Start(ctx, rec, httptest.NewRequest("GET", "/", nil), u.ID); err != nil {
		t.Fatal(err)
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies = %v", cookies)
	}
	c := cookies[0]
	if c.Name != "__Host-gh_session" || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" {
		t.Fatalf("cookie attributes: %+v", c)
	}
	req := func() *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		return r
	}
	s, err := m.Load(req())
	if err != nil || s.UserID != u.ID || s.CSRFToken == "" {
		t.Fatalf("load: %+v, %v", s, err)
	}
	if CheckCSRF(s, "") || CheckCSRF(s, "forged") || !CheckCSRF(s, s.CSRFToken) {
		t.Fatal("CSRF check is wrong")
	}

	start := time.Now()
	tests := []struct {
		name string
		at   time.Time
		ok   bool
	}{
		{"within idle", start.Add(30 * time.Minute), true},
		{"idle timeout", start.Add(61 * time.Minute), false},
		{"absolute timeout", start.Add(3*time.Hour + time.Minute), false},
	}
	for _, tc := range tests {
		m.now = func() time.Time { return tc.at }
		_, err := m.Load(req())
		if tc.ok != (err == nil) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
	m.now = time.Now

	// Logout revokes server-side: the old cookie no longer works.
	r := req()
	if err := m.End(httptest.NewRecorder(), r); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Load(req()); !errors.Is(err, ErrNoSession) {
		t.Fatalf("revoked session loaded: %v", err)
	}
	// A forged cookie is no session.
	forged := httptest.NewRequest("GET", "/", nil)
	forged.AddCookie(&http.Cookie{Name: c.Name, Value: Random(32)})
	if _, err := m.Load(forged); !errors.Is(err, ErrNoSession) {
		t.Fatalf("forged session loaded: %v", err)
	}
}
