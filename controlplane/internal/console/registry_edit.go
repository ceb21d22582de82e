package console

import (
	"net/http"
	"slices"
	"strings"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	v "github.com/gatehouse-dev/gatehouse/web/console"
	"github.com/go-chi/chi/v5"
)

// Provider page and edits.

func (c *Console) providerView(r *http.Request, pv v.ProviderView, form *v.ProviderEditForm) (v.ProviderView, error) {
	sh, err := c.shell(r, "Provider", v.NavModels)
	if err != nil {
		return pv, err
	}
	links, teams, err := c.teamLinks(r)
	if err != nil {
		return pv, err
	}
	names, slugs := map[string]string{}, map[string]string{}
	for _, t := range teams {
		names[t.ID], slugs[t.ID] = t.Name, t.Slug
	}
	org, id := currentOrg(r).ID, chi.URLParam(r, "id")
	p, err := c.Store.GetProvider(r.Context(), org, id)
	if err != nil {
		return pv, err
	}
	ms, err := c.Store.ListModels(r.Context(), org)
	if err != nil {
		return pv, err
	}
	deps, err := c.Store.ListDeployments(r.Context(), org)
	if err != nil {
		return pv, err
	}
	for _, m := range ms {
		if m.ProviderID == id || slices.ContainsFunc(deps, func(d store.Deployment) bool { return d.ModelID == m.ID && d.ProviderID == id }) {
			pv.Models = append(pv.Models, m.Name)
		}
	}
	sh.Title = p.Name
	pv.Shell, pv.Teams, pv.CanManage = sh, links, c.allowed(r, "models", "write")
	pv.Provider = v.ProviderRow{ID: p.ID, Name: p.Name, Type: p.Type, BaseURL: p.BaseURL, APIVersion: p.APIVersion,
		NativeResponses: p.NativeResponses, HasCredential: p.HasCredential, Shared: shared(p.SharedWith, names),
		AzureTenantID: p.AzureTenantID, AzureClientID: p.AzureClientID}
	if form != nil {
		pv.Form = *form
		return pv, nil
	}
	pv.Form = v.ProviderEditForm{Name: p.Name, BaseURL: p.BaseURL, APIVersion: p.APIVersion, NativeResponses: p.NativeResponses,
		AzureTenantID: p.AzureTenantID, AzureClientID: p.AzureClientID, Sharing: v.SharingForm{Mode: v.ShareAll}}
	if !p.SharedWith.All {
		pv.Form.Sharing.Mode = v.ShareTeams
		for _, t := range p.SharedWith.Teams {
			pv.Form.Sharing.Teams = append(pv.Form.Sharing.Teams, slugs[t])
		}
	}
	return pv, nil
}

func (c *Console) provider(w http.ResponseWriter, r *http.Request) error {
	pv, err := c.providerView(r, v.ProviderView{}, nil)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, v.Provider(pv))
	return nil
}

func (c *Console) updateProvider(w http.ResponseWriter, r *http.Request) error {
	if err := c.parseForm(r); err != nil {
		return err
	}
	form := v.ProviderEditForm{Name: r.PostFormValue("name"), BaseURL: r.PostFormValue("base_url"), APIVersion: r.PostFormValue("api_version"),
		NativeResponses: r.PostFormValue("native_responses") == "on", RemoveKey: r.PostFormValue("remove_api_key") == "on", Sharing: sharingForm(r),
		AzureTenantID: r.PostFormValue("azure_tenant_id"), AzureClientID: r.PostFormValue("azure_client_id")}
	in := store.ProviderChange{Name: &form.Name, BaseURL: &form.BaseURL, Share: &store.Sharing{All: true}}
	if sh := sharingFromForm(r); sh != nil {
		in.Share = sh
	}
	// Fields the form shows only for some types are changed only when posted.
	if _, ok := r.PostForm["api_version"]; ok {
		in.APIVersion = &form.APIVersion
	}
	if _, ok := r.PostForm["azure_tenant_id"]; ok {
		in.AzureTenantID = &form.AzureTenantID
	}
	if _, ok := r.PostForm["azure_client_id"]; ok {
		in.AzureClientID = &form.AzureClientID
	}
	if r.PostFormValue("native_responses_shown") == "on" { // an unticked box posts nothing
		in.NativeResponses = &form.NativeResponses
	}
	key := r.PostFormValue("api_key")
	switch {
	case form.RemoveKey && key != "":
		form.Errors = v.FieldErrors{"api_key": "enter a new key or remove the stored one, not both"}
	case form.RemoveKey:
		in.APIKey = new(string)
	case key != "":
		in.APIKey = &key
	}
	var msg string
	if form.Errors == nil {
		_, err := c.Store.UpdateProvider(r.Context(), actor(r), currentOrg(r).ID, chi.URLParam(r, "id"), in)
		fe, m, err := entryError(err)
		if err != nil {
			return err
		}
		renameFields(fe, map[string]string{"shared_with": "teams"})
		form.Errors, msg = fe, m
	}
	if form.Errors != nil || msg != "" {
		pv, err := c.providerView(r, v.ProviderView{Error: msg}, &form)
		if err != nil {
			return err
		}
		c.render(w, r, http.StatusUnprocessableEntity, v.Provider(pv))
		return nil
	}
	return c.done(w, r, "providers/"+chi.URLParam(r, "id"), "provider")
}

// Model settings: prices, upstream model, context window.

func modelSettingsForm(m store.Model) v.ModelSettingsForm {
	return v.ModelSettingsForm{UpstreamModel: m.UpstreamModel, InputPrice: dollars(m.InputPricePerMTokMicros),
		OutputPrice: dollars(m.OutputPricePerMTokMicros), CachedPrice: dollars(m.CachedInputPricePerMTokMicros),
		ContextWindow: itoa(m.ContextWindow)}
}

// dollars is usd without the sign, for a form field.
func dollars(micros int64) string { return strings.TrimPrefix(usd(micros), "$") }

func (c *Console) modelSettings(w http.ResponseWriter, r *http.Request) error {
	if err := c.parseForm(r); err != nil {
		return err
	}
	form := v.ModelSettingsForm{UpstreamModel: r.PostFormValue("upstream_model"), InputPrice: r.PostFormValue("input_price"),
		OutputPrice: r.PostFormValue("output_price"), CachedPrice: r.PostFormValue("cached_price"), ContextWindow: r.PostFormValue("context_window")}
	fe := v.FieldErrors{}
	input, output, cached, window := parseModelNumbers(form.InputPrice, form.OutputPrice, form.CachedPrice, form.ContextWindow, fe)
	in := store.ModelChange{UpstreamModel: &form.UpstreamModel, InputPricePerMTokMicros: &input, OutputPricePerMTokMicros: &output,
		CachedInputPricePerMTokMicros: &cached, ContextWindow: &window}
	if len(fe) == 0 {
		_, err := c.Store.UpdateModel(r.Context(), actor(r), currentOrg(r).ID, chi.URLParam(r, "id"), in)
		if fe = fieldErrors(err); fe == nil && err != nil {
			return err
		}
		renameFields(fe, modelFormFields)
	}
	if len(fe) > 0 {
		form.Errors = fe
		return c.renderModel(w, r, http.StatusUnprocessableEntity, v.ModelView{Settings: form})
	}
	return c.modelDone(w, r, "settings")
}

// renameFields moves store field errors to the names of the form's fields.
func renameFields(fe v.FieldErrors, names map[string]string) {
	for from, to := range names {
		if m, ok := fe[from]; ok {
			delete(fe, from)
			fe[to] = m
		}
	}
}
