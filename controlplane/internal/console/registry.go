package console

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	v "github.com/gatehouse-dev/gatehouse/web/console"
	"github.com/go-chi/chi/v5"
)

// sharingFromForm reads the share radio and team checkboxes.
func sharingFromForm(r *http.Request) *store.Sharing {
	if r.PostFormValue("share") != v.ShareTeams {
		return nil
	}
	return &store.Sharing{Teams: r.PostForm["teams"]}
}

func sharingForm(r *http.Request) v.SharingForm {
	f := v.SharingForm{Mode: r.PostFormValue("share"), Teams: r.PostForm["teams"]}
	if f.Mode == "" {
		f.Mode = v.ShareAll
	}
	return f
}

// shared renders a Sharing with team names.
func shared(sh store.Sharing, names map[string]string) v.Shared {
	out := v.Shared{All: sh.All}
	for _, id := range sh.Teams {
		out.Teams = append(out.Teams, names[id])
	}
	return out
}

// teamNames maps team ids to names for the current org.
func (c *Console) teamNames(r *http.Request) ([]v.TeamLink, map[string]string, error) {
	links, teams, err := c.teamLinks(r)
	if err != nil {
		return nil, nil, err
	}
	names := map[string]string{}
	for _, t := range teams {
		names[t.ID] = t.Name
	}
	return links, names, nil
}

// entryError renders a failed registry change: field errors back into the form,
// "in use" conflicts as a page error; anything else is a real error.
func entryError(err error) (v.FieldErrors, string, error) {
	fe := fieldErrors(err)
	if fe == nil {
		return nil, "", err
	}
	if msg, ok := fe["in_use"]; ok {
		return nil, "Not deleted: " + msg + ".", nil
	}
	return fe, "", nil
}

func (c *Console) parseForm(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return &pageError{status: http.StatusBadRequest, title: "Bad request", message: "The form could not be read."}
	}
	return nil
}

// deleteEntry deletes a registry entry by id and returns to its list.
func (c *Console) deleteEntry(section string, del func(context.Context, store.Actor, string, string) error) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		err := del(r.Context(), actor(r), currentOrg(r).ID, chi.URLParam(r, "id"))
		if _, msg, err := entryError(err); err != nil {
			return err
		} else if msg != "" {
			return &pageError{status: http.StatusConflict, title: "Still in use", message: msg}
		}
		return c.done(w, r, section, "deleted")
	}
}

// Providers.

func (c *Console) providersView(r *http.Request, form v.ProviderForm, pageErr string) (v.ProvidersView, error) {
	sh, err := c.shell(r, "Providers", v.NavModels)
	if err != nil {
		return v.ProvidersView{}, err
	}
	links, names, err := c.teamNames(r)
	if err != nil {
		return v.ProvidersView{}, err
	}
	ps, err := c.Store.ListProviders(r.Context(), currentOrg(r).ID)
	if err != nil {
		return v.ProvidersView{}, err
	}
	view := v.ProvidersView{Shell: sh, Form: form, Teams: links, Error: pageErr, CanManage: c.allowed(r, "models", "write")}
	for _, p := range ps {
		view.Providers = append(view.Providers, v.ProviderRow{ID: p.ID, Name: p.Name, Type: p.Type, BaseURL: p.BaseURL,
			APIVersion: p.APIVersion, NativeResponses: p.NativeResponses, HasCredential: p.HasCredential, Shared: shared(p.SharedWith, names),
			AzureTenantID: p.AzureTenantID, AzureClientID: p.AzureClientID})
	}
	return view, nil
}

func (c *Console) providers(w http.ResponseWriter, r *http.Request) error {
	view, err := c.providersView(r, v.ProviderForm{}, "")
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, v.Providers(view))
	return nil
}

func (c *Console) createProvider(w http.ResponseWriter, r *http.Request) error {
	if err := c.parseForm(r); err != nil {
		return err
	}
	form := v.ProviderForm{Name: r.PostFormValue("name"), Type: r.PostFormValue("type"), BaseURL: r.PostFormValue("base_url"),
		APIVersion: r.PostFormValue("api_version"), NativeResponses: r.PostFormValue("native_responses") == "on", Sharing: sharingForm(r),
		AzureTenantID: r.PostFormValue("azure_tenant_id"), AzureClientID: r.PostFormValue("azure_client_id")}
	_, err := c.Store.CreateProvider(r.Context(), actor(r), currentOrg(r).ID, store.NewProvider{
		Name: form.Name, Type: form.Type, BaseURL: form.BaseURL, APIKey: r.PostFormValue("api_key"), APIVersion: form.APIVersion,
		NativeResponses: form.NativeResponses, AzureTenantID: form.AzureTenantID, AzureClientID: form.AzureClientID, Share: sharingFromForm(r),
	})
	fe, msg, err := entryError(err)
	if err != nil {
		return err
	}
	if fe != nil || msg != "" {
		form.Errors = fe
		view, err := c.providersView(r, form, msg)
		if err != nil {
			return err
		}
		c.render(w, r, http.StatusUnprocessableEntity, v.Providers(view))
		return nil
	}
	return c.done(w, r, "providers", "created")
}

// Models.

// usd formats micro-USD per million tokens as dollars.
func usd(micros int64) string {
	if micros == 0 {
		return ""
	}
	s := fmt.Sprintf("%.6f", float64(micros)/1e6)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if i := strings.IndexByte(s, '.'); i < 0 {
		s += ".00"
	} else if len(s)-i == 2 {
		s += "0"
	}
	return "$" + s
}

// parseModelNumbers parses a model form's prices (US dollars per million tokens, ""
// = free) into micro-USD and its context window (tokens, commas allowed, "" = unknown),
// adding an error to fe for each value it cannot read.
func parseModelNumbers(input, output, cached, contextWindow string, fe v.FieldErrors) (in, out, cachedIn, window int64) {
	prices := []struct {
		field, val string
		dst        *int64
	}{{"input_price", input, &in}, {"output_price", output, &out}, {"cached_price", cached, &cachedIn}}
	for _, p := range prices {
		var ok bool
		if *p.dst, ok = parseUSD(p.val); !ok {
			fe[p.field] = "enter US dollars per million tokens, e.g. 2.50"
		}
	}
	if s := strings.ReplaceAll(strings.TrimSpace(contextWindow), ",", ""); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			fe["context_window"] = "enter a number of tokens"
		}
		window = n
	}
	return in, out, cachedIn, window
}

// modelFormFields maps the store's field names to the model forms' fields.
var modelFormFields = map[string]string{"input_price_per_mtok_micros": "input_price", "output_price_per_mtok_micros": "output_price",
	"cached_input_price_per_mtok_micros": "cached_price", "prices": "input_price", "provider": "provider_id"}

// parseUSD parses a decimal dollar amount (up to 6 decimals) into micro-USD.
func parseUSD(s string) (int64, bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "$")
	if s == "" {
		return 0, true
	}
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 6 || whole == "" && frac == "" || !allDigits(whole) || !allDigits(frac) {
		return 0, false
	}
	frac += strings.Repeat("0", 6-len(frac))
	w, err1 := strconv.ParseInt(orZero(whole), 10, 64)
	f, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil || w < 0 || w > 1e9 {
		return 0, false
	}
	return w*1_000_000 + f, true
}

func allDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

func thousands(n int64) string {
	if n == 0 {
		return ""
	}
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return b.String()
}

func (c *Console) modelRows(r *http.Request, names map[string]string) ([]v.ModelRow, []store.Model, []store.Provider, error) {
	ms, err := c.Store.ListModels(r.Context(), currentOrg(r).ID)
	if err != nil {
		return nil, nil, nil, err
	}
	ps, err := c.Store.ListProviders(r.Context(), currentOrg(r).ID)
	if err != nil {
		return nil, nil, nil, err
	}
	pname := map[string]string{}
	for _, p := range ps {
		pname[p.ID] = p.Name
	}
	deps, err := c.Store.ListDeployments(r.Context(), currentOrg(r).ID)
	if err != nil {
		return nil, nil, nil, err
	}
	ndeps := map[string]int{}
	for _, d := range deps {
		ndeps[d.ModelID]++
	}
	var rows []v.ModelRow
	for _, m := range ms {
		lf := limitsForm(m.Limits)
		rows = append(rows, v.ModelRow{ID: m.ID, Name: m.Name, Provider: pname[m.ProviderID], UpstreamModel: m.UpstreamModel,
			InputPrice: usd(m.InputPricePerMTokMicros), OutputPrice: usd(m.OutputPricePerMTokMicros), CachedPrice: usd(m.CachedInputPricePerMTokMicros),
			ContextWindow: thousands(m.ContextWindow), Regions: m.Regions, Shared: shared(m.SharedWith, names),
			Limits:  v.LimitsLabel(lf.RPM, lf.TPM, lf.MaxConcurrent),
			Routing: v.RoutingSummary(m.Routing.Strategy, 1+ndeps[m.ID], strconv.Itoa(int(m.Routing.MaxRetries)), m.Routing.Fallbacks)})
	}
	return rows, ms, ps, nil
}

func (c *Console) regionOptions(r *http.Request) ([]v.RegionOption, error) {
	regions, err := c.Store.ListRegions(r.Context())
	if err != nil {
		return nil, err
	}
	out := make([]v.RegionOption, len(regions))
	for i, name := range regions {
		out[i] = v.RegionOption{Name: name}
	}
	return out, nil
}

func (c *Console) modelsView(r *http.Request, form v.ModelForm, pageErr string) (v.ModelsView, error) {
	sh, err := c.shell(r, "Models", v.NavModels)
	if err != nil {
		return v.ModelsView{}, err
	}
	links, names, err := c.teamNames(r)
	if err != nil {
		return v.ModelsView{}, err
	}
	rows, _, ps, err := c.modelRows(r, names)
	if err != nil {
		return v.ModelsView{}, err
	}
	regions, err := c.regionOptions(r)
	if err != nil {
		return v.ModelsView{}, err
	}
	view := v.ModelsView{Shell: sh, Models: rows, Form: form, Regions: regions, Teams: links, Error: pageErr, CanManage: c.allowed(r, "models", "write")}
	for _, p := range ps {
		view.Providers = append(view.Providers, v.ProviderOption{ID: p.ID, Name: p.Name})
	}
	return view, nil
}

func (c *Console) models(w http.ResponseWriter, r *http.Request) error {
	view, err := c.modelsView(r, v.ModelForm{}, "")
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, v.Models(view))
	return nil
}

func (c *Console) createModel(w http.ResponseWriter, r *http.Request) error {
	if err := c.parseForm(r); err != nil {
		return err
	}
	form := v.ModelForm{Name: r.PostFormValue("name"), ProviderID: r.PostFormValue("provider_id"), UpstreamModel: r.PostFormValue("upstream_model"),
		InputPrice: r.PostFormValue("input_price"), OutputPrice: r.PostFormValue("output_price"), CachedPrice: r.PostFormValue("cached_price"),
		ContextWindow: r.PostFormValue("context_window"), Regions: r.PostForm["regions"], Sharing: sharingForm(r)}
	in := store.NewModel{Name: form.Name, Provider: form.ProviderID, UpstreamModel: form.UpstreamModel, Regions: form.Regions, Share: sharingFromForm(r)}
	fe := v.FieldErrors{}
	in.InputPricePerMTokMicros, in.OutputPricePerMTokMicros, in.CachedInputPricePerMTokMicros, in.ContextWindow =
		parseModelNumbers(form.InputPrice, form.OutputPrice, form.CachedPrice, form.ContextWindow, fe)
	var msg string
	if len(fe) == 0 {
		_, err := c.Store.CreateModel(r.Context(), actor(r), currentOrg(r).ID, in)
		var err2 error
		if fe, msg, err2 = entryError(err); err2 != nil {
			return err2
		}
		renameFields(fe, modelFormFields)
	}
	if len(fe) > 0 || msg != "" {
		form.Errors = fe
		view, err := c.modelsView(r, form, msg)
		if err != nil {
			return err
		}
		c.render(w, r, http.StatusUnprocessableEntity, v.Models(view))
		return nil
	}
	return c.done(w, r, "models", "created")
}

// MCP servers.

func (c *Console) mcpView(r *http.Request, form v.MCPServerForm, pageErr string) (v.MCPServersView, error) {
	sh, err := c.shell(r, "MCP servers", v.NavMCP)
	if err != nil {
		return v.MCPServersView{}, err
	}
	links, names, err := c.teamNames(r)
	if err != nil {
		return v.MCPServersView{}, err
	}
	ms, err := c.Store.ListMCPServers(r.Context(), currentOrg(r).ID)
	if err != nil {
		return v.MCPServersView{}, err
	}
	view := v.MCPServersView{Shell: sh, Form: form, Teams: links, Error: pageErr, CanManage: c.allowed(r, "models", "write")}
	for _, m := range ms {
		view.Servers = append(view.Servers, v.MCPServerRow{ID: m.ID, Name: m.Name, URL: m.URL, Transport: m.Transport,
			AuthHeader: m.AuthHeader, HasCredential: m.HasCredential, Shared: shared(m.SharedWith, names)})
	}
	return view, nil
}

func (c *Console) mcpServers(w http.ResponseWriter, r *http.Request) error {
	view, err := c.mcpView(r, v.MCPServerForm{}, "")
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, v.MCPServers(view))
	return nil
}

func (c *Console) createMCPServer(w http.ResponseWriter, r *http.Request) error {
	if err := c.parseForm(r); err != nil {
		return err
	}
	form := v.MCPServerForm{Name: r.PostFormValue("name"), URL: r.PostFormValue("url"), Transport: r.PostFormValue("transport"),
		AuthHeader: r.PostFormValue("auth_header"), Sharing: sharingForm(r)}
	_, err := c.Store.CreateMCPServer(r.Context(), actor(r), currentOrg(r).ID, store.NewMCPServer{Name: form.Name, URL: form.URL,
		Transport: form.Transport, AuthHeader: form.AuthHeader, Credential: r.PostFormValue("credential"), Share: sharingFromForm(r)})
	fe, msg, err := entryError(err)
	if err != nil {
		return err
	}
	if fe != nil || msg != "" {
		form.Errors = fe
		view, err := c.mcpView(r, form, msg)
		if err != nil {
			return err
		}
		c.render(w, r, http.StatusUnprocessableEntity, v.MCPServers(view))
		return nil
	}
	return c.done(w, r, "mcp", "created")
}

// Agents.

func (c *Console) agentsView(r *http.Request, form v.AgentForm, pageErr string) (v.AgentsView, error) {
	sh, err := c.shell(r, "Agents", v.NavAgents)
	if err != nil {
		return v.AgentsView{}, err
	}
	links, names, err := c.teamNames(r)
	if err != nil {
		return v.AgentsView{}, err
	}
	as, err := c.Store.ListAgents(r.Context(), currentOrg(r).ID)
	if err != nil {
		return v.AgentsView{}, err
	}
	view := v.AgentsView{Shell: sh, Form: form, Teams: links, Error: pageErr, CanManage: c.allowed(r, "models", "write")}
	for _, a := range as {
		view.Agents = append(view.Agents, v.AgentRow{ID: a.ID, Name: a.Name, CardURL: a.CardURL, AuthHeader: a.AuthHeader,
			HasCredential: a.HasCredential, Shared: shared(a.SharedWith, names)})
	}
	return view, nil
}

func (c *Console) agents(w http.ResponseWriter, r *http.Request) error {
	view, err := c.agentsView(r, v.AgentForm{}, "")
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, v.Agents(view))
	return nil
}

func (c *Console) createAgent(w http.ResponseWriter, r *http.Request) error {
	if err := c.parseForm(r); err != nil {
		return err
	}
	form := v.AgentForm{Name: r.PostFormValue("name"), CardURL: r.PostFormValue("card_url"), AuthHeader: r.PostFormValue("auth_header"), Sharing: sharingForm(r)}
	_, err := c.Store.CreateAgent(r.Context(), actor(r), currentOrg(r).ID, store.NewAgent{Name: form.Name, CardURL: form.CardURL,
		AuthHeader: form.AuthHeader, Credential: r.PostFormValue("credential"), Share: sharingFromForm(r)})
	fe, msg, err := entryError(err)
	if err != nil {
		return err
	}
	if fe != nil || msg != "" {
		form.Errors = fe
		view, err := c.agentsView(r, form, msg)
		if err != nil {
			return err
		}
		c.render(w, r, http.StatusUnprocessableEntity, v.Agents(view))
		return nil
	}
	return c.done(w, r, "agents", "created")
}

// Fleet.

func (c *Console) fleet(w http.ResponseWriter, r *http.Request) error {
	sh, err := c.shell(r, "Fleet", v.NavFleet)
	if err != nil {
		return err
	}
	now := time.Now()
	f, err := c.Store.Fleet(r.Context(), currentOrg(r).ID, now)
	if err != nil {
		return err
	}
	view := v.FleetView{Shell: sh, AutoRefresh: r.URL.Query().Get("auto") == "1"}
	for _, reg := range f.Regions {
		fr := v.FleetRegion{Name: reg.Name}
		if f.LatestVersion > 0 {
			fr.LatestVersion = strconv.FormatUint(f.LatestVersion, 10)
		}
		for _, g := range reg.Gateways {
			row := v.GatewayRow{ID: g.GatewayID, BuildVersion: g.BuildVersion, Capability: int(g.Capability), Ready: g.Ready,
				InFlight: int(g.InFlight), LastSeen: ago(now.Sub(g.LastSeen)), Status: v.GatewayStatus(g.Status)}
			if g.Org.AppliedVersion > 0 {
				row.AppliedVersion = strconv.FormatUint(g.Org.AppliedVersion, 10)
			}
			if g.Lag > 0 {
				row.Lag = int(g.Lag)
			}
			if g.Org.RejectedVersion > 0 {
				row.NACKVersion, row.NACKReason = strconv.FormatUint(g.Org.RejectedVersion, 10), g.Org.RejectedReason
			}
			fr.Gateways = append(fr.Gateways, row)
		}
		view.Regions = append(view.Regions, fr)
	}
	c.render(w, r, http.StatusOK, v.Fleet(view))
	return nil
}

func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	}
	return fmt.Sprintf("%dh ago", int(d.Hours()))
}

// Team (virtual gateway).

func (c *Console) teamView(r *http.Request, tv v.TeamView) (v.TeamView, error) {
	sh, err := c.shell(r, currentTeam(r).Name, v.NavTeams)
	if err != nil {
		return tv, err
	}
	team := currentTeam(r)
	ctx := r.Context()
	orgID := currentOrg(r).ID
	_, names, err := c.teamNames(r)
	if err != nil {
		return tv, err
	}
	rows, ms, ps, err := c.modelRows(r, names)
	if err != nil {
		return tv, err
	}
	tv.Shell, tv.Slug, tv.Name, tv.Suspended = sh, team.Slug, team.Name, team.Suspended
	// Limits, guardrails, regions and logging are org-admin decisions (teams:write).
	tv.CanManage, tv.CanManageKeys = c.allowed(r, "teams", "write"), c.allowed(r, "keys", "write")
	if tv.Limits.RPM == "" && tv.Limits.TPM == "" && tv.Limits.MaxConcurrent == "" && tv.Limits.Errors == nil {
		tv.Limits = limitsForm(team.Limits)
	}
	tv.LogContents = team.LogContents
	rules, err := c.Store.ListGuardrails(ctx, orgID)
	if err != nil {
		return tv, err
	}
	for _, g := range rules {
		if g.TeamID == team.ID {
			tv.Guardrails = append(tv.Guardrails, v.GuardrailRow{ID: g.ID, Name: g.Name, Detector: g.Detector, Mode: g.Mode, Direction: g.Direction, Pattern: g.Pattern})
		}
	}
	triggers, err := c.Store.RecentGuardrailTriggers(ctx, team.ID, time.Now().Add(-24*time.Hour))
	if err != nil {
		return tv, err
	}
	for _, tr := range triggers {
		tv.GuardrailTriggers = append(tv.GuardrailTriggers, v.TriggerRow{At: tr.At.Format("2006-01-02 15:04:05"), RuleName: tr.RuleName,
			Detector: tr.Detector, Mode: tr.Mode, Direction: tr.Direction, Matches: strconv.Itoa(int(tr.Matches)), RequestID: tr.RequestID,
			Texts: tr.Texts})
	}
	tv.GatewayURL = c.GatewayURL
	if tv.OrgRegions, err = c.regionOptions(r); err != nil {
		return tv, err
	}
	if tv.RegionsForm.Regions == nil {
		tv.RegionsForm.Regions = team.Regions
	}
	usable := func(sh store.Sharing) bool { return sh.All || slices.Contains(sh.Teams, team.ID) }
	providerOK := map[string]bool{}
	for _, p := range ps {
		providerOK[p.ID] = usable(p.SharedWith)
	}
	for i, m := range ms {
		if usable(m.SharedWith) && providerOK[m.ProviderID] {
			tv.Models = append(tv.Models, rows[i])
		}
	}
	servers, err := c.Store.ListMCPServers(ctx, orgID)
	if err != nil {
		return tv, err
	}
	for _, s := range servers {
		if usable(s.SharedWith) {
			tv.MCPServers = append(tv.MCPServers, v.MCPServerRow{ID: s.ID, Name: s.Name, URL: s.URL, Transport: s.Transport})
		}
	}
	agents, err := c.Store.ListAgents(ctx, orgID)
	if err != nil {
		return tv, err
	}
	for _, a := range agents {
		if usable(a.SharedWith) {
			tv.Agents = append(tv.Agents, v.AgentRow{ID: a.ID, Name: a.Name, CardURL: a.CardURL})
		}
	}
	aliases, err := c.Store.ListAliases(ctx, orgID)
	if err != nil {
		return tv, err
	}
	for _, a := range aliases {
		if a.TeamID == team.ID {
			tv.Aliases = append(tv.Aliases, v.AliasRow{Alias: a.Alias, Model: a.Model})
		}
	}
	keys, err := c.Store.ListKeys(ctx, orgID, team.ID)
	if err != nil {
		return tv, err
	}
	now := time.Now()
	for _, k := range keys {
		lf := limitsForm(k.Limits)
		row := v.KeyRow{ID: k.ID, Name: k.Name, Prefix: k.Display, AgentIdentity: k.AgentIdentity, Models: k.AllowedModels,
			Limits: v.LimitsLabel(lf.RPM, lf.TPM, lf.MaxConcurrent),
			Tools:  k.AllowedTools, Agents: k.AllowedAgents, Regions: k.AllowedRegions, CreatedAt: k.CreatedAt.Format("2006-01-02 15:04"),
			Revoked: k.RevokedAt != nil}
		if k.ExpiresAt != nil {
			row.ExpiresAt, row.Expired = k.ExpiresAt.Format("2006-01-02"), !k.ExpiresAt.After(now)
		}
		tv.Keys = append(tv.Keys, row)
	}
	return tv, nil
}

func (c *Console) team(w http.ResponseWriter, r *http.Request) error {
	tv, err := c.teamView(r, v.TeamView{})
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, v.Team(tv))
	return nil
}

func (c *Console) teamDone(w http.ResponseWriter, r *http.Request, flash string) error {
	http.Redirect(w, r, "/orgs/"+currentOrg(r).Slug+"/teams/"+currentTeam(r).Slug+"?done="+flash, http.StatusSeeOther)
	return nil
}

func (c *Console) rerenderTeam(w http.ResponseWriter, r *http.Request, tv v.TeamView) error {
	tv, err := c.teamView(r, tv)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusUnprocessableEntity, v.Team(tv))
	return nil
}

func (c *Console) suspendTeam(w http.ResponseWriter, r *http.Request) error {
	suspended := r.PostFormValue("suspended") == "true"
	if _, err := c.Store.SetTeamSuspended(r.Context(), actor(r), currentOrg(r).ID, currentTeam(r).ID, suspended); err != nil {
		return err
	}
	if suspended {
		return c.teamDone(w, r, "suspended")
	}
	return c.teamDone(w, r, "resumed")
}

func (c *Console) teamRegions(w http.ResponseWriter, r *http.Request) error {
	if err := c.parseForm(r); err != nil {
		return err
	}
	_, err := c.Store.SetTeamRegions(r.Context(), actor(r), currentOrg(r).ID, currentTeam(r).ID, r.PostForm["regions"])
	if fe := fieldErrors(err); fe != nil {
		return c.rerenderTeam(w, r, v.TeamView{RegionsForm: v.RegionsForm{Regions: r.PostForm["regions"], Errors: fe}})
	}
	if err != nil {
		return err
	}
	return c.teamDone(w, r, "regions")
}

func (c *Console) addAlias(w http.ResponseWriter, r *http.Request) error {
	form := v.AliasForm{Alias: r.PostFormValue("alias"), ModelID: r.PostFormValue("model_id")}
	_, err := c.Store.CreateAlias(r.Context(), actor(r), currentOrg(r).ID, currentTeam(r).ID, form.Alias, form.ModelID)
	if fe := fieldErrors(err); fe != nil {
		if m, ok := fe["model"]; ok {
			fe["model_id"] = m
		}
		form.Errors = fe
		return c.rerenderTeam(w, r, v.TeamView{AliasForm: form})
	}
	if err != nil {
		return err
	}
	return c.teamDone(w, r, "alias")
}

func (c *Console) deleteAlias(w http.ResponseWriter, r *http.Request) error {
	if err := c.Store.DeleteAlias(r.Context(), actor(r), currentOrg(r).ID, currentTeam(r).ID, chi.URLParam(r, "alias")); err != nil {
		return err
	}
	return c.teamDone(w, r, "unaliased")
}

func (c *Console) createKey(w http.ResponseWriter, r *http.Request) error {
	if err := c.parseForm(r); err != nil {
		return err
	}
	form := v.KeyForm{Name: r.PostFormValue("name"), AgentIdentity: r.PostFormValue("agent_identity"), AllowedModels: r.PostForm["allowed_models"],
		AllowedTools: r.PostFormValue("allowed_tools"), AllowedAgents: r.PostForm["allowed_agents"], AllowedRegions: r.PostForm["allowed_regions"],
		ExpiresInDays: r.PostFormValue("expires_in_days"), RPM: r.PostFormValue("rpm"), TPM: r.PostFormValue("tpm"),
		MaxConcurrent: r.PostFormValue("max_concurrent")}
	lim, _, limErrs := parseLimits(r)
	if limErrs != nil {
		form.Errors = limErrs
		return c.rerenderTeam(w, r, v.TeamView{KeyForm: form})
	}
	in := store.NewKey{Limits: lim, Name: form.Name, AgentIdentity: strings.TrimSpace(form.AgentIdentity), AllowedModels: form.AllowedModels,
		AllowedTools: strings2(form.AllowedTools), AllowedAgents: form.AllowedAgents, AllowedRegions: form.AllowedRegions}
	var err error
	in.ExpiresAt, err = expiresIn(form.ExpiresInDays)
	var secret string
	if err == nil {
		_, secret, err = c.Store.CreateKey(r.Context(), actor(r), currentOrg(r).ID, currentTeam(r).ID, in)
	}
	if fe := fieldErrors(err); fe != nil {
		form.Errors = fe
		return c.rerenderTeam(w, r, v.TeamView{KeyForm: form})
	}
	if err != nil {
		return err
	}
	tv, err := c.teamView(r, v.TeamView{NewKeySecret: secret})
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusCreated, v.Team(tv))
	return nil
}

func (c *Console) revokeKey(w http.ResponseWriter, r *http.Request) error {
	if _, err := c.Store.RevokeKey(r.Context(), actor(r), currentOrg(r).ID, currentTeam(r).ID, chi.URLParam(r, "key")); err != nil {
		return err
	}
	return c.teamDone(w, r, "deleted")
}
