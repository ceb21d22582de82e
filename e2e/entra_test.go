package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/gatehouse-dev/gatehouse/e2e/stack"
)

// TestAzureEntraThroughBothPlanes: an Azure OpenAI provider registered through the
// admin API with a Microsoft Entra ID app (tenant, client id, the client secret as its
// key) reaches the gateway in the snapshot; the gateway gets a token from the
// directory it is configured with and calls Azure with it, never with the secret; the
// usage record reaches Postgres with the tier Azure reported.
func TestAzureEntraThroughBothPlanes(t *testing.T) {
	const (
		tenant = "contoso.onmicrosoft.com"
		client = "0b5d2c9e-1f3a-4c7e-9d2b-6a8f0e4c1b7d"
		secret = "e2e~client~secret"
	)
	var mu sync.Mutex
	var tokenForms []url.Values
	directory := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		mu.Lock()
		tokenForms = append(tokenForms, form)
		mu.Unlock()
		if r.URL.Path != "/"+tenant+"/oauth2/v2.0/token" || form.Get("client_secret") != secret || form.Get("client_id") != client {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"token_type":"Bearer","expires_in":3599,"access_token":"e2e-token"}`)
	}))
	t.Cleanup(directory.Close)
	var azureAuth []string
	azure := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		azureAuth = append(azureAuth, r.Header.Get("Authorization")+"|"+r.Header.Get("Api-Key"))
		mu.Unlock()
		if r.URL.Path != "/openai/deployments/gpt-dep/chat/completions" || r.Header.Get("Authorization") != "Bearer e2e-token" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint."}}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"chatcmpl-az","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from Azure"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8},"service_tier":"default"}`)
	}))
	t.Cleanup(azure.Close)

	st, demo, admin, dbURL := startStackWith(t, func(o *stack.Options) {
		o.GatewayEnv = append(o.GatewayEnv, "GATEHOUSE_AZURE_AUTHORITY="+directory.URL)
	}, "local")
	ctx := context.Background()
	var prov struct {
		ID            string `json:"id"`
		AzureTenantID string `json:"azure_tenant_id"`
		AzureClientID string `json:"azure_client_id"`
		HasCredential bool   `json:"has_credential"`
	}
	if err := admin.Do(ctx, "POST", "/orgs/demo/providers", map[string]any{
		"name": "azure-entra", "type": "azure-openai", "base_url": azure.URL + "/openai", "api_version": "2024-10-21",
		"azure_tenant_id": tenant, "azure_client_id": client, "api_key": secret,
	}, &prov); err != nil {
		t.Fatal(err)
	}
	if prov.AzureTenantID != tenant || prov.AzureClientID != client || !prov.HasCredential {
		t.Fatalf("provider as created: %+v", prov)
	}
	if err := admin.Do(ctx, "POST", "/orgs/demo/models", map[string]any{
		"name": "azure-entra-gpt", "provider": "azure-entra", "upstream_model": "gpt-dep",
		"input_price_per_mtok_micros": 2_500_000, "output_price_per_mtok_micros": 10_000_000,
	}, nil); err != nil {
		t.Fatal(err)
	}
	c := openai.NewClient(option.WithBaseURL(st.Gateways["local"]+"/v1"), option.WithAPIKey(demo.Key), option.WithMaxRetries(0))
	var answer *openai.ChatCompletion
	eventually(t, 15*time.Second, func() error {
		var err error
		answer, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "azure-entra-gpt",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
		return err
	})
	if len(answer.Choices) != 1 || answer.Choices[0].Message.Content != "Hello from Azure" {
		t.Fatalf("answer %+v", answer)
	}
	// The usage record reaches Postgres through NATS and the control plane's ingest,
	// with the tier the provider reported.
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	eventually(t, 10*time.Second, func() error {
		var tier string
		var cost int64
		if err := conn.QueryRow(ctx, `select service_tier, cost_micros from usage_events where org_id = $1 and model = 'azure-entra-gpt' and status_code = 200`,
			demo.OrgID).Scan(&tier, &cost); err != nil {
			return err
		}
		if tier != "default" || cost == 0 {
			return fmt.Errorf("usage row: tier %q, cost %d", tier, cost)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if len(tokenForms) != 1 || tokenForms[0].Get("scope") != "https://cognitiveservices.azure.com/.default" {
		t.Fatalf("token requests %v", tokenForms)
	}
	for _, a := range azureAuth {
		if a != "Bearer e2e-token|" || strings.Contains(a, secret) {
			t.Fatalf("Azure got authorization|api-key %q", a)
		}
	}
}
