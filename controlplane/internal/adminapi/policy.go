package adminapi

import (
	"net/http"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	"github.com/go-chi/chi/v5"
)

func (a *API) setTeamLimits(w http.ResponseWriter, r *http.Request) error {
	var in store.Limits
	if err := decode(r, &in); err != nil {
		return err
	}
	sc := requestScope(r)
	t, err := a.store.SetTeamLimits(r.Context(), actor(r), sc.org.ID, sc.team.ID, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

type logContentsReq struct {
	Enabled bool `json:"enabled"`
}

func (a *API) setLogContents(w http.ResponseWriter, r *http.Request) error {
	var in logContentsReq
	if err := decode(r, &in); err != nil {
		return err
	}
	sc := requestScope(r)
	t, err := a.store.SetTeamLogContents(r.Context(), actor(r), sc.org.ID, sc.team.ID, in.Enabled)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (a *API) listGuardrails(w http.ResponseWriter, r *http.Request) error {
	sc := requestScope(r)
	all, err := a.store.ListGuardrails(r.Context(), sc.org.ID)
	if err != nil {
		return err
	}
	out := []store.Guardrail{}
	for _, g := range all {
		if g.TeamID == sc.team.ID {
			out = append(out, g)
		}
	}
	writeJSON(w, http.StatusOK, list[store.Guardrail]{out})
	return nil
}

type guardrailReq struct {
	Name      string `json:"name"`
	Detector  string `json:"detector"`
	Mode      string `json:"mode"`
	Direction string `json:"direction"`
	Pattern   string `json:"pattern"`
}

func (a *API) createGuardrail(w http.ResponseWriter, r *http.Request) error {
	var in guardrailReq
	if err := decode(r, &in); err != nil {
		return err
	}
	sc := requestScope(r)
	g, err := a.store.CreateGuardrail(r.Context(), actor(r), sc.org.ID, sc.team.ID, (store.Guardrail{
		Name: in.Name, Detector: in.Detector, Mode: in.Mode, Direction: in.Direction, Pattern: in.Pattern}))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, g)
	return nil
}

func (a *API) deleteGuardrail(w http.ResponseWriter, r *http.Request) error {
	sc := requestScope(r)
	if err := a.store.DeleteGuardrail(r.Context(), actor(r), sc.org.ID, sc.team.ID, chi.URLParam(r, "id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) guardrailTriggers(w http.ResponseWriter, r *http.Request) error {
	ts, err := a.store.RecentGuardrailTriggers(r.Context(), requestScope(r).team.ID, time.Now().Add(-24*time.Hour))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[store.GuardrailTrigger]{ts})
	return nil
}

func (a *API) setModelLimits(w http.ResponseWriter, r *http.Request) error {
	var in store.Limits
	if err := decode(r, &in); err != nil {
		return err
	}
	m, err := a.store.SetModelLimits(r.Context(), actor(r), requestScope(r).org.ID, chi.URLParam(r, "id"), in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

func (a *API) setModelRouting(w http.ResponseWriter, r *http.Request) error {
	var in store.Routing
	if err := decode(r, &in); err != nil {
		return err
	}
	m, err := a.store.SetModelRouting(r.Context(), actor(r), requestScope(r).org.ID, chi.URLParam(r, "id"), in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

func (a *API) listDeployments(w http.ResponseWriter, r *http.Request) error {
	all, err := a.store.ListDeployments(r.Context(), requestScope(r).org.ID)
	if err != nil {
		return err
	}
	out := []store.Deployment{}
	for _, d := range all {
		if d.ModelID == chi.URLParam(r, "id") {
			out = append(out, d)
		}
	}
	writeJSON(w, http.StatusOK, list[store.Deployment]{out})
	return nil
}

type deploymentReq struct {
	Provider      string `json:"provider"`
	UpstreamModel string `json:"upstream_model"`
	Weight        *int32 `json:"weight"`
}

func (a *API) createDeployment(w http.ResponseWriter, r *http.Request) error {
	var in deploymentReq
	if err := decode(r, &in); err != nil {
		return err
	}
	weight := int32(1)
	if in.Weight != nil {
		weight = *in.Weight
	}
	d, err := a.store.CreateDeployment(r.Context(), actor(r), requestScope(r).org.ID, chi.URLParam(r, "id"), in.Provider, in.UpstreamModel, weight)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, d)
	return nil
}

func (a *API) deleteDeployment(w http.ResponseWriter, r *http.Request) error {
	if err := a.store.DeleteDeployment(r.Context(), actor(r), requestScope(r).org.ID, chi.URLParam(r, "id"), chi.URLParam(r, "dep")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
