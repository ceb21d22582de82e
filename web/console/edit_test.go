package console

import (
	"strings"
	"testing"
)

// TestProviderPage renders a provider's page: the summary, and for managers an edit
// form that never holds the credential and shows only the fields of its type.
func TestProviderPage(t *testing.T) {
	t.Parallel()
	view := ProviderView{
		Shell:    sampleShell(NavModels),
		Provider: ProviderRow{ID: "p1", Name: "openai", Type: ProviderOpenAICompatible, BaseURL: "https://api.openai.com/v1", HasCredential: true, NativeResponses: true, Shared: Shared{All: true}},
		Form:     ProviderEditForm{Name: "openai", BaseURL: "https://api.openai.com/v1", NativeResponses: true, Sharing: SharingForm{Mode: ShareAll}},
		Teams:    teamLinks,
		Models:   []string{"gpt-4o", "gpt-mini"},
	}
	html := render(t, Provider(view))
	for _, want := range []string{testID("provider-summary"), "gpt-4o", "gpt-mini", "Native: every request"} {
		if !strings.Contains(html, want) {
			t.Errorf("provider page lacks %q", want)
		}
	}
	if strings.Contains(html, testID("provider-edit-form")) {
		t.Error("a viewer sees the edit form")
	}

	view.CanManage = true
	html = render(t, Provider(view))
	for _, want := range []string{testID("provider-edit-form"), `name="api_key"`, `name="remove_api_key"`, `name="native_responses_shown"`,
		`name="native_responses" value="on" checked`, `action="/orgs/acme/providers/p1"`} {
		if !strings.Contains(html, want) {
			t.Errorf("manager's provider page lacks %q", want)
		}
	}
	if strings.Contains(html, `name="api_version"`) {
		t.Error("an openai-compatible provider's form asks for an API version")
	}

	view.Provider.Type, view.Provider.APIVersion, view.Provider.HasCredential = ProviderAzureOpenAI, "2024-10-21", false
	view.Form.Errors = FieldErrors{"api_version": "is required for azure-openai"}
	html = render(t, Provider(view))
	for _, want := range []string{`name="api_version"`, "is required for azure-openai"} {
		if !strings.Contains(html, want) {
			t.Errorf("azure provider page lacks %q", want)
		}
	}
	for _, unwanted := range []string{`name="native_responses"`, `name="remove_api_key"`} {
		if strings.Contains(html, unwanted) {
			t.Errorf("azure provider page without a credential shows %q", unwanted)
		}
	}
}

// TestModelSettingsForm renders the model page's prices and settings form for managers
// only, with the current values and field errors.
func TestModelSettingsForm(t *testing.T) {
	t.Parallel()
	view := ModelView{Shell: sampleShell(NavModels), Model: ModelRow{ID: "m1", Name: "gpt-4o"},
		Settings: ModelSettingsForm{UpstreamModel: "gpt-4o-2024-08-06", InputPrice: "2.50", OutputPrice: "10.00", ContextWindow: "128000",
			Errors: FieldErrors{"cached_price": "enter US dollars per million tokens, e.g. 2.50"}}}
	if html := render(t, Model(view)); strings.Contains(html, testID("model-settings-form")) {
		t.Error("a viewer sees the settings form")
	}
	view.CanManage = true
	html := render(t, Model(view))
	for _, want := range []string{testID("model-settings-form"), `action="/orgs/acme/models/m1/settings"`, `value="2.50"`, `value="10.00"`,
		`value="gpt-4o-2024-08-06"`, "enter US dollars per million tokens"} {
		if !strings.Contains(html, want) {
			t.Errorf("model page lacks %q", want)
		}
	}
}

// TestProviderEntra renders Microsoft Entra ID on the provider pages: the add form's
// two optional fields with their help, values and errors, the table's note, the
// provider page's authentication line, and the edit form's fields (Azure OpenAI only);
// an Entra ID provider's client secret cannot be removed from the form.
func TestProviderEntra(t *testing.T) {
	t.Parallel()
	const tenant, client = "contoso.onmicrosoft.com", "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
	list := fullProviders()
	list.Providers[1].AzureTenantID, list.Providers[1].AzureClientID, list.Providers[1].HasCredential = tenant, client, true
	list.Form = ProviderForm{Name: "azure2", Type: ProviderAzureOpenAI, AzureTenantID: "common", AzureClientID: client,
		Errors: FieldErrors{"azure_tenant_id": "must be a directory (tenant) id"}}
	html := render(t, Providers(list))
	for _, want := range []string{`name="azure_tenant_id"`, `name="azure_client_id"`, `for="f-azure_tenant_id">Entra ID tenant<`,
		`for="f-azure_client_id">Entra ID client (application) id<`, "Leave empty to authenticate with the API key", "client secret in the key field",
		`value="common"`, `value="` + client + `"`, `data-testid="error-azure_tenant_id">must be a directory (tenant) id<`,
		testID("provider-entra-p2") + `>Microsoft Entra ID<`} {
		if !strings.Contains(html, want) {
			t.Errorf("providers page lacks %q", want)
		}
	}
	if strings.Contains(html, testID("provider-entra-p1")) {
		t.Error("an API key provider is marked as Entra ID")
	}

	view := ProviderView{
		Shell: sampleShell(NavModels),
		Provider: ProviderRow{ID: "p2", Name: "azure", Type: ProviderAzureOpenAI, BaseURL: "https://acme.openai.azure.com", APIVersion: "2024-10-21",
			HasCredential: true, AzureTenantID: tenant, AzureClientID: client, Shared: Shared{All: true}},
		Form: ProviderEditForm{Name: "azure", BaseURL: "https://acme.openai.azure.com", APIVersion: "2024-10-21", AzureTenantID: tenant, AzureClientID: client,
			Sharing: SharingForm{Mode: ShareAll}, Errors: FieldErrors{"api_key": "enter the client secret"}},
		CanManage: true,
	}
	html = render(t, Provider(view))
	for _, want := range []string{
		testID("provider-authentication") + `>Microsoft Entra ID (tenant <code>` + tenant + `</code>, client <code>` + client + `</code>)`,
		`name="azure_tenant_id"`, `value="` + tenant + `"`, `name="azure_client_id"`, `value="` + client + `"`,
		"client secret; switching between the API key and Entra ID, or to another client id, needs the new one", `data-testid="error-api_key">enter the client secret<`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("Entra ID provider page lacks %q", want)
		}
	}
	if strings.Contains(html, `name="remove_api_key"`) {
		t.Error("an Entra ID provider's page offers to remove its client secret")
	}

	view.Provider.AzureTenantID, view.Provider.AzureClientID, view.Form.AzureTenantID, view.Form.AzureClientID = "", "", "", ""
	html = render(t, Provider(view))
	for _, want := range []string{testID("provider-authentication") + `>API key</dd>`, `name="azure_tenant_id"`, `name="remove_api_key"`} {
		if !strings.Contains(html, want) {
			t.Errorf("API key azure provider page lacks %q", want)
		}
	}
	view.Provider.Type = ProviderOpenAICompatible
	if html := render(t, Provider(view)); strings.Contains(html, `name="azure_tenant_id"`) || strings.Contains(html, "Entra ID") {
		t.Error("an openai-compatible provider's page asks for Entra ID")
	}
}
