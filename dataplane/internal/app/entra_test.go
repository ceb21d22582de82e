package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/openai/openai-go/v3/responses"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/fakecp"
)

const (
	entraTenant = "contoso.onmicrosoft.com"
	entraClient = "66666666-7777-8888-9999-000000000000"
	entraSecret = "client~secret~value"
)

// fakeDirectory is a Microsoft Entra ID token endpoint on loopback.
type fakeDirectory struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests int
	forms    []url.Values
	paths    []string
	refuse   bool
	gate     chan struct{} // when set, token requests wait for it
}

func startDirectory(t *testing.T) *fakeDirectory {
	d := &fakeDirectory{}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		gate := d.gate
		d.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		d.mu.Lock()
		d.requests++
		n, refuse := d.requests, d.refuse
		d.forms, d.paths = append(d.forms, form), append(d.paths, r.URL.Path)
		d.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if refuse {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}`)
			return
		}
		fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":3599,"access_token":"entra-token-%d"}`, n)
	}))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *fakeDirectory) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requests
}

// useEntra makes the fixture's Azure provider authenticate by Entra ID.
func useEntra(s *gatehousev1.Snapshot) {
	for _, p := range s.Providers {
		if p.Id == "azure" {
			p.AzureEntra = &gatehousev1.AzureEntra{TenantId: entraTenant, ClientId: entraClient}
			p.ApiKey = entraSecret
		}
	}
}

// TestAzureEntraID: an Azure OpenAI provider registered with an Entra ID app gets
// one token from the directory, sends it as a bearer token on every request,
// streamed or not, and never sends the client secret (or an api-key) to the resource.
func TestAzureEntraID(t *testing.T) {
	t.Parallel()
	dir := startDirectory(t)
	h := startHarness(t, harnessOptions{entraAuthority: dir.srv.URL, extra: useEntra})
	ctx := context.Background()

	if _, err := h.client(h.fx.key).Chat.Completions.New(ctx, chatParams("azure-gpt")); err != nil {
		t.Fatal(err)
	}
	stream := h.client(h.fx.key).Chat.Completions.NewStreaming(ctx, chatParams("azure-gpt"))
	var text strings.Builder
	for stream.Next() {
		if c := stream.Current(); len(c.Choices) > 0 {
			text.WriteString(c.Choices[0].Delta.Content)
		}
	}
	if err := stream.Err(); err != nil || text.String() != "Hello" {
		t.Fatalf("stream: %q, %v", text.String(), err)
	}
	// Anthropic's SDK on /v1/messages, translated to Azure: the same token.
	ac := h.anthropicClient()
	msg, err := ac.Messages.New(ctx, anthropic.MessageNewParams{
		Model: "azure-gpt", MaxTokens: 64,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
	})
	if err != nil || len(msg.Content) == 0 {
		t.Fatalf("messages: %+v, %v", msg, err)
	}
	calls := h.upstream.allCalls()
	azure := 0
	for _, c := range calls {
		if !strings.HasPrefix(c.Path, "/openai/deployments/") {
			continue
		}
		azure++
		raw, _ := json.Marshal([]any{c.Header, c.Body, c.Query})
		if c.Header.Get("Authorization") != "Bearer entra-token-1" || c.Header.Get("Api-Key") != "" ||
			strings.Contains(string(raw), entraSecret) {
			t.Fatalf("azure call %s: authorization %q, api-key %q", c.Path, c.Header.Get("Authorization"), c.Header.Get("Api-Key"))
		}
	}
	if azure != 3 {
		t.Fatalf("%d calls reached Azure, want 3", azure)
	}
	dir.mu.Lock()
	defer dir.mu.Unlock()
	if dir.requests != 1 || dir.paths[0] != "/"+entraTenant+"/oauth2/v2.0/token" || dir.forms[0].Get("client_secret") != entraSecret ||
		dir.forms[0].Get("client_id") != entraClient || dir.forms[0].Get("grant_type") != "client_credentials" ||
		dir.forms[0].Get("scope") != "https://cognitiveservices.azure.com/.default" {
		t.Fatalf("directory got %d requests: %v %v", dir.requests, dir.paths, dir.forms)
	}
}

// TestAzureEntraIDRefused: when the directory refuses the app registration, callers
// get a 502 in their API's format saying so, without the secret or the directory's
// words; the usage event records it; the directory is not asked on every request.
func TestAzureEntraIDRefused(t *testing.T) {
	t.Parallel()
	dir := startDirectory(t)
	dir.refuse = true
	h := startHarness(t, harnessOptions{entraAuthority: dir.srv.URL, extra: useEntra})
	for i, tc := range []struct {
		path, body string
		header     map[string]string
		want       string
	}{
		{"/v1/chat/completions", `{"model":"azure-gpt","messages":[{"role":"user","content":"hi"}]}`, nil,
			`{"error":{"message":"The gateway could not get a Microsoft Entra ID token for the model provider.","type":"upstream_error","param":null,"code":"upstream_token_failed"}}`},
		{"/v1/messages", `{"model":"azure-gpt","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, map[string]string{"anthropic-version": "2023-06-01"},
			`"type":"error","error":{"type":"api_error","message":"The gateway could not get a Microsoft Entra ID token for the model provider."}`},
	} {
		header := map[string]string{"Authorization": "Bearer " + h.fx.key}
		for k, v := range tc.header {
			header[k] = v
		}
		resp, body := h.do(t, http.MethodPost, tc.path, header, tc.body)
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), tc.want) ||
			strings.Contains(string(body), entraSecret) || strings.Contains(string(body), "AADSTS") {
			t.Fatalf("%d: %s answered %d %s", i, tc.path, resp.StatusCode, body)
		}
		ev := h.waitUsage(t, resp.Header.Get("X-Request-Id"))
		if ev.StatusCode != http.StatusBadGateway || ev.ErrorClass != "upstream_token_failed" {
			t.Fatalf("usage event %v", ev)
		}
	}
	for _, c := range h.upstream.allCalls() {
		if strings.HasPrefix(c.Path, "/openai/") {
			t.Fatalf("a request reached Azure without a token: %s", c.Path)
		}
	}
	if n := dir.count(); n != 1 {
		t.Fatalf("the directory was asked %d times for two requests within 5 s, want 1", n)
	}
}

// TestAzureEntraIDFallback: a deployment without a token is skipped for the model's
// other deployment, without charging its breaker (a directory outage is not the
// deployment's failure): once the directory answers again, requests reach Azure.
func TestAzureEntraIDFallback(t *testing.T) {
	t.Parallel()
	dir := startDirectory(t)
	dir.refuse = true
	h := startHarness(t, harnessOptions{entraAuthority: dir.srv.URL, extra: func(s *gatehousev1.Snapshot) {
		useEntra(s)
		for _, m := range s.Models {
			if m.Name == "azure-gpt" {
				m.Deployments = []*gatehousev1.Deployment{{Id: "d-openai", ProviderId: "up", UpstreamModel: "up-echo"}}
				m.Routing = &gatehousev1.Routing{MaxRetries: 1, RetryBackoffMs: 1, BreakerFailures: 1, BreakerCooldownMs: 3_600_000}
			}
		}
	}})
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		if _, err := h.client(h.fx.key).Chat.Completions.New(ctx, chatParams("azure-gpt")); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	for _, c := range h.upstream.allCalls() {
		if strings.HasPrefix(c.Path, "/openai/") {
			t.Fatalf("a request reached Azure without a token: %s", c.Path)
		}
	}
	_, metrics := h.do(t, http.MethodGet, "/metrics", nil, "")
	const tokenAttempts = `gatehouse_gateway_upstream_attempts_total{outcome="token",provider_type="azure_openai"} `
	if i := strings.Index(string(metrics), tokenAttempts); i < 0 || strings.HasPrefix(string(metrics[i+len(tokenAttempts):]), "0\n") {
		t.Fatal("no token outcome counted in the attempts metric")
	}
	dir.mu.Lock()
	dir.refuse = false
	dir.mu.Unlock()
	// The directory is asked again 5 s after its refusal; the breaker (one failure,
	// an hour's cooldown) would keep Azure out for an hour had the refusals counted.
	fakecp.Eventually(t, 15*time.Second, func() error {
		if _, err := h.client(h.fx.key).Chat.Completions.New(ctx, chatParams("azure-gpt")); err != nil {
			return err
		}
		for _, c := range h.upstream.allCalls() {
			if strings.HasPrefix(c.Path, "/openai/") && c.Header.Get("Authorization") != "" {
				return nil
			}
		}
		return fmt.Errorf("no request reached Azure yet (%d token requests)", dir.count())
	})
}

// TestAzureEntraIDCallerLeaves: a caller who leaves while the gateway waits for a
// token is not charged (nothing was sent to the provider), and the token request goes
// on for the next caller.
func TestAzureEntraIDCallerLeaves(t *testing.T) {
	t.Parallel()
	dir := startDirectory(t)
	gate := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release) // before the directory closes, should the test stop early
	dir.gate = gate
	h := startHarness(t, harnessOptions{entraAuthority: dir.srv.URL, extra: useEntra})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := h.client(h.fx.key).Chat.Completions.New(ctx, chatParams("azure-gpt")); err == nil {
		t.Fatal("answered without a token")
	}
	ev := h.waitModelUsage(t, "azure-gpt")
	if ev.PromptTokens != 0 || ev.CompletionTokens != 0 || ev.CostMicros != 0 || ev.ErrorClass != "client_closed" {
		t.Fatalf("usage event of the caller who left: %v", ev)
	}
	dir.mu.Lock()
	dir.gate = nil
	dir.mu.Unlock()
	release()
	if _, err := h.client(h.fx.key).Chat.Completions.New(context.Background(), chatParams("azure-gpt")); err != nil {
		t.Fatal(err)
	}
	if n := dir.count(); n != 1 {
		t.Fatalf("%d token requests, want the one the first caller started", n)
	}
}

// TestAzureEntraIDResponses: Azure's Responses API (native requests and stored
// responses) gets the Entra ID token too, never an api-key.
func TestAzureEntraIDResponses(t *testing.T) {
	t.Parallel()
	dir := startDirectory(t)
	up := &nativeResponsesUpstream{cancelled: make(chan struct{}, 1)}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	h := startHarness(t, harnessOptions{entraAuthority: dir.srv.URL, extra: func(s *gatehousev1.Snapshot) {
		s.Providers = append(s.Providers, &gatehousev1.Provider{Id: "az", Name: "az", Type: gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI,
			BaseUrl: srv.URL + "/openai", ApiKey: entraSecret, ApiVersion: azureAPIVersion,
			AzureEntra: &gatehousev1.AzureEntra{TenantId: entraTenant, ClientId: entraClient}})
		s.Models = append(s.Models, &gatehousev1.Model{Id: "m-az", Name: "az-model", ProviderId: "az", UpstreamModel: "my-deployment"})
	}})
	ctx := context.Background()
	got, err := h.client(h.fx.key).Responses.New(ctx, nativeParams("az-model", "patch it"))
	if err != nil || got.OutputText() != "Patched" {
		t.Fatalf("native on Azure: %+v, %v", got, err)
	}
	check := func(what string) {
		t.Helper()
		up.mu.Lock()
		defer up.mu.Unlock()
		if up.auth != "Bearer entra-token-1" || up.apiKey != "" || strings.Contains(up.rawReq, entraSecret) {
			t.Fatalf("%s: authorization %q, api-key %q", what, up.auth, up.apiKey)
		}
	}
	check("create")
	if _, err := h.client(h.fx.key).Responses.Get(ctx, got.ID, responses.ResponseGetParams{}); err != nil {
		t.Fatal(err)
	}
	check("retrieve")
	if n := dir.count(); n != 1 {
		t.Fatalf("%d token requests, want 1", n)
	}
}
