package store

import (
	"context"
	"regexp/syntax"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store/dbq"
)

// Limits caps traffic; zero means unlimited.
type Limits struct {
	RPM           int64 `json:"rpm"`
	TPM           int64 `json:"tpm"`
	MaxConcurrent int64 `json:"max_concurrent"`
}

func (l Limits) validate() error {
	if l.RPM < 0 || l.TPM < 0 || l.MaxConcurrent < 0 {
		return invalid("limits", "limits cannot be negative (0 = unlimited)")
	}
	return nil
}

// SetTeamLimits sets the limits of a whole team.
func (s *Store) SetTeamLimits(ctx context.Context, actor Actor, orgID, teamID string, l Limits) (Team, error) {
	if err := l.validate(); err != nil {
		return Team{}, err
	}
	var out Team
	err := s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		before, err := q.GetTeam(ctx, dbq.GetTeamParams{ID: teamID, OrgID: orgID})
		if err != nil {
			return err
		}
		row, err := q.SetTeamLimits(ctx, dbq.SetTeamLimitsParams{ID: teamID, OrgID: orgID, Rpm: l.RPM, Tpm: l.TPM, MaxConcurrent: l.MaxConcurrent})
		if err != nil {
			return err
		}
		out = teamFromRow(row)
		ch.before, ch.after = teamFromRow(before), out
		return nil
	}, change{actor: actor, orgID: orgID, action: "team.limits", targetType: "team", targetID: teamID})
	return out, err
}

// SetTeamLogContents turns storing prompt and completion contents in gateway logs on or
// off for a team.
func (s *Store) SetTeamLogContents(ctx context.Context, actor Actor, orgID, teamID string, on bool) (Team, error) {
	var out Team
	err := s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		before, err := q.GetTeam(ctx, dbq.GetTeamParams{ID: teamID, OrgID: orgID})
		if err != nil {
			return err
		}
		row, err := q.SetTeamLogContents(ctx, dbq.SetTeamLogContentsParams{ID: teamID, OrgID: orgID, LogContents: on})
		if err != nil {
			return err
		}
		out = teamFromRow(row)
		ch.before, ch.after = teamFromRow(before), out
		return nil
	}, change{actor: actor, orgID: orgID, action: "team.log_contents", targetType: "team", targetID: teamID})
	return out, err
}

// SetModelLimits sets a model's limits across the org.
func (s *Store) SetModelLimits(ctx context.Context, actor Actor, orgID, modelID string, l Limits) (Model, error) {
	if err := l.validate(); err != nil {
		return Model{}, err
	}
	var out Model
	err := s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		before, err := q.GetModel(ctx, dbq.GetModelParams{ID: modelID, OrgID: orgID})
		if err != nil {
			return err
		}
		row, err := q.SetModelLimits(ctx, dbq.SetModelLimitsParams{ID: modelID, OrgID: orgID, Rpm: l.RPM, Tpm: l.TPM, MaxConcurrent: l.MaxConcurrent})
		if err != nil {
			return err
		}
		out = modelFromRow(row)
		ch.before, ch.after = modelFromRow(before), out
		return nil
	}, change{actor: actor, orgID: orgID, action: "model.limits", targetType: "model", targetID: modelID})
	return out, err
}

// Routing says how a model's deployments are chosen and retried.
type Routing struct {
	Strategy       string `json:"strategy"`
	MaxRetries     int32  `json:"max_retries"`
	RetryBackoffMs int64  `json:"retry_backoff_ms"`
	TimeoutMs      int64  `json:"timeout_ms"`
	TTFTTimeoutMs  int64  `json:"ttft_timeout_ms"`
	// StreamIdleTimeoutMs bounds the silence between stream events after the first
	// token (0: the gateway's default).
	StreamIdleTimeoutMs int64    `json:"stream_idle_timeout_ms"`
	BreakerFailures     int32    `json:"breaker_failures"`
	BreakerCooldownMs   int64    `json:"breaker_cooldown_ms"`
	Fallbacks           []string `json:"fallbacks"`
}

// maxRoutingMs is the longest routing duration, as the gateways bound it.
const maxRoutingMs = 24 * 60 * 60 * 1000

// RoutingStrategies lists the strategies.
var RoutingStrategies = []string{"weighted", "least-busy", "latency"}

// SetModelRouting sets a model's routing and fallback chain. Fallbacks must name other
// models of the org and may not loop back to this one.
func (s *Store) SetModelRouting(ctx context.Context, actor Actor, orgID, modelID string, r Routing) (Model, error) {
	if r.Strategy == "" {
		r.Strategy = "weighted"
	}
	fields := map[string]string{}
	if !slices.Contains(RoutingStrategies, r.Strategy) {
		fields["strategy"] = "must be weighted, least-busy or latency"
	}
	if r.MaxRetries < 0 || r.MaxRetries > 10 {
		fields["max_retries"] = "must be between 0 and 10"
	}
	if r.BreakerFailures < 0 || r.BreakerFailures > 1000 {
		fields["breaker_failures"] = "must be between 0 and 1000"
	}
	for _, ms := range []int64{r.RetryBackoffMs, r.TimeoutMs, r.TTFTTimeoutMs, r.BreakerCooldownMs, r.StreamIdleTimeoutMs} {
		if ms < 0 || ms > maxRoutingMs {
			// Gateways refuse a snapshot with a longer one (a setting that long is a mistake).
			fields["timeouts"] = "durations must be between 0 and 24 hours"
		}
	}
	models, err := s.ListModels(ctx, orgID)
	if err != nil {
		return Model{}, err
	}
	byName := map[string]Model{}
	var self Model
	for _, m := range models {
		byName[m.Name] = m
		if m.ID == modelID {
			self = m
		}
	}
	if self.ID == "" {
		return Model{}, ErrNotFound
	}
	r.Fallbacks = cleanList(r.Fallbacks)
	for _, f := range r.Fallbacks {
		if _, ok := byName[f]; !ok {
			fields["fallbacks"] = "no such model: " + f
		} else if f == self.Name {
			fields["fallbacks"] = "a model cannot fall back to itself"
		}
	}
	// Refuse cycles: walking fallbacks from this model must never come back to it.
	if fields["fallbacks"] == "" {
		next := map[string][]string{self.Name: r.Fallbacks}
		for _, m := range models {
			if m.ID != modelID {
				next[m.Name] = m.Routing.Fallbacks
			}
		}
		if cyclic(self.Name, next) {
			fields["fallbacks"] = "the fallback chain loops back to " + self.Name
		}
	}
	if len(fields) > 0 {
		return Model{}, &ValidationError{Fields: fields}
	}
	var out Model
	err = s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		row, err := q.SetModelRouting(ctx, dbq.SetModelRoutingParams{ID: modelID, OrgID: orgID, RoutingStrategy: r.Strategy,
			MaxRetries: r.MaxRetries, RetryBackoffMs: r.RetryBackoffMs, TimeoutMs: r.TimeoutMs, TtftTimeoutMs: r.TTFTTimeoutMs,
			BreakerFailures: r.BreakerFailures, BreakerCooldownMs: r.BreakerCooldownMs, Fallbacks: r.Fallbacks,
			StreamIdleTimeoutMs: r.StreamIdleTimeoutMs})
		if err != nil {
			return err
		}
		out = modelFromRow(row)
		ch.before, ch.after = self, out
		return nil
	}, change{actor: actor, orgID: orgID, action: "model.routing", targetType: "model", targetID: modelID})
	return out, err
}

func cyclic(start string, next map[string][]string) bool {
	seen := map[string]bool{}
	var walk func(string) bool
	walk = func(n string) bool {
		for _, m := range next[n] {
			if m == start {
				return true
			}
			if !seen[m] {
				seen[m] = true
				if walk(m) {
					return true
				}
			}
		}
		return false
	}
	return walk(start)
}

// Deployment is an extra place a model is served.
type Deployment struct {
	ID            string `json:"id"`
	ModelID       string `json:"model_id"`
	ProviderID    string `json:"provider_id"`
	UpstreamModel string `json:"upstream_model"`
	Weight        int32  `json:"weight"`
}

func deploymentFromRow(r dbq.ModelDeployment) Deployment {
	return Deployment{ID: r.ID, ModelID: r.ModelID, ProviderID: r.ProviderID, UpstreamModel: r.UpstreamModel, Weight: r.Weight}
}

// CreateDeployment adds a deployment to a model. Provider is an id or name.
func (s *Store) CreateDeployment(ctx context.Context, actor Actor, orgID, modelID, provider, upstream string, weight int32) (Deployment, error) {
	upstream = strings.TrimSpace(upstream)
	if upstream == "" {
		return Deployment{}, invalid("upstream_model", "is required")
	}
	if weight < 0 || weight > 1000 {
		return Deployment{}, invalid("weight", "must be between 0 and 1000")
	}
	providers, err := s.ListProviders(ctx, orgID)
	if err != nil {
		return Deployment{}, err
	}
	providerID := ""
	for _, p := range providers {
		if p.ID == provider || p.Name == provider {
			providerID = p.ID
		}
	}
	if providerID == "" {
		return Deployment{}, invalid("provider", "no such provider in this organization")
	}
	var out Deployment
	err = s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		if _, err := q.GetModel(ctx, dbq.GetModelParams{ID: modelID, OrgID: orgID}); err != nil {
			return err
		}
		row, err := q.CreateDeployment(ctx, dbq.CreateDeploymentParams{OrgID: orgID, ModelID: modelID, ProviderID: providerID, UpstreamModel: upstream, Weight: weight})
		if err != nil {
			return err
		}
		out = deploymentFromRow(row)
		ch.targetID, ch.after = out.ID, out
		return nil
	}, change{actor: actor, orgID: orgID, action: "model.deployment.create", targetType: "deployment"})
	return out, err
}

// DeleteDeployment removes a deployment.
func (s *Store) DeleteDeployment(ctx context.Context, actor Actor, orgID, modelID, id string) error {
	return s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		row, err := q.DeleteDeployment(ctx, dbq.DeleteDeploymentParams{ID: id, ModelID: modelID, OrgID: orgID})
		if err != nil {
			return err
		}
		ch.before = deploymentFromRow(row)
		return nil
	}, change{actor: actor, orgID: orgID, action: "model.deployment.delete", targetType: "deployment", targetID: id})
}

// ListDeployments lists every deployment of org's models.
func (s *Store) ListDeployments(ctx context.Context, orgID string) ([]Deployment, error) {
	rows, err := dbq.New(s.pool).ListDeployments(ctx, orgID)
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]Deployment, len(rows))
	for i, r := range rows {
		out[i] = deploymentFromRow(r)
	}
	return out, nil
}

// Guardrail detectors, modes and directions.
var (
	GuardrailDetectors  = []string{"email", "phone", "card", "iban", "api_key", "private_key", "prompt_injection", "custom_regex"}
	GuardrailModes      = []string{"block", "redact", "audit"}
	GuardrailDirections = []string{"request", "response", "both"}
)

// Guardrail is one rule of a team.
type Guardrail struct {
	ID        string    `json:"id"`
	TeamID    string    `json:"team_id"`
	Name      string    `json:"name"`
	Detector  string    `json:"detector"`
	Mode      string    `json:"mode"`
	Direction string    `json:"direction"`
	Pattern   string    `json:"pattern,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

func guardrailFromRow(r dbq.GuardrailRule) Guardrail {
	return Guardrail{ID: r.ID, TeamID: r.TeamID, Name: r.Name, Detector: r.Detector, Mode: r.Mode, Direction: r.Direction,
		Pattern: r.Pattern, CreatedAt: r.CreatedAt.Time.UTC()}
}

// CreateGuardrail adds a rule to a team.
func (s *Store) CreateGuardrail(ctx context.Context, actor Actor, orgID, teamID string, g Guardrail) (Guardrail, error) {
	g.Name = strings.TrimSpace(g.Name)
	if g.Direction == "" {
		g.Direction = "both"
	}
	fields := map[string]string{}
	if g.Name == "" || len(g.Name) > 100 {
		fields["name"] = "is required (up to 100 characters)"
	}
	if !slices.Contains(GuardrailDetectors, g.Detector) {
		fields["detector"] = "must be one of " + strings.Join(GuardrailDetectors, ", ")
	}
	if !slices.Contains(GuardrailModes, g.Mode) {
		fields["mode"] = "must be block, redact or audit"
	}
	if !slices.Contains(GuardrailDirections, g.Direction) {
		fields["direction"] = "must be request, response or both"
	}
	if g.Detector == "custom_regex" {
		if g.Pattern == "" {
			fields["pattern"] = "a custom_regex rule needs a pattern"
		} else if _, err := syntax.Parse(g.Pattern, syntax.Perl); err != nil || len(g.Pattern) > 1000 {
			fields["pattern"] = "is not a valid RE2 regular expression"
		}
	} else {
		g.Pattern = ""
	}
	if len(fields) > 0 {
		return Guardrail{}, &ValidationError{Fields: fields}
	}
	var out Guardrail
	err := s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		row, err := q.CreateGuardrail(ctx, dbq.CreateGuardrailParams{OrgID: orgID, TeamID: teamID, Name: g.Name, Detector: g.Detector,
			Mode: g.Mode, Direction: g.Direction, Pattern: g.Pattern})
		if err != nil {
			return err
		}
		out = guardrailFromRow(row)
		ch.targetID, ch.after = out.ID, out
		return nil
	}, change{actor: actor, orgID: orgID, action: "guardrail.create", targetType: "guardrail"})
	return out, err
}

// DeleteGuardrail removes a team's rule.
func (s *Store) DeleteGuardrail(ctx context.Context, actor Actor, orgID, teamID, id string) error {
	return s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		row, err := q.DeleteGuardrail(ctx, dbq.DeleteGuardrailParams{ID: id, TeamID: teamID, OrgID: orgID})
		if err != nil {
			return err
		}
		ch.before = guardrailFromRow(row)
		return nil
	}, change{actor: actor, orgID: orgID, action: "guardrail.delete", targetType: "guardrail", targetID: id})
}

// ListGuardrails lists every rule of org's teams.
func (s *Store) ListGuardrails(ctx context.Context, orgID string) ([]Guardrail, error) {
	rows, err := dbq.New(s.pool).ListGuardrails(ctx, orgID)
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]Guardrail, len(rows))
	for i, r := range rows {
		out[i] = guardrailFromRow(r)
	}
	return out, nil
}

// GuardrailTrigger is a recorded trigger.
type GuardrailTrigger struct {
	At        time.Time `json:"at"`
	RuleID    string    `json:"rule_id"`
	RuleName  string    `json:"rule_name"`
	Detector  string    `json:"detector"`
	Mode      string    `json:"mode"`
	Direction string    `json:"direction"`
	Matches   int32     `json:"matches"`
	RequestID string    `json:"request_id"`
	// Texts is where the rule matched: "content", "reasoning", "arguments", "refusal"
	// or "request"; empty when the gateway did not say.
	Texts []string `json:"texts"`
}

// RecentGuardrailTriggers lists a team's triggers since since (newest 50).
func (s *Store) RecentGuardrailTriggers(ctx context.Context, teamID string, since time.Time) ([]GuardrailTrigger, error) {
	rows, err := dbq.New(s.pool).RecentGuardrailEvents(ctx, dbq.RecentGuardrailEventsParams{TeamID: &teamID, StartedAt: ts(since)})
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]GuardrailTrigger, len(rows))
	for i, r := range rows {
		out[i] = GuardrailTrigger{At: r.StartedAt.Time.UTC(), RuleID: r.RuleID, RuleName: r.RuleName, Detector: r.Detector, Mode: r.Mode,
			Direction: r.Direction, Matches: r.Matches, RequestID: r.RequestID, Texts: r.Texts}
		if out[i].Texts == nil {
			out[i].Texts = []string{} // JSON [] rather than null
		}
	}
	return out, nil
}
