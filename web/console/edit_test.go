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
