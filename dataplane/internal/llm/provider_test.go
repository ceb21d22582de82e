package llm

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// TestUnsupportedProviderTypes checks Speaks against the contract's provider types,
// and that a type without an adapter is refused before any I/O.
func TestUnsupportedProviderTypes(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusTeapot)
	}))
	t.Cleanup(up.Close)
	c, err := NewClient(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	base, _ := url.Parse(up.URL + "/v1")
	tests := []struct {
		typ      gatehousev1.ProviderType
		name     string
		supports bool
	}{
		{gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE, "openai_compatible", true},
		{gatehousev1.ProviderType_PROVIDER_TYPE_ANTHROPIC, "anthropic", true},
		{gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI, "azure_openai", true},
		{gatehousev1.ProviderType_PROVIDER_TYPE_GEMINI, "gemini", true},
		{gatehousev1.ProviderType_PROVIDER_TYPE_UNSPECIFIED, "unspecified", false},
		{gatehousev1.ProviderType(99), "99", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ProviderTypeName(tt.typ); got != tt.name {
				t.Errorf("ProviderTypeName = %q, want %q", got, tt.name)
			}
			if Speaks(tt.typ) != tt.supports {
				t.Errorf("Speaks = %v, want %v", !tt.supports, tt.supports)
			}
			if tt.supports {
				return
			}
			m := &runtime.Model{Name: "x", UpstreamModel: "x", Provider: &runtime.Provider{
				ID: "p", Type: tt.typ, BaseURL: base,
				// Even a usable-looking URL must not be called.
				ChatCompletionsURL: up.URL + "/v1/chat/completions",
			}}
			req, err := ParseChatRequest([]byte(`{"model":"x"}`))
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			res, err := c.Serve(context.Background(), rec, &Request{Surface: SurfaceChat, Chat: req, Candidates: []*runtime.Model{m}})
			var pe *ProviderNotSupportedError
			if !errors.Is(err, ErrProviderNotSupported) || !errors.As(err, &pe) || pe.Type != tt.typ || pe.ProviderID != "p" {
				t.Fatalf("err = %v, want ProviderNotSupportedError for %s", err, tt.typ)
			}
			if res.Status != 0 || rec.Body.Len() != 0 {
				t.Errorf("something was written: status %d body %q", res.Status, rec.Body.String())
			}
		})
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("upstream called %d times", n)
	}
}
