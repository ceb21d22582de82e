package e2e_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gatehouse-dev/gatehouse/e2e/stack"
)

// artifactsDir keeps the console screenshots of the last run (e2e/artifacts).
const artifactsDir = "artifacts"

func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("headless Chromium is required for the console tests: install the Debian package chromium (make test does)")
	return ""
}

// TestConsoleInBrowser signs in through the IdP in headless Chromium, creates a team,
// adds a member and finds the audit entry, saving a screenshot of each step.
func TestConsoleInBrowser(t *testing.T) {
	st, _, _ := ssoStack(t)
	if err := os.MkdirAll(artifactsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	shot := func(name string) chromedp.Action {
		return chromedp.ActionFunc(func(ctx context.Context) error {
			var buf []byte
			if err := chromedp.FullScreenshot(&buf, 100).Do(ctx); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(artifactsDir, name+".png"), buf, 0o644)
		})
	}
	step := func(name string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			_ = chromedp.Run(ctx, shot("failed-"+name))
			var loc string
			_ = chromedp.Run(ctx, chromedp.Location(&loc))
			t.Fatalf("%s (at %s): %v", name, loc, err)
		}
	}
	tid := func(id string) string { return `[data-testid="` + id + `"]` }

	step("sign in",
		chromedp.Navigate(st.ControlPlane+"/login"),
		chromedp.WaitVisible(tid("login-form")),
		shot("01-login"),
		chromedp.SendKeys(`input[name="email"]`, stack.DevAdminEmail),
		chromedp.Click(tid("login-submit")),
		chromedp.WaitVisible(tid("teams-table")),
		shot("02-teams"),
	)
	step("create a team",
		chromedp.SendKeys(tid("create-team-form")+` input[name="slug"]`, "research"),
		chromedp.SendKeys(tid("create-team-form")+` input[name="name"]`, "Research"),
		chromedp.Click(tid("create-team")),
		chromedp.WaitVisible(tid("team-row-research")),
		shot("03-team-created"),
	)
	newMember := "new.person@demo.gatehouse.dev"
	step("add a member",
		chromedp.Navigate(st.ControlPlane+"/orgs/demo/members"),
		chromedp.WaitVisible(tid("invite-form")),
		chromedp.SendKeys(tid("invite-form")+` input[name="email"]`, newMember),
		chromedp.SetValue(tid("invite-form")+` select[name="team"]`, "research"),
		chromedp.SetValue(tid("invite-form")+` select[name="role"]`, "member"),
		chromedp.Click(tid("invite-member")),
		chromedp.WaitVisible(tid("member-row-"+newMember)),
		shot("04-member-added"),
	)
	var action string
	step("find the audit entry",
		chromedp.Navigate(st.ControlPlane+"/orgs/demo/audit?action=member.add"),
		chromedp.WaitVisible(tid("audit-table")),
		chromedp.AttributeValue(tid("audit-row"), "data-action", &action, nil),
		shot("05-audit"),
	)
	if action != "member.add" {
		t.Fatalf("newest audit row action = %q", action)
	}
	var text string
	step("audit names the actor", chromedp.Text(tid("audit-table"), &text))
	if !strings.Contains(text, stack.DevAdminEmail) {
		t.Fatalf("audit table does not name the actor:\n%s", text)
	}

	step("register a model",
		chromedp.Navigate(st.ControlPlane+"/orgs/demo/models"),
		chromedp.WaitVisible(tid("model-form")),
		chromedp.SendKeys(tid("model-form")+` input[name="name"]`, "local-chat"),
		chromedp.SendKeys(tid("model-form")+` input[name="upstream_model"]`, "demo-chat"),
		chromedp.Evaluate(`(() => { const s = document.querySelector('[data-testid="model-form"] select[name="provider_id"]');
			s.value = [...s.options].find(o => o.text.includes("demo-upstream")).value; })()`, nil),
		chromedp.SendKeys(tid("model-form")+` input[name="input_price"]`, "0.15"),
		chromedp.SendKeys(tid("model-form")+` input[name="output_price"]`, "0.60"),
		chromedp.Click(tid("add-model")),
		chromedp.WaitVisible(`//table[@data-testid="models-table"]//td[contains(., "local-chat")]`, chromedp.BySearch),
		chromedp.Text(tid("models-table"), &text),
		shot("06-models"),
	)
	if !strings.Contains(text, "local-chat") || !strings.Contains(text, "$0.15") {
		t.Fatalf("models table after adding: %s", text)
	}
	step("change the model's prices on its page",
		chromedp.Click(`//table[@data-testid="models-table"]//a[contains(., "local-chat")]`, chromedp.BySearch),
		chromedp.WaitVisible(tid("model-settings-form")),
		chromedp.SetValue(tid("model-settings-form")+` input[name="output_price"]`, "0.90"),
		chromedp.Click(tid("save-model-settings")),
		chromedp.WaitVisible(tid("flash")),
		chromedp.Text(tid("model-summary"), &text),
		shot("06b-model-settings"),
	)
	if !strings.Contains(text, "output $0.90") || !strings.Contains(text, "input $0.15") {
		t.Fatalf("model summary after the price change: %s", text)
	}
	step("edit the provider on its page",
		chromedp.Navigate(st.ControlPlane+"/orgs/demo/providers"),
		chromedp.Click(`//table[@data-testid="providers-table"]//a[contains(., "demo-upstream")]`, chromedp.BySearch),
		chromedp.WaitVisible(tid("provider-edit-form")),
		chromedp.Click(tid("provider-edit-form")+` input[name="native_responses"]`), // the demo provider has it on: off
		chromedp.Click(tid("save-provider")),
		chromedp.WaitVisible(tid("flash")),
		chromedp.Text(tid("provider-responses-mode"), &text),
		shot("06c-provider-edited"),
	)
	if !strings.Contains(text, "Translated") {
		t.Fatalf("provider's Responses mode after unticking: %s", text)
	}
	step("find the provider edit in the audit log",
		chromedp.Navigate(st.ControlPlane+"/orgs/demo/audit?action=provider.update"),
		chromedp.WaitVisible(tid("audit-table")),
		chromedp.AttributeValue(tid("audit-row"), "data-action", &action, nil),
	)
	if action != "provider.update" {
		t.Fatalf("newest provider audit row action = %q", action)
	}
	// An Azure OpenAI provider authenticated by Microsoft Entra ID: a refused form
	// comes back without the client secret it was sent; the provider's page says how it
	// authenticates.
	const entraSecret = "console~client~secret"
	fillEntra := func(tenant string) chromedp.Tasks {
		f := tid("provider-form")
		return chromedp.Tasks{
			chromedp.SetValue(f+` input[name="name"]`, "azure-entra"),
			chromedp.SetValue(f+` select[name="type"]`, "azure-openai"),
			chromedp.SetValue(f+` input[name="base_url"]`, "https://acme.openai.azure.com"),
			chromedp.SetValue(f+` input[name="api_key"]`, entraSecret),
			chromedp.SetValue(f+` input[name="api_version"]`, "2024-10-21"),
			chromedp.SetValue(f+` input[name="azure_tenant_id"]`, tenant),
			chromedp.SetValue(f+` input[name="azure_client_id"]`, "0b5d2c9e-1f3a-4c7e-9d2b-6a8f0e4c1b7d"),
			chromedp.Click(tid("add-provider")),
		}
	}
	var page string
	step("an Entra ID provider with a tenant the directory would not take",
		chromedp.Navigate(st.ControlPlane+"/orgs/demo/providers"),
		chromedp.WaitVisible(tid("provider-form")),
		fillEntra("common"),
		chromedp.WaitVisible(tid("error-azure_tenant_id")),
		chromedp.OuterHTML("html", &page),
	)
	if strings.Contains(page, entraSecret) {
		t.Fatal("the refused form shows the client secret it was sent")
	}
	step("an Entra ID provider",
		fillEntra("contoso.onmicrosoft.com"),
		chromedp.WaitVisible(`//table[@data-testid="providers-table"]//a[contains(., "azure-entra")]`, chromedp.BySearch),
		chromedp.Click(`//table[@data-testid="providers-table"]//a[contains(., "azure-entra")]`, chromedp.BySearch),
		chromedp.WaitVisible(tid("provider-authentication")),
		chromedp.Text(tid("provider-authentication"), &text),
		chromedp.OuterHTML("html", &page),
		shot("06d-provider-entra"),
	)
	if !strings.Contains(text, "Microsoft Entra ID") || !strings.Contains(text, "contoso.onmicrosoft.com") || strings.Contains(page, entraSecret) {
		t.Fatalf("Entra ID provider's authentication: %q (secret on the page: %v)", text, strings.Contains(page, entraSecret))
	}
	// Another tenant on the provider's page keeps the stored secret (same app).
	const otherTenant = "7f3c2a10-5b4e-4d6f-8a9b-0c1d2e3f4a5b"
	step("move the Entra ID provider to another tenant",
		chromedp.SetValue(tid("provider-edit-form")+` input[name="azure_tenant_id"]`, otherTenant),
		chromedp.Click(tid("save-provider")),
		chromedp.WaitVisible(tid("flash")),
		chromedp.Text(tid("provider-authentication"), &text),
	)
	if !strings.Contains(text, otherTenant) || !strings.Contains(text, "Microsoft Entra ID") {
		t.Fatalf("authentication after the tenant change: %q", text)
	}
	var secret string
	step("mint a key on the team page",
		chromedp.Navigate(st.ControlPlane+"/orgs/demo/teams/platform"),
		chromedp.WaitVisible(tid("key-form")),
		chromedp.SendKeys(tid("key-form")+` input[name="name"]`, "browser key"),
		chromedp.SendKeys(tid("key-form")+` input[name="agent_identity"]`, "docs-bot"),
		chromedp.Click(tid("create-key")),
		chromedp.WaitVisible(tid("new-key-secret")),
		chromedp.Text(tid("new-key-secret"), &secret),
		shot("07-team-key"),
	)
	secret = strings.TrimSpace(secret)
	if !strings.HasPrefix(secret, "gate_") {
		t.Fatalf("new key = %q", secret)
	}
	eventually(t, 10*time.Second, func() error {
		_, err := stack.KeyWorks(context.Background(), st.Gateways["local"], secret)
		return err
	})
	step("see the fleet",
		chromedp.Navigate(st.ControlPlane+"/orgs/demo/fleet"),
		chromedp.WaitVisible(tid("region-local")),
		shot("08-fleet"),
	)
}
