package console

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	v "github.com/gatehouse-dev/gatehouse/web/console"
	"github.com/go-chi/chi/v5"
)

func itoa(n int64) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatInt(n, 10)
}

func limitsForm(l store.Limits) v.LimitsForm {
	return v.LimitsForm{RPM: itoa(l.RPM), TPM: itoa(l.TPM), MaxConcurrent: itoa(l.MaxConcurrent)}
}

// parseLimits reads rpm, tpm and max_concurrent (empty = 0 = unlimited).
func parseLimits(r *http.Request) (store.Limits, v.LimitsForm, v.FieldErrors) {
	f := v.LimitsForm{RPM: r.PostFormValue("rpm"), TPM: r.PostFormValue("tpm"), MaxConcurrent: r.PostFormValue("max_concurrent")}
	var l store.Limits
	fe := v.FieldErrors{}
	for _, x := range []struct {
		name, val string
		dst       *int64
	}{{"rpm", f.RPM, &l.RPM}, {"tpm", f.TPM, &l.TPM}, {"max_concurrent", f.MaxConcurrent, &l.MaxConcurrent}} {
		val := strings.ReplaceAll(strings.TrimSpace(x.val), ",", "")
		if val == "" {
			continue
		}
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil || n < 0 {
			fe[x.name] = "enter a whole number (empty or 0 = unlimited)"
			continue
		}
		*x.dst = n
	}
	if len(fe) == 0 {
		fe = nil
	}
	return l, f, fe
}

func (c *Console) teamLimits(w http.ResponseWriter, r *http.Request) error {
	l, form, fe := parseLimits(r)
	if fe == nil {
		_, err := c.Store.SetTeamLimits(r.Context(), actor(r), currentOrg(r).ID, currentTeam(r).ID, l)
		if fe = fieldErrors(err); fe == nil && err != nil {
			return err
		}
	}
	if fe != nil {
		form.Errors = fe
		return c.rerenderTeam(w, r, v.TeamView{Limits: form})
	}
	return c.teamDone(w, r, "limits")
}

func (c *Console) addGuardrail(w http.ResponseWriter, r *http.Request) error {
	form := v.GuardrailForm{Name: r.PostFormValue("name"), Detector: r.PostFormValue("detector"), Mode: r.PostFormValue("mode"),
		Direction: r.PostFormValue("direction"), Pattern: r.PostFormValue("pattern")}
	_, err := c.Store.CreateGuardrail(r.Context(), actor(r), currentOrg(r).ID, currentTeam(r).ID, store.Guardrail{
		Name: form.Name, Detector: form.Detector, Mode: form.Mode, Direction: form.Direction, Pattern: form.Pattern})
	if fe := fieldErrors(err); fe != nil {
		form.Errors = fe
		return c.rerenderTeam(w, r, v.TeamView{GuardrailForm: form})
	}
	if err != nil {
		return err
	}
	return c.teamDone(w, r, "guardrail")
}

func (c *Console) deleteGuardrail(w http.ResponseWriter, r *http.Request) error {
	if err := c.Store.DeleteGuardrail(r.Context(), actor(r), currentOrg(r).ID, currentTeam(r).ID, chi.URLParam(r, "id")); err != nil {
		return err
	}
	return c.teamDone(w, r, "deleted")
}

func (c *Console) logContents(w http.ResponseWriter, r *http.Request) error {
	if _, err := c.Store.SetTeamLogContents(r.Context(), actor(r), currentOrg(r).ID, currentTeam(r).ID, r.PostFormValue("enabled") == "true"); err != nil {
		return err
	}
	return c.teamDone(w, r, "logging")
}

// Model detail: deployments, routing and limits.

func (c *Console) modelView(r *http.Request, mv v.ModelView) (v.ModelView, error) {
	sh, err := c.shell(r, "Model", v.NavModels)
	if err != nil {
		return mv, err
	}
	_, names, err := c.teamNames(r)
	if err != nil {
		return mv, err
	}
	rows, ms, ps, err := c.modelRows(r, names)
	if err != nil {
		return mv, err
	}
	id := chi.URLParam(r, "id")
	var model *store.Model
	for i := range ms {
		if ms[i].ID == id {
			model, mv.Model = &ms[i], rows[i]
		} else {
			mv.AllModels = append(mv.AllModels, ms[i].Name)
		}
	}
	if model == nil {
		return mv, store.ErrNotFound
	}
	sh.Title = model.Name
	mv.Shell, mv.CanManage = sh, c.allowed(r, "models", "write")
	pname := map[string]string{}
	for _, p := range ps {
		pname[p.ID] = p.Name
		mv.Providers = append(mv.Providers, v.ProviderOption{ID: p.ID, Name: p.Name})
	}
	deps, err := c.Store.ListDeployments(r.Context(), currentOrg(r).ID)
	if err != nil {
		return mv, err
	}
	for _, d := range deps {
		if d.ModelID == id {
			mv.Deployments = append(mv.Deployments, v.DeploymentRow{ID: d.ID, Provider: pname[d.ProviderID], UpstreamModel: d.UpstreamModel, Weight: strconv.Itoa(int(d.Weight))})
		}
	}
	if mv.Routing.Errors == nil {
		rt := model.Routing
		mv.Routing = v.RoutingForm{Strategy: rt.Strategy, MaxRetries: itoa(int64(rt.MaxRetries)), RetryBackoffMs: itoa(rt.RetryBackoffMs),
			TimeoutMs: itoa(rt.TimeoutMs), TTFTTimeoutMs: itoa(rt.TTFTTimeoutMs), StreamIdleTimeoutMs: itoa(rt.StreamIdleTimeoutMs),
			BreakerFailures:   itoa(int64(rt.BreakerFailures)),
			BreakerCooldownMs: itoa(rt.BreakerCooldownMs), Fallbacks: rt.Fallbacks}
	}
	if mv.Limits.Errors == nil {
		mv.Limits = limitsForm(model.Limits)
	}
	if mv.Settings.Errors == nil {
		mv.Settings = modelSettingsForm(*model)
	}
	return mv, nil
}

func (c *Console) renderModel(w http.ResponseWriter, r *http.Request, status int, mv v.ModelView) error {
	mv, err := c.modelView(r, mv)
	if err != nil {
		return err
	}
	c.render(w, r, status, v.Model(mv))
	return nil
}

func (c *Console) model(w http.ResponseWriter, r *http.Request) error {
	return c.renderModel(w, r, http.StatusOK, v.ModelView{})
}

func (c *Console) modelDone(w http.ResponseWriter, r *http.Request, flash string) error {
	http.Redirect(w, r, "/orgs/"+currentOrg(r).Slug+"/models/"+chi.URLParam(r, "id")+"?done="+flash, http.StatusSeeOther)
	return nil
}

func (c *Console) addDeployment(w http.ResponseWriter, r *http.Request) error {
	form := v.DeploymentForm{ProviderID: r.PostFormValue("provider_id"), UpstreamModel: r.PostFormValue("upstream_model"), Weight: r.PostFormValue("weight")}
	weight := int64(1)
	var err error
	if form.Weight != "" {
		if weight, err = strconv.ParseInt(form.Weight, 10, 32); err != nil {
			form.Errors = v.FieldErrors{"weight": "enter a whole number between 0 and 1000"}
			return c.renderModel(w, r, http.StatusUnprocessableEntity, v.ModelView{DeploymentForm: form})
		}
	}
	_, err = c.Store.CreateDeployment(r.Context(), actor(r), currentOrg(r).ID, chi.URLParam(r, "id"), form.ProviderID, form.UpstreamModel, int32(weight))
	if fe := fieldErrors(err); fe != nil {
		if m, ok := fe["provider"]; ok {
			fe["provider_id"] = m
		}
		form.Errors = fe
		return c.renderModel(w, r, http.StatusUnprocessableEntity, v.ModelView{DeploymentForm: form})
	}
	if err != nil {
		return err
	}
	return c.modelDone(w, r, "created")
}

func (c *Console) deleteDeployment(w http.ResponseWriter, r *http.Request) error {
	if err := c.Store.DeleteDeployment(r.Context(), actor(r), currentOrg(r).ID, chi.URLParam(r, "id"), chi.URLParam(r, "dep")); err != nil {
		return err
	}
	return c.modelDone(w, r, "deleted")
}

func (c *Console) modelRouting(w http.ResponseWriter, r *http.Request) error {
	if err := c.parseForm(r); err != nil {
		return err
	}
	form := v.RoutingForm{Strategy: r.PostFormValue("strategy"), MaxRetries: r.PostFormValue("max_retries"), RetryBackoffMs: r.PostFormValue("retry_backoff_ms"),
		TimeoutMs: r.PostFormValue("timeout_ms"), TTFTTimeoutMs: r.PostFormValue("ttft_timeout_ms"),
		StreamIdleTimeoutMs: r.PostFormValue("stream_idle_timeout_ms"), BreakerFailures: r.PostFormValue("breaker_failures"),
		BreakerCooldownMs: r.PostFormValue("breaker_cooldown_ms")}
	for _, f := range r.PostForm["fallbacks"] {
		if f = strings.TrimSpace(f); f != "" {
			form.Fallbacks = append(form.Fallbacks, f)
		}
	}
	fe := v.FieldErrors{}
	num := func(field, val string) int64 {
		if val == "" {
			return 0
		}
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil || n < 0 {
			fe[field] = "enter a whole number"
		}
		return n
	}
	rt := store.Routing{Strategy: form.Strategy, MaxRetries: int32(num("max_retries", form.MaxRetries)), RetryBackoffMs: num("retry_backoff_ms", form.RetryBackoffMs),
		TimeoutMs: num("timeout_ms", form.TimeoutMs), TTFTTimeoutMs: num("ttft_timeout_ms", form.TTFTTimeoutMs),
		StreamIdleTimeoutMs: num("stream_idle_timeout_ms", form.StreamIdleTimeoutMs),
		BreakerFailures:     int32(num("breaker_failures", form.BreakerFailures)), BreakerCooldownMs: num("breaker_cooldown_ms", form.BreakerCooldownMs),
		Fallbacks: form.Fallbacks}
	if len(fe) == 0 {
		_, err := c.Store.SetModelRouting(r.Context(), actor(r), currentOrg(r).ID, chi.URLParam(r, "id"), rt)
		if fe = fieldErrors(err); fe == nil && err != nil {
			return err
		}
		if t, ok := fe["timeouts"]; ok {
			fe["timeout_ms"] = t
		}
	}
	if len(fe) > 0 {
		form.Errors = fe
		return c.renderModel(w, r, http.StatusUnprocessableEntity, v.ModelView{Routing: form})
	}
	return c.modelDone(w, r, "routing")
}

func (c *Console) modelLimits(w http.ResponseWriter, r *http.Request) error {
	l, form, fe := parseLimits(r)
	if fe == nil {
		_, err := c.Store.SetModelLimits(r.Context(), actor(r), currentOrg(r).ID, chi.URLParam(r, "id"), l)
		if fe = fieldErrors(err); fe == nil && err != nil {
			return err
		}
	}
	if fe != nil {
		form.Errors = fe
		return c.renderModel(w, r, http.StatusUnprocessableEntity, v.ModelView{Limits: form})
	}
	return c.modelDone(w, r, "limits")
}

// Usage.

func (c *Console) usage(w http.ResponseWriter, r *http.Request) error {
	sh, err := c.shell(r, "Usage", v.NavUsage)
	if err != nil {
		return err
	}
	rng := r.URL.Query().Get("range")
	d, ok := store.UsageRanges[rng]
	if !ok {
		rng, d = "24h", 24*time.Hour
	}
	detail, err := c.Store.UsageDetail(r.Context(), currentOrg(r).ID, time.Now().Add(-d))
	if err != nil {
		return err
	}
	teamFilter := ""
	for _, t := range sh.Teams {
		if t.Current {
			teamFilter = t.Name
		}
	}
	view := v.UsageView{Shell: sh, Range: rng}
	var req, errs, pt, ct, cost int64
	for _, b := range detail.Breakdown {
		if teamFilter != "" && b.Team != teamFilter {
			continue
		}
		req, errs, pt, ct, cost = req+b.Requests, errs+b.Errors, pt+b.PromptTokens, ct+b.CompletionTokens, cost+b.CostMicros
		view.Breakdown = append(view.Breakdown, v.UsageRow{Team: orDash(b.Team), Model: orDash(b.Model), Requests: thousands0(b.Requests),
			Errors: thousands0(b.Errors), PromptTokens: thousands0(b.PromptTokens), CompletionTokens: thousands0(b.CompletionTokens),
			CacheTokens: thousands0(b.CachedTokens) + " / " + thousands0(b.CacheWriteTokens), Cost: money(b.CostMicros), P50LatencyMs: strconv.FormatFloat(b.P50LatencyMs, 'f', 0, 64), P95LatencyMs: strconv.FormatFloat(b.P95LatencyMs, 'f', 0, 64)})
	}
	view.Totals = v.UsageTotals{Requests: thousands0(req), Errors: thousands0(errs), PromptTokens: thousands0(pt), CompletionTokens: thousands0(ct), Cost: money(cost)}
	for _, e := range detail.Recent {
		if teamFilter != "" && e.Team != teamFilter {
			continue
		}
		row := v.RecentRow{At: e.StartedAt.Format("2006-01-02 15:04:05"), RequestID: e.RequestID, Team: orDash(e.Team), AgentIdentity: e.AgentIdentity,
			Model: orDash(e.Model), ServiceTier: e.ServiceTier, Endpoint: e.Endpoint, Status: strconv.Itoa(int(e.StatusCode)), Streamed: e.Streamed,
			Tokens: thousands0(e.PromptTokens + e.CompletionTokens), Cost: money(e.CostMicros), LatencyMs: strconv.FormatInt(e.LatencyMs, 10),
			Deployment: e.DeploymentID, Retries: strconv.Itoa(int(e.Retries)), Fallback: e.FallbackModel}
		if e.KeyID != nil {
			row.KeyID = *e.KeyID
		}
		view.Recent = append(view.Recent, row)
	}
	c.render(w, r, http.StatusOK, v.Usage(view))
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func thousands0(n int64) string {
	if n == 0 {
		return "0"
	}
	return thousands(n)
}

// money formats micro-USD as dollars with cents (and more precision under a cent).
func money(micros int64) string {
	if micros == 0 {
		return "$0.00"
	}
	if micros < 10_000 {
		return "$" + strconv.FormatFloat(float64(micros)/1e6, 'f', 6, 64)
	}
	return "$" + strconv.FormatFloat(float64(micros)/1e6, 'f', 2, 64)
}
