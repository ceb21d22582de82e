package adminapi

import (
	"net/http"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	"github.com/go-chi/chi/v5"
)

// shareReq is how every registry entry says who may use it: omitted or
// {"all": true} = every team; {"teams": ["search", …]} = those teams only.
type shareReq struct {
	All   bool     `json:"all"`
	Teams []string `json:"teams"`
}

func (s *shareReq) sharing() *store.Sharing {
	if s == nil || s.All {
		return nil
	}
	return &store.Sharing{Teams: s.Teams}
}

type createProviderReq struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	BaseURL    string `json:"base_url"`
	APIKey     string `json:"api_key"`
	APIVersion string `json:"api_version"`
	// NativeResponses sends every Responses request to the provider's own /responses.
	NativeResponses bool      `json:"native_responses"`
	SharedWith      *shareReq `json:"shared_with"`
	// AzureTenantID and AzureClientID: an Azure OpenAI provider authenticates with this
	// Microsoft Entra ID app registration; APIKey is then its client secret.
	AzureTenantID string `json:"azure_tenant_id"`
	AzureClientID string `json:"azure_client_id"`
}

func (a *API) createProvider(w http.ResponseWriter, r *http.Request) error {
	var in createProviderReq
	if err := decode(r, &in); err != nil {
		return err
	}
	p, err := a.store.CreateProvider(r.Context(), actor(r), requestScope(r).org.ID, store.NewProvider{
		Name: in.Name, Type: in.Type, BaseURL: in.BaseURL, APIKey: in.APIKey, APIVersion: in.APIVersion, NativeResponses: in.NativeResponses,
		AzureTenantID: in.AzureTenantID, AzureClientID: in.AzureClientID, Share: in.SharedWith.sharing(),
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, p)
	return nil
}

func (a *API) deleteProvider(w http.ResponseWriter, r *http.Request) error {
	if err := a.store.DeleteProvider(r.Context(), actor(r), requestScope(r).org.ID, chi.URLParam(r, "id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type createModelReq struct {
	Name                          string    `json:"name"`
	Provider                      string    `json:"provider"`
	UpstreamModel                 string    `json:"upstream_model"`
	InputPricePerMTokMicros       int64     `json:"input_price_per_mtok_micros"`
	OutputPricePerMTokMicros      int64     `json:"output_price_per_mtok_micros"`
	CachedInputPricePerMTokMicros int64     `json:"cached_input_price_per_mtok_micros"`
	ContextWindow                 int64     `json:"context_window"`
	Regions                       []string  `json:"regions"`
	SharedWith                    *shareReq `json:"shared_with"`
}

func (a *API) createModel(w http.ResponseWriter, r *http.Request) error {
	var in createModelReq
	if err := decode(r, &in); err != nil {
		return err
	}
	m, err := a.store.CreateModel(r.Context(), actor(r), requestScope(r).org.ID, store.NewModel{
		Name: in.Name, Provider: in.Provider, UpstreamModel: in.UpstreamModel, InputPricePerMTokMicros: in.InputPricePerMTokMicros,
		OutputPricePerMTokMicros: in.OutputPricePerMTokMicros, CachedInputPricePerMTokMicros: in.CachedInputPricePerMTokMicros,
		ContextWindow: in.ContextWindow, Regions: in.Regions, Share: in.SharedWith.sharing(),
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, m)
	return nil
}

func (a *API) deleteModel(w http.ResponseWriter, r *http.Request) error {
	if err := a.store.DeleteModel(r.Context(), actor(r), requestScope(r).org.ID, chi.URLParam(r, "id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listMCPServers(w http.ResponseWriter, r *http.Request) error {
	ms, err := a.store.ListMCPServers(r.Context(), requestScope(r).org.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[store.MCPServer]{ms})
	return nil
}

type createMCPReq struct {
	Name       string    `json:"name"`
	URL        string    `json:"url"`
	Transport  string    `json:"transport"`
	AuthHeader string    `json:"auth_header"`
	Credential string    `json:"credential"`
	SharedWith *shareReq `json:"shared_with"`
}

func (a *API) createMCPServer(w http.ResponseWriter, r *http.Request) error {
	var in createMCPReq
	if err := decode(r, &in); err != nil {
		return err
	}
	m, err := a.store.CreateMCPServer(r.Context(), actor(r), requestScope(r).org.ID, store.NewMCPServer{
		Name: in.Name, URL: in.URL, Transport: in.Transport, AuthHeader: in.AuthHeader, Credential: in.Credential, Share: in.SharedWith.sharing(),
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, m)
	return nil
}

func (a *API) deleteMCPServer(w http.ResponseWriter, r *http.Request) error {
	if err := a.store.DeleteMCPServer(r.Context(), actor(r), requestScope(r).org.ID, chi.URLParam(r, "id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listAgents(w http.ResponseWriter, r *http.Request) error {
	ag, err := a.store.ListAgents(r.Context(), requestScope(r).org.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[store.Agent]{ag})
	return nil
}

type createAgentReq struct {
	Name       string    `json:"name"`
	CardURL    string    `json:"card_url"`
	AuthHeader string    `json:"auth_header"`
	Credential string    `json:"credential"`
	SharedWith *shareReq `json:"shared_with"`
}

func (a *API) createAgent(w http.ResponseWriter, r *http.Request) error {
	var in createAgentReq
	if err := decode(r, &in); err != nil {
		return err
	}
	ag, err := a.store.CreateAgent(r.Context(), actor(r), requestScope(r).org.ID, store.NewAgent{
		Name: in.Name, CardURL: in.CardURL, AuthHeader: in.AuthHeader, Credential: in.Credential, Share: in.SharedWith.sharing(),
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, ag)
	return nil
}

func (a *API) deleteAgent(w http.ResponseWriter, r *http.Request) error {
	if err := a.store.DeleteAgent(r.Context(), actor(r), requestScope(r).org.ID, chi.URLParam(r, "id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type suspendReq struct {
	Suspended bool `json:"suspended"`
}

func (a *API) suspendTeam(w http.ResponseWriter, r *http.Request) error {
	var in suspendReq
	if err := decode(r, &in); err != nil {
		return err
	}
	sc := requestScope(r)
	t, err := a.store.SetTeamSuspended(r.Context(), actor(r), sc.org.ID, sc.team.ID, in.Suspended)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

type regionsReq struct {
	Regions []string `json:"regions"`
}

func (a *API) setTeamRegions(w http.ResponseWriter, r *http.Request) error {
	var in regionsReq
	if err := decode(r, &in); err != nil {
		return err
	}
	sc := requestScope(r)
	t, err := a.store.SetTeamRegions(r.Context(), actor(r), sc.org.ID, sc.team.ID, in.Regions)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (a *API) listAliases(w http.ResponseWriter, r *http.Request) error {
	sc := requestScope(r)
	all, err := a.store.ListAliases(r.Context(), sc.org.ID)
	if err != nil {
		return err
	}
	out := []store.Alias{}
	for _, al := range all {
		if al.TeamID == sc.team.ID {
			out = append(out, al)
		}
	}
	writeJSON(w, http.StatusOK, list[store.Alias]{out})
	return nil
}

type aliasReq struct {
	Alias string `json:"alias"`
	Model string `json:"model"`
}

func (a *API) createAlias(w http.ResponseWriter, r *http.Request) error {
	var in aliasReq
	if err := decode(r, &in); err != nil {
		return err
	}
	sc := requestScope(r)
	al, err := a.store.CreateAlias(r.Context(), actor(r), sc.org.ID, sc.team.ID, in.Alias, in.Model)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, al)
	return nil
}

func (a *API) deleteAlias(w http.ResponseWriter, r *http.Request) error {
	sc := requestScope(r)
	if err := a.store.DeleteAlias(r.Context(), actor(r), sc.org.ID, sc.team.ID, chi.URLParam(r, "alias")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listRegions(w http.ResponseWriter, r *http.Request) error {
	regions, err := a.store.ListRegions(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[string]{regions})
	return nil
}

func (a *API) fleet(w http.ResponseWriter, r *http.Request) error {
	f, err := a.store.Fleet(r.Context(), requestScope(r).org.ID, time.Now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, f)
	return nil
}

// change maps a shared_with of an edit: omitted = unchanged.
func (s *shareReq) change() *store.Sharing {
	if s != nil && s.All {
		return &store.Sharing{All: true}
	}
	return s.sharing()
}

// updateProviderReq edits a provider; omitted members stay as they are. api_key
// replaces the credential, "" removes it. azure_tenant_id and azure_client_id switch
// to Microsoft Entra ID ("" for both: back to the API key).
type updateProviderReq struct {
	Name            *string   `json:"name"`
	Type            *string   `json:"type"`
	BaseURL         *string   `json:"base_url"`
	APIKey          *string   `json:"api_key"`
	APIVersion      *string   `json:"api_version"`
	NativeResponses *bool     `json:"native_responses"`
	SharedWith      *shareReq `json:"shared_with"`
	AzureTenantID   *string   `json:"azure_tenant_id"`
	AzureClientID   *string   `json:"azure_client_id"`
}

func (a *API) updateProvider(w http.ResponseWriter, r *http.Request) error {
	var in updateProviderReq
	if err := decode(r, &in); err != nil {
		return err
	}
	p, err := a.store.UpdateProvider(r.Context(), actor(r), requestScope(r).org.ID, chi.URLParam(r, "id"), store.ProviderChange{
		Type: in.Type, Name: in.Name, BaseURL: in.BaseURL, APIKey: in.APIKey, APIVersion: in.APIVersion,
		NativeResponses: in.NativeResponses, AzureTenantID: in.AzureTenantID, AzureClientID: in.AzureClientID, Share: in.SharedWith.change(),
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

// updateModelReq edits a model's upstream id, prices, context window, regions and
// sharing; omitted members stay as they are.
type updateModelReq struct {
	UpstreamModel                 *string   `json:"upstream_model"`
	InputPricePerMTokMicros       *int64    `json:"input_price_per_mtok_micros"`
	OutputPricePerMTokMicros      *int64    `json:"output_price_per_mtok_micros"`
	CachedInputPricePerMTokMicros *int64    `json:"cached_input_price_per_mtok_micros"`
	ContextWindow                 *int64    `json:"context_window"`
	Regions                       *[]string `json:"regions"`
	SharedWith                    *shareReq `json:"shared_with"`
}

func (a *API) updateModel(w http.ResponseWriter, r *http.Request) error {
	var in updateModelReq
	if err := decode(r, &in); err != nil {
		return err
	}
	m, err := a.store.UpdateModel(r.Context(), actor(r), requestScope(r).org.ID, chi.URLParam(r, "id"), store.ModelChange{
		UpstreamModel: in.UpstreamModel, InputPricePerMTokMicros: in.InputPricePerMTokMicros, OutputPricePerMTokMicros: in.OutputPricePerMTokMicros,
		CachedInputPricePerMTokMicros: in.CachedInputPricePerMTokMicros, ContextWindow: in.ContextWindow, Regions: in.Regions,
		Share: in.SharedWith.change(),
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}
