package adminapi_test

import (
	"strings"
	"testing"
)

// TestRegistryEdits edits a provider and a model through the API: only what is sent
// changes, the credential is never echoed, and bad edits get the API's error JSON.
func TestRegistryEdits(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t)
	c := client{t, srv.URL}
	if status, _ := c.do("POST", "/orgs", `{"slug":"acme","name":"Acme"}`); status != 201 {
		t.Fatalf("create org: %d", status)
	}
	status, p := c.do("POST", "/orgs/acme/providers", `{"name":"up","base_url":"http://127.0.0.1:9/v1","api_key":"sk-old"}`)
	if status != 201 {
		t.Fatalf("create provider: %d %v", status, p)
	}
	pid := p["id"].(string)
	status, m := c.do("POST", "/orgs/acme/models", `{"name":"demo","provider":"up","input_price_per_mtok_micros":100,"output_price_per_mtok_micros":200}`)
	if status != 201 {
		t.Fatalf("create model: %d %v", status, m)
	}
	mid := m["id"].(string)

	status, p = c.do("PATCH", "/orgs/acme/providers/"+pid, `{"api_key":"sk-new-secret","native_responses":true,"type":"openai-compatible"}`)
	if status != 200 || p["native_responses"] != true || p["has_credential"] != true || p["base_url"] != "http://127.0.0.1:9/v1" || p["name"] != "up" {
		t.Fatalf("patch provider: %d %v", status, p)
	}
	if strings.Contains(mustJSON(t, p), "sk-new-secret") {
		t.Fatal("the credential was echoed")
	}
	status, p = c.do("PATCH", "/orgs/acme/providers/"+pid, `{"api_key":""}`)
	if status != 200 || p["has_credential"] != false || p["native_responses"] != true {
		t.Fatalf("remove credential: %d %v", status, p)
	}
	status, m = c.do("PATCH", "/orgs/acme/models/"+mid, `{"output_price_per_mtok_micros":900,"context_window":8192}`)
	if status != 200 || m["output_price_per_mtok_micros"] != float64(900) || m["input_price_per_mtok_micros"] != float64(100) ||
		m["context_window"] != float64(8192) || m["name"] != "demo" {
		t.Fatalf("patch model: %d %v", status, m)
	}
	status, audit := c.do("GET", "/orgs/acme/audit?action=provider.update", "")
	if status != 200 || len(audit["data"].([]any)) != 2 || strings.Contains(mustJSON(t, audit), "sk-new-secret") {
		t.Fatalf("audit: %d %v", status, audit)
	}

	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code, field              string
	}{
		{"provider type change", "PATCH", "/orgs/acme/providers/" + pid, `{"type":"anthropic"}`, 422, "invalid", "type"},
		{"provider bad url", "PATCH", "/orgs/acme/providers/" + pid, `{"base_url":"javascript:alert(1)"}`, 422, "invalid", "base_url"},
		{"provider unknown field", "PATCH", "/orgs/acme/providers/" + pid, `{"apikey":"x"}`, 400, "bad_request", ""},
		{"provider wrong type", "PATCH", "/orgs/acme/providers/" + pid, `{"native_responses":"yes"}`, 400, "bad_request", ""},
		{"unknown provider", "PATCH", "/orgs/acme/providers/00000000-0000-0000-0000-000000000000", `{"name":"x"}`, 404, "not_found", ""},
		{"malformed provider id", "PATCH", "/orgs/acme/providers/nope", `{"name":"x"}`, 404, "not_found", ""},
		{"model negative price", "PATCH", "/orgs/acme/models/" + mid, `{"input_price_per_mtok_micros":-1}`, 422, "invalid", "input_price_per_mtok_micros"},
		{"model name change", "PATCH", "/orgs/acme/models/" + mid, `{"name":"other"}`, 400, "bad_request", ""},
		{"unknown model", "PATCH", "/orgs/acme/models/00000000-0000-0000-0000-000000000000", `{"context_window":1}`, 404, "not_found", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := c.do(tc.method, tc.path, tc.body)
			e, _ := body["error"].(map[string]any)
			if status != tc.status || e["code"] != tc.code {
				t.Fatalf("status %d body %v, want %d %s", status, body, tc.status, tc.code)
			}
			if tc.field != "" {
				if fields, _ := e["fields"].(map[string]any); fields[tc.field] == nil {
					t.Fatalf("no message for field %s: %v", tc.field, body)
				}
			}
		})
	}
	// Nothing the refused edits sent stuck.
	status, plist := c.do("GET", "/orgs/acme/providers", "")
	if status != 200 || !strings.Contains(mustJSON(t, plist), `"base_url":"http://127.0.0.1:9/v1"`) || !strings.Contains(mustJSON(t, plist), `"type":"openai-compatible"`) {
		t.Fatalf("providers after refused edits: %d %v", status, plist)
	}
	status, list := c.do("GET", "/orgs/acme/models", "")
	if status != 200 || !strings.Contains(mustJSON(t, list), `"input_price_per_mtok_micros":100`) {
		t.Fatalf("models after refused edits: %d %v", status, list)
	}
}

// TestAzureEntraProvider registers and edits an Azure OpenAI provider that
// authenticates with Microsoft Entra ID through the API: the ids come back on create,
// list and PATCH, the client secret never does (has_credential says it is there), and
// bad ids or a switch without a new credential are refused on their field.
func TestAzureEntraProvider(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t)
	c := client{t, srv.URL}
	const (
		tenant = "11111111-2222-4333-8444-555555555555"
		client = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
		secret = "entra-client-secret-789"
	)
	if status, _ := c.do("POST", "/orgs", `{"slug":"acme","name":"Acme"}`); status != 201 {
		t.Fatalf("create org: %d", status)
	}
	status, p := c.do("POST", "/orgs/acme/providers", `{"name":"azure","type":"azure-openai","base_url":"http://127.0.0.1:9","api_version":"2024-10-21",
		"azure_tenant_id":"`+tenant+`","azure_client_id":"`+client+`","api_key":"`+secret+`"}`)
	if status != 201 || p["azure_tenant_id"] != tenant || p["azure_client_id"] != client || p["has_credential"] != true {
		t.Fatalf("create provider: %d %v", status, p)
	}
	pid := p["id"].(string)
	status, list := c.do("GET", "/orgs/acme/providers", "")
	if status != 200 || !strings.Contains(mustJSON(t, list), `"azure_client_id":"`+client+`","azure_tenant_id":"`+tenant+`"`) ||
		strings.Contains(mustJSON(t, list), secret) {
		t.Fatalf("list providers: %d %v", status, list)
	}
	status, p = c.do("PATCH", "/orgs/acme/providers/"+pid, `{"azure_tenant_id":"contoso.onmicrosoft.com"}`)
	if status != 200 || p["azure_tenant_id"] != "contoso.onmicrosoft.com" || p["azure_client_id"] != client || p["has_credential"] != true {
		t.Fatalf("new tenant: %d %v", status, p)
	}
	status, p = c.do("PATCH", "/orgs/acme/providers/"+pid, `{"azure_tenant_id":"","azure_client_id":"","api_key":"azure-api-key"}`)
	if status != 200 || p["azure_tenant_id"] != nil || p["azure_client_id"] != nil || p["has_credential"] != true {
		t.Fatalf("back to the API key: %d %v", status, p)
	}
	status, audit := c.do("GET", "/orgs/acme/audit?action=provider.update", "")
	if status != 200 || len(audit["data"].([]any)) != 2 || strings.Contains(mustJSON(t, audit), secret) || strings.Contains(mustJSON(t, audit), "azure-api-key") {
		t.Fatalf("audit: %d %v", status, audit)
	}

	for _, tc := range []struct {
		name, method, path, body, field string
	}{
		{"bad tenant id", "POST", "/orgs/acme/providers", `{"name":"a2","type":"azure-openai","base_url":"http://127.0.0.1:9","api_version":"2024-10-21",
			"azure_tenant_id":"common","azure_client_id":"` + client + `","api_key":"s"}`, "azure_tenant_id"},
		{"no client secret", "POST", "/orgs/acme/providers", `{"name":"a3","type":"azure-openai","base_url":"http://127.0.0.1:9","api_version":"2024-10-21",
			"azure_tenant_id":"` + tenant + `","azure_client_id":"` + client + `"}`, "api_key"},
		{"Entra ID on openai-compatible", "POST", "/orgs/acme/providers", `{"name":"a4","base_url":"http://127.0.0.1:9","azure_tenant_id":"` + tenant + `","azure_client_id":"` + client + `","api_key":"s"}`, "azure_tenant_id"},
		{"switch keeping the API key", "PATCH", "/orgs/acme/providers/" + pid, `{"azure_tenant_id":"` + tenant + `","azure_client_id":"` + client + `"}`, "api_key"},
		{"bad client id", "PATCH", "/orgs/acme/providers/" + pid, `{"azure_tenant_id":"` + tenant + `","azure_client_id":"app","api_key":"s"}`, "azure_client_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := c.do(tc.method, tc.path, tc.body)
			e, _ := body["error"].(map[string]any)
			if fields, _ := e["fields"].(map[string]any); status != 422 || e["code"] != "invalid" || fields[tc.field] == nil {
				t.Fatalf("status %d body %v, want 422 invalid on %s", status, body, tc.field)
			}
		})
	}
}
