package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/llm"
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
		name      string
		header    http.Header
		want      string
		ambiguous bool
	}{
		{"bearer", http.Header{"Authorization": {"Bearer k1"}}, "k1", false},
		{"lower-case scheme", http.Header{"Authorization": {"bearer k1"}}, "k1", false},
		{"x-api-key", http.Header{"X-Api-Key": {"k2"}}, "k2", false},
		{"both, the same key", http.Header{"Authorization": {"Bearer k1"}, "X-Api-Key": {"k1"}}, "k1", false},
		{"both, different keys", http.Header{"Authorization": {"Bearer k1"}, "X-Api-Key": {"k2"}}, "", true},
		{"two authorization headers", http.Header{"Authorization": {"Bearer k1", "Bearer k2"}}, "", true},
		{"two x-api-key headers", http.Header{"X-Api-Key": {"k2", "k2"}}, "", true},
		{"basic is not a key", http.Header{"Authorization": {"Basic k1"}}, "", false},
		{"basic does not fall back to x-api-key", http.Header{"Authorization": {"Basic k1"}, "X-Api-Key": {"k2"}}, "", false},
		{"an empty authorization header is none", http.Header{"Authorization": {""}, "X-Api-Key": {"k2"}}, "k2", false},
		{"none", nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/", nil)
			r.Header = tt.header.Clone()
			if r.Header == nil {
				r.Header = http.Header{}
			}
			got, err := presentedKey(r)
			if got != tt.want || (err != nil) != tt.ambiguous {
				t.Fatalf("key = %q, err %v; want %q, ambiguous %v", got, err, tt.want, tt.ambiguous)
			}
		})
	}
}

func TestCapability2Errors(t *testing.T) {
	t.Parallel()
	type answer struct {
		Status            int
		Type, Code, Param string
		Msg               string
	}
	tests := []struct {
		name  string
		err   error
		model string
		want  answer
	}{
		{"region", fmt.Errorf("authenticate: %w", &runtime.RegionError{Region: "us"}), "",
			answer{403, "permission_error", "region_not_allowed", "", `This key may not be used in region "us".`}},
		{"model in another region",
			fmt.Errorf("x: %w", &runtime.ModelNotInRegionError{Model: "eu-only", Target: "eu-only", Region: "us", OfferedIn: []string{"eu"}}), "eu-only",
			answer{404, "invalid_request_error", "model_not_in_region", "model", `The model "eu-only" is not offered in region "us" (offered in: eu).`}},
		{"alias of a model in other regions",
			&runtime.ModelNotInRegionError{Model: "fast", Target: "eu-only", Region: "us", OfferedIn: []string{"ap", "eu"}}, "fast",
			answer{404, "invalid_request_error", "model_not_in_region", "model",
				`The model "fast" is not offered in region "us" (offered in: ap, eu); it is the team's alias of "eu-only".`}},
		{"provider type without adapter",
			fmt.Errorf("chat completions: %w", &llm.ProviderNotSupportedError{ProviderID: "p", Type: gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI}), "gpt-azure",
			answer{501, "invalid_request_error", "provider_not_supported", "model",
				`The model "gpt-azure" is served by a provider of type azure_openai, which this gateway cannot call yet.`}},
		{"unknown everywhere", runtime.ErrModelNotFound, "nope",
			answer{404, "invalid_request_error", "model_not_found", "model", "The model `nope` does not exist or you do not have access to it."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := toAPIError(tt.err, tt.model)
			got := answer{e.status, e.typ, e.code, e.param, e.msg}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCapability3Errors(t *testing.T) {
	t.Parallel()
	type answer struct {
		Status            int
		Type, Code, Param string
		Msg               string
	}
	tests := []struct {
		name  string
		err   error
		model string
		want  answer
	}{
		{"limit refusal", fmt.Errorf("admission: %w", &llm.Refusal{Status: 429, Code: "rate_limit_exceeded", Message: "Slow down."}), "m",
			answer{429, "rate_limit_error", "rate_limit_exceeded", "", "Slow down."}},
		{"guardrail refusal without status", &llm.Refusal{Code: "content_blocked", Message: "Blocked."}, "m",
			answer{400, "invalid_request_error", "content_blocked", "", "Blocked."}},
		{"budget refusal", &llm.Refusal{Status: 403, Code: "budget_exhausted", Message: "No budget."}, "m",
			answer{403, "permission_error", "budget_exhausted", "", "No budget."}},
		{"every breaker open", fmt.Errorf("route: %w", llm.ErrNoDeployment), "m",
			answer{503, "upstream_error", "upstream_unavailable", "", "Every deployment of the model is failing; the gateway stopped calling them for a while. Retry shortly."}},
		{"operation not supported", fmt.Errorf("embeddings: %w", llm.ErrOperationNotSupported), "claude",
			answer{400, "invalid_request_error", "operation_not_supported", "model", `The model "claude" does not support this operation.`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := toAPIError(tt.err, tt.model)
			got := answer{e.status, e.typ, e.code, e.param, e.msg}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
}

// TestErrorFormats checks one error rendered for each surface: OpenAI's shape for the
// OpenAI endpoints, Anthropic's (type by status) for Messages.
func TestErrorFormats(t *testing.T) {
	t.Parallel()
	e := &apiError{status: 404, typ: "invalid_request_error", code: "model_not_found", param: "model", msg: "No such model."}
	rec := httptest.NewRecorder()
	writeAPIError(rec, llm.SurfaceChat, e)
	if got := rec.Body.String(); got != `{"error":{"message":"No such model.","type":"invalid_request_error","param":"model","code":"model_not_found"}}`+"\n" {
		t.Errorf("openai body = %s", got)
	}
	rec = httptest.NewRecorder()
	writeAPIError(rec, llm.SurfaceMessages, e)
	if got := rec.Body.String(); got != `{"type":"error","error":{"type":"not_found_error","message":"No such model."}}`+"\n" || rec.Code != 404 {
		t.Errorf("anthropic body = %d %s", rec.Code, got)
	}
	for status, typ := range map[int]string{400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
		413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 502: "api_error", 503: "overloaded_error", 504: "timeout_error", 529: "overloaded_error"} {
		if got := llm.AnthropicErrorType(status); got != typ {
			t.Errorf("AnthropicErrorType(%d) = %q, want %q", status, got, typ)
		}
	}
}
