package httpapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

func TestPanicAnswers500(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	s, err := New(Config{
		Store: &runtime.Store{}, MaxBodyBytes: 1024,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg, Gatherer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		h    http.Handler
	}{
		{"api handler", s.base(s.api("boom", func(http.ResponseWriter, *http.Request, *call) error { panic("boom") }))},
		{"plain handler", s.base(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			tt.h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			if rec.Code != http.StatusInternalServerError {
				t.Fatalf("status = %d", rec.Code)
			}
			if rec.Header().Get("x-request-id") == "" {
				t.Error("no request id")
			}
			var body errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code == nil || *body.Error.Code != "internal_error" {
				t.Fatalf("body = %s (%v)", rec.Body.String(), err)
			}
		})
	}
}

func TestPresentedKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		header map[string]string
		want   string
	}{
		{"bearer", map[string]string{"Authorization": "Bearer k1"}, "k1"},
		{"lower-case scheme", map[string]string{"Authorization": "bearer k1"}, "k1"},
		{"x-api-key", map[string]string{"x-api-key": "k2"}, "k2"},
		{"authorization wins", map[string]string{"Authorization": "Bearer k1", "x-api-key": "k2"}, "k1"},
		{"basic is not a key", map[string]string{"Authorization": "Basic k1"}, ""},
		{"none", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/", nil)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			if got := presentedKey(r); got != tt.want {
				t.Fatalf("key = %q, want %q", got, tt.want)
			}
		})
	}
}
