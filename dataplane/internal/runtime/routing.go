package runtime

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

// Limits caps traffic for a key, a team or a model. Zero fields mean no limit. The
// runtime only carries them; the limit package enforces them.
type Limits struct {
	// RPM is requests per minute, TPM tokens (prompt + completion) per minute.
	RPM int64
	TPM int64
	// MaxConcurrent is the number of requests in flight at once.
	MaxConcurrent int64
}

// IsZero reports whether the limits cap nothing.
func (l Limits) IsZero() bool { return l == Limits{} }

func compileLimits(l *gatehousev1.Limits) (Limits, error) {
	if l == nil {
		return Limits{}, nil
	}
	if l.Rpm < 0 || l.Tpm < 0 || l.MaxConcurrent < 0 {
		return Limits{}, errors.New("limits must not be negative")
	}
	return Limits{RPM: l.Rpm, TPM: l.Tpm, MaxConcurrent: l.MaxConcurrent}, nil
}

// GuardrailRule is one compiled guardrail of a team. The runtime validates it (known
// detector, mode and direction; a custom pattern compiles) and carries it; the guardrail
// package applies it.
type GuardrailRule struct {
	ID        string
	Name      string
	Detector  gatehousev1.GuardrailDetector
	Mode      gatehousev1.GuardrailMode
	Direction gatehousev1.GuardrailDirection
	// Pattern is the RE2 expression of a CUSTOM_REGEX rule and Regexp its compiled form;
	// both are empty for the other detectors.
	Pattern string
	Regexp  *regexp.Regexp
}

// OnRequest reports whether the rule inspects requests.
func (r *GuardrailRule) OnRequest() bool {
	return r.Direction == gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_REQUEST ||
		r.Direction == gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_BOTH
}

// OnResponse reports whether the rule inspects responses.
func (r *GuardrailRule) OnResponse() bool {
	return r.Direction == gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_RESPONSE ||
		r.Direction == gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_BOTH
}

// maxPatternLen bounds custom patterns: RE2 is linear in the input, but a huge program
// still costs memory on every gateway.
const maxPatternLen = 4096

func compileGuardrails(rules []*gatehousev1.GuardrailRule) ([]*GuardrailRule, error) {
	if len(rules) == 0 {
		return nil, nil
	}
	out := make([]*GuardrailRule, 0, len(rules))
	seen := make(map[string]struct{}, len(rules))
	for _, r := range rules {
		if r.Id == "" {
			return nil, errors.New("guardrail with empty id")
		}
		if _, dup := seen[r.Id]; dup {
			return nil, fmt.Errorf("duplicate guardrail %q", r.Id)
		}
		seen[r.Id] = struct{}{}
		if _, ok := gatehousev1.GuardrailDetector_name[int32(r.Detector)]; !ok || r.Detector == 0 {
			return nil, fmt.Errorf("guardrail %q: unsupported detector %s", r.Id, r.Detector)
		}
		if _, ok := gatehousev1.GuardrailMode_name[int32(r.Mode)]; !ok || r.Mode == 0 {
			return nil, fmt.Errorf("guardrail %q: unsupported mode %s", r.Id, r.Mode)
		}
		if _, ok := gatehousev1.GuardrailDirection_name[int32(r.Direction)]; !ok || r.Direction == 0 {
			return nil, fmt.Errorf("guardrail %q: unsupported direction %s", r.Id, r.Direction)
		}
		rule := &GuardrailRule{ID: r.Id, Name: r.Name, Detector: r.Detector, Mode: r.Mode, Direction: r.Direction}
		switch {
		case r.Detector == gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_CUSTOM_REGEX:
			if r.Pattern == "" || len(r.Pattern) > maxPatternLen {
				return nil, fmt.Errorf("guardrail %q: custom pattern must be 1 to %d bytes", r.Id, maxPatternLen)
			}
			re, err := regexp.Compile(r.Pattern)
			if err != nil {
				return nil, fmt.Errorf("guardrail %q: pattern: %w", r.Id, err)
			}
			rule.Pattern, rule.Regexp = r.Pattern, re
		case r.Pattern != "":
			return nil, fmt.Errorf("guardrail %q: pattern is only for custom_regex rules", r.Id)
		}
		out = append(out, rule)
	}
	return out, nil
}

// Deployment is one place a model is served: a provider and the model id it knows the
// model by.
type Deployment struct {
	// ID is the deployment's id; a model's own provider and upstream model form the
	// deployment whose id is the model's id.
	ID            string
	Provider      *Provider
	UpstreamModel string
	// Weight is the relative share of weighted balancing, at least 1.
	Weight int
	// StateKey identifies the deployment's mutable routing state (breaker, in-flight
	// count, latency): it is stable across snapshots of the org.
	StateKey string
}

// Routing says how a model's deployments are chosen and retried. Zero values mean
// "the gateway's default" and are resolved by the caller, which knows them.
type Routing struct {
	// Strategy is WEIGHTED, LEAST_BUSY or LATENCY; UNSPECIFIED compiles to WEIGHTED.
	Strategy     gatehousev1.RoutingStrategy
	MaxRetries   int
	RetryBackoff time.Duration
	Timeout      time.Duration
	TTFTTimeout  time.Duration
	// StreamIdleTimeout bounds the silence between stream events after the first token.
	StreamIdleTimeout time.Duration
	BreakerFailures   int
	BreakerCooldown   time.Duration
}

// Sanity bounds of routing values: beyond them a setting is a mistake, not a policy.
const (
	maxRetries         = 10
	maxBreakerFailures = 1000
	maxRoutingDuration = 24 * time.Hour
	maxDeployments     = 64
)

func compileRouting(r *gatehousev1.Routing) (Routing, error) {
	out := Routing{Strategy: gatehousev1.RoutingStrategy_ROUTING_STRATEGY_WEIGHTED}
	if r == nil {
		return out, nil
	}
	switch r.Strategy {
	case gatehousev1.RoutingStrategy_ROUTING_STRATEGY_UNSPECIFIED:
	case gatehousev1.RoutingStrategy_ROUTING_STRATEGY_WEIGHTED,
		gatehousev1.RoutingStrategy_ROUTING_STRATEGY_LEAST_BUSY,
		gatehousev1.RoutingStrategy_ROUTING_STRATEGY_LATENCY:
		out.Strategy = r.Strategy
	default:
		return out, fmt.Errorf("unsupported routing strategy %s", r.Strategy)
	}
	if r.MaxRetries > maxRetries {
		return out, fmt.Errorf("routing max_retries %d is over %d", r.MaxRetries, maxRetries)
	}
	if r.BreakerFailures > maxBreakerFailures {
		return out, fmt.Errorf("routing breaker_failures %d is over %d", r.BreakerFailures, maxBreakerFailures)
	}
	out.MaxRetries = int(r.MaxRetries)
	out.BreakerFailures = int(r.BreakerFailures)
	for _, d := range []struct {
		name string
		ms   int64
		dst  *time.Duration
	}{
		{"retry_backoff_ms", r.RetryBackoffMs, &out.RetryBackoff},
		{"timeout_ms", r.TimeoutMs, &out.Timeout},
		{"ttft_timeout_ms", r.TtftTimeoutMs, &out.TTFTTimeout},
		{"breaker_cooldown_ms", r.BreakerCooldownMs, &out.BreakerCooldown},
		{"stream_idle_timeout_ms", r.StreamIdleTimeoutMs, &out.StreamIdleTimeout},
	} {
		if d.ms < 0 || time.Duration(d.ms)*time.Millisecond > maxRoutingDuration {
			return out, fmt.Errorf("routing %s %d must be between 0 and %d", d.name, d.ms, maxRoutingDuration.Milliseconds())
		}
		*d.dst = time.Duration(d.ms) * time.Millisecond
	}
	if out.Timeout > 0 && out.TTFTTimeout > out.Timeout {
		return out, fmt.Errorf("routing ttft_timeout_ms %d exceeds timeout_ms %d", r.TtftTimeoutMs, r.TimeoutMs)
	}
	return out, nil
}

// compileDeployments builds a model's deployments: its own provider and upstream model
// first (under the model's id), then the extra ones.
func compileDeployments(org *Org, providers map[string]*Provider, own *Deployment, extra []*gatehousev1.Deployment) ([]*Deployment, error) {
	if len(extra)+1 > maxDeployments {
		return nil, fmt.Errorf("more than %d deployments", maxDeployments)
	}
	out := make([]*Deployment, 0, len(extra)+1)
	out = append(out, own)
	for _, d := range extra {
		if d.Id == "" {
			return nil, errors.New("deployment with empty id")
		}
		prov, ok := providers[d.ProviderId]
		if !ok {
			return nil, fmt.Errorf("deployment %q: unknown provider %q", d.Id, d.ProviderId)
		}
		if d.UpstreamModel == "" {
			return nil, fmt.Errorf("deployment %q: upstream_model is required", d.Id)
		}
		if d.Weight > 1_000_000 {
			return nil, fmt.Errorf("deployment %q: weight %d is over 1000000", d.Id, d.Weight)
		}
		out = append(out, &Deployment{
			ID: d.Id, Provider: prov, UpstreamModel: d.UpstreamModel,
			Weight: max(int(d.Weight), 1), StateKey: org.ID + "/" + d.Id,
		})
	}
	return out, nil
}

// compileFallbacks resolves every model's fallback names once all models are known,
// rejects unknown names and cycles, and flattens each model's chain: its fallbacks in
// order, each followed by its own chain, every model at most once. Fallbacks offered
// only in other regions are valid but skipped here.
func compileFallbacks(org *Org, snap []*gatehousev1.Model) error {
	direct := make(map[string][]*Model, len(snap))
	for _, m := range snap {
		if len(m.Fallbacks) == 0 {
			continue
		}
		seen := make(map[string]struct{}, len(m.Fallbacks))
		for _, name := range m.Fallbacks {
			if name == m.Name {
				return fmt.Errorf("model %q: falls back to itself", m.Id)
			}
			if _, dup := seen[name]; dup {
				return fmt.Errorf("model %q: duplicate fallback %q", m.Id, name)
			}
			seen[name] = struct{}{}
			fb, here := org.models[name]
			_, elsewhere := org.otherRegions[name]
			switch {
			case here:
				direct[m.Name] = append(direct[m.Name], fb)
			case !elsewhere:
				return fmt.Errorf("model %q: fallback names unknown model %q", m.Id, name)
			}
		}
	}
	// Reject cycles with a depth-first search over the in-region graph.
	const (
		visiting = 1
		done     = 2
	)
	state := make(map[string]int, len(direct))
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		switch state[name] {
		case visiting:
			i := slices.Index(path, name)
			return fmt.Errorf("fallback cycle %v", append(slices.Clone(path[i:]), name))
		case done:
			return nil
		}
		state[name] = visiting
		for _, fb := range direct[name] {
			if err := visit(fb.Name, append(path, name)); err != nil {
				return err
			}
		}
		state[name] = done
		return nil
	}
	for _, m := range org.modelList {
		if err := visit(m.Name, nil); err != nil {
			return err
		}
	}
	for _, m := range org.modelList {
		seen := map[string]struct{}{m.Name: {}}
		var chain []*Model
		var walk func(name string)
		walk = func(name string) {
			for _, fb := range direct[name] {
				if _, ok := seen[fb.Name]; ok {
					continue
				}
				seen[fb.Name] = struct{}{}
				chain = append(chain, fb)
				walk(fb.Name)
			}
		}
		walk(m.Name)
		m.Fallbacks = chain
		m.alone = []*Model{m}
	}
	return nil
}
