package app_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/fakecp"
)

// TestCapability2Requests drives regions, aliases, other-region models and provider
// types through the OpenAI SDK: each case either succeeds against the expected upstream
// model or fails with the expected status, code and message.
func TestCapability2Requests(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	tests := []struct {
		name     string
		key      string
		model    string
		upstream string // on success
		status   int
		code     string
		msg      string // part of the error message
		agent    string // agent identity of the usage event
	}{
		{name: "alias", key: h.fx.key, model: "fast", upstream: "up-echo"},
		{name: "alias allowed through its target", key: h.fx.limited, model: "fast", upstream: "up-echo"},
		{name: "alias allowed by name", key: h.fx.agent, model: "fast", upstream: "up-echo", agent: "planner"},
		{name: "target not allowed when only the alias is", key: h.fx.agent, model: "echo",
			status: 403, code: "model_not_allowed", agent: "planner"},
		{name: "model offered in another region", key: h.fx.key, model: "us-only",
			status: 404, code: "model_not_in_region", msg: `model "us-only" is not offered in region "eu-test" (offered in: us-test)`},
		{name: "alias of a model offered in another region", key: h.fx.key, model: "far",
			status: 404, code: "model_not_in_region", msg: `model "far" is not offered in region "eu-test" (offered in: us-test); it is the team's alias of "us-only"`},
		{name: "unknown everywhere", key: h.fx.key, model: "gpt-9", status: 404, code: "model_not_found"},
		{name: "anthropic provider (capability 3 adapter)", key: h.fx.key, model: "claude", upstream: "claude-sonnet"},
		{name: "key kept out of the region", key: h.fx.usOnly, model: "echo",
			status: 403, code: "region_not_allowed", msg: `This key may not be used in region "eu-test".`},
		{name: "team kept out of the region", key: h.fx.teamC, model: "echo",
			status: 403, code: "region_not_allowed", msg: `This key may not be used in region "eu-test".`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var httpResp *http.Response
			got, err := h.client(tt.key).Chat.Completions.New(context.Background(), chatParams(tt.model), option.WithResponseInto(&httpResp))
			if tt.status == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if got.Model != tt.upstream {
					t.Errorf("upstream model = %q, want %q", got.Model, tt.upstream)
				}
			} else {
				var apiErr *openai.Error
				if !errors.As(err, &apiErr) {
					t.Fatalf("err = %v, want an API error", err)
				}
				if apiErr.StatusCode != tt.status || apiErr.Code != tt.code || !strings.Contains(apiErr.Message, tt.msg) {
					t.Fatalf("error = %d %q %q, want %d %q containing %q", apiErr.StatusCode, apiErr.Code, apiErr.Message, tt.status, tt.code, tt.msg)
				}
				httpResp = apiErr.Response
			}
			ev := h.waitUsage(t, httpResp.Header.Get("x-request-id"))
			wantModel := tt.model
			if tt.code == "region_not_allowed" {
				wantModel = "" // refused at authentication, before the body is read
			}
			if ev.Model != wantModel || ev.ErrorClass != tt.code || ev.StatusCode != int32(max(tt.status, 200)) || ev.AgentIdentity != tt.agent {
				t.Errorf("usage event = %v, want model %q, class %q, agent %q", ev, wantModel, tt.code, tt.agent)
			}
			if tt.status == 0 && ev.UpstreamModel != tt.upstream {
				t.Errorf("usage event upstream model = %q, want %q", ev.UpstreamModel, tt.upstream)
			}
		})
	}
}

// TestCapability2ErrorBodies checks the exact OpenAI error shape of the new refusals.
func TestCapability2ErrorBodies(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	chat := func(model string) string { return fmt.Sprintf(`{"model":%q,"messages":[]}`, model) }
	tests := []struct {
		name       string
		method     string
		path       string
		key        string
		body       string
		wantStatus int
		wantType   string
		wantCode   string
	}{
		{"not in region", "POST", "/v1/chat/completions", h.fx.key, chat("us-only"), 404, "invalid_request_error", "model_not_in_region"},
		{"region refused on chat", "POST", "/v1/chat/completions", h.fx.teamC, chat("echo"), 403, "permission_error", "region_not_allowed"},
		{"region refused on models", "GET", "/v1/models", h.fx.usOnly, "", 403, "permission_error", "region_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := h.do(t, tt.method, tt.path, bearer(tt.key), tt.body)
			checkError(t, resp, body, tt.wantStatus, tt.wantType, tt.wantCode, upstreamKey, tt.key, "mcp-secret")
		})
	}
	// Nothing was sent to the provider for the model the gateway cannot call.
	if call, err := h.upstream.lastCall(); err == nil {
		t.Errorf("upstream called: %+v", call)
	}
}

// TestConfigCache restarts a gateway while NATS is down: it becomes ready from its
// disk cache, serves the cached keys, and follows the live config once NATS is back.
func TestConfigCache(t *testing.T) {
	t.Parallel()
	cache := t.TempDir()
	h := startHarness(t, harnessOptions{cacheDir: cache})
	for _, org := range []string{"acme", "frozen"} {
		fakecp.Eventually(t, 5*time.Second, func() error {
			_, err := os.Stat(filepath.Join(cache, region, org+".cfg"))
			return err
		})
	}
	raw, err := os.ReadFile(filepath.Join(cache, region, "acme.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), upstreamKey) || strings.Contains(string(raw), "mcp-secret") {
		t.Fatal("cache file holds credentials in clear")
	}
	h.stop()
	h.cp.Stop()

	h.startGateway(t, harnessOptions{cacheDir: cache, cacheGrace: 100 * time.Millisecond})
	fakecp.Eventually(t, 10*time.Second, func() error {
		if resp, _ := h.do(t, "GET", "/readyz", nil, ""); resp.StatusCode != 200 {
			return fmt.Errorf("readyz = %d with NATS down and a cache", resp.StatusCode)
		}
		return nil
	})
	for _, model := range []string{"echo", "fast"} {
		got, err := h.client(h.fx.key).Chat.Completions.New(context.Background(), chatParams(model))
		if err != nil {
			t.Fatalf("chat %s from the cached config: %v", model, err)
		}
		if got.Model != "up-echo" {
			t.Errorf("chat %s: upstream model %q", model, got.Model)
		}
	}
	resp, body := h.do(t, "GET", "/metrics", nil, "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "gatehouse_gateway_config_from_cache 1") {
		t.Errorf("metrics do not say the config comes from the cache")
	}

	// NATS is back: the live values take over and an update (revoking the key) applies.
	h.cp.Restart()
	h.fx.snap.Keys = h.fx.snap.Keys[1:]
	h.cp.Publish(region, h.fx.snap)
	fakecp.Eventually(t, 10*time.Second, func() error {
		if resp, _ := h.do(t, "GET", "/v1/models", bearer(h.fx.key), ""); resp.StatusCode != 401 {
			return fmt.Errorf("revoked key answered %d", resp.StatusCode)
		}
		return nil
	})
	if resp, body := h.do(t, "GET", "/v1/models", bearer(h.fx.limited), ""); resp.StatusCode != 200 {
		t.Errorf("models = %d %s", resp.StatusCode, body)
	}
	// The revocation may be applied while the live initial values are still arriving;
	// the cache flag drops once they are all in.
	fakecp.Eventually(t, 10*time.Second, func() error {
		resp, body := h.do(t, "GET", "/metrics", nil, "")
		if resp.StatusCode != 200 || !strings.Contains(string(body), "gatehouse_gateway_config_from_cache 0") {
			return fmt.Errorf("metrics still say the config comes from the cache")
		}
		return nil
	})
}
