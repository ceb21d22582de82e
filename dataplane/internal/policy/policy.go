// Package policy plugs the limit and guardrail packages into the gateway's request
// pipeline (httpapi's Admitter and Guard hooks): it builds the limit checks of a
// request (key, team, model), turns refusals into 429 answers that name the limit that
// was hit, and compiles each team's guardrail rules once per config swap. It holds no
// limits or detectors of its own.
package policy

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/guardrail"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/httpapi"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/limit"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/llm"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

// Limits admits requests with a limit.Limiter.
type Limits struct {
	lim *limit.Limiter
	now func() time.Time
}

// NewLimits returns the Admitter over lim.
func NewLimits(lim *limit.Limiter) *Limits { return &Limits{lim: lim, now: time.Now} }

func conv(l runtime.Limits) limit.Limits {
	return limit.Limits{RPM: l.RPM, TPM: l.TPM, MaxConcurrent: l.MaxConcurrent}
}

// Admit implements httpapi.Admitter.
func (l *Limits) Admit(_ context.Context, a httpapi.Admission) (httpapi.Ticket, error) {
	checks := make([]limit.Check, 0, 3)
	if !a.Key.Limits.IsZero() {
		checks = append(checks, limit.Check{Scope: limit.ScopeKey, ID: a.Key.ID, Limits: conv(a.Key.Limits)})
	}
	if !a.Key.Team.Limits.IsZero() {
		checks = append(checks, limit.Check{Scope: limit.ScopeTeam, ID: a.Key.Team.ID, Limits: conv(a.Key.Team.Limits)})
	}
	modelCheck := -1
	if a.Model != nil && !a.Model.Limits.IsZero() {
		modelCheck = len(checks)
		checks = append(checks, limit.Check{Scope: limit.ScopeModel, ID: modelLimitID(a.Key.Org.ID, a.Model), Limits: conv(a.Model.Limits)})
	}
	if len(checks) == 0 && !limitedFallback(a.Model) {
		return nil, nil
	}
	t := &ticket{l: l, org: a.Key.Org.ID, est: a.EstimatedTokens, modelCheck: modelCheck}
	if len(checks) == 0 {
		return t, nil
	}
	tk, d := l.lim.Admit(l.now(), checks, a.EstimatedTokens)
	if !d.Allowed {
		return nil, refused(d)
	}
	t.tk, t.h = tk, http.Header{}
	d.WriteHeaders(t.h)
	return t, nil
}

// refused is the 429 of a refusal, with its RateLimit-* and Retry-After headers.
func refused(d limit.Decision) *llm.Refusal {
	h := http.Header{}
	d.WriteHeaders(h)
	return &llm.Refusal{Status: http.StatusTooManyRequests, Code: "rate_limit_exceeded", Header: h, Message: refusal(d)}
}

// modelLimitID is the limit state id of a model: by its registry id, which a rename
// keeps (its name when a hand-built model has none).
func modelLimitID(org string, m *runtime.Model) string {
	if m.ID != "" {
		return limit.ModelID(org, m.ID)
	}
	return limit.ModelID(org, m.Name)
}

// limitedFallback reports whether a fallback of m has limits of its own.
func limitedFallback(m *runtime.Model) bool {
	if m == nil {
		return false
	}
	for _, fb := range m.Fallbacks {
		if !fb.Limits.IsZero() {
			return true
		}
	}
	return false
}

// refusal says which limit was hit, at which level, and when to retry.
func refusal(d limit.Decision) string {
	what := map[limit.Kind]string{limit.RPM: "requests per minute", limit.TPM: "tokens per minute", limit.Concurrency: "concurrent requests"}[d.Limit]
	secs := int((d.RetryAfter + time.Second - 1) / time.Second)
	return fmt.Sprintf("Rate limit reached: the %s limit of %d %s. Retry in %d s.", d.Scope, d.Quota, what, max(secs, 1))
}

// ticket is a request's claim on its key's, team's and model's levels (tk), and on
// the levels of the fallback model it moved on to (fb).
type ticket struct {
	l   *Limits
	org string
	est int64
	tk  *limit.Ticket
	h   http.Header
	// modelCheck is the index of the asked model's level in tk's checks, -1 once the
	// request left it for a fallback (or when it has no limits).
	modelCheck int
	fb         *limit.Ticket
	// settled guards against a double settle from the pipeline.
	settled atomic.Bool
}

func (t *ticket) Header() http.Header { return t.h }

// Settle charges what was really used and frees the concurrency slots.
func (t *ticket) Settle(u llm.Usage) {
	if t.settled.Swap(true) {
		return
	}
	used := u.PromptTokens + u.CompletionTokens
	t.tk.Settle(used)
	t.tk.Release()
	t.fb.Settle(used)
	t.fb.Release()
}

// Fallback implements httpapi.Ticket: the model tried before is given back, m's
// limits are admitted.
func (t *ticket) Fallback(m *runtime.Model) error {
	if t.modelCheck >= 0 {
		t.tk.Leave(t.modelCheck)
		t.modelCheck = -1
	}
	if t.fb != nil {
		t.fb.Settle(0) // the previous fallback answered nothing
		t.fb.Release()
		t.fb = nil
	}
	if m.Limits.IsZero() {
		return nil
	}
	checks := []limit.Check{{Scope: limit.ScopeModel, ID: modelLimitID(t.org, m), Limits: conv(m.Limits)}}
	tk, d := t.l.lim.Admit(t.l.now(), checks, t.est)
	if !d.Allowed {
		return refused(d)
	}
	t.fb = tk
	return nil
}

// Guardrails applies each team's guardrail rules.
type Guardrails struct {
	mu       sync.Mutex
	policies map[*runtime.Team]*guardrail.Policy
}

// NewGuardrails returns the Guard.
func NewGuardrails() *Guardrails { return &Guardrails{policies: map[*runtime.Team]*guardrail.Policy{}} }

// policy returns the compiled policy of a team. Teams are immutable and replaced on
// every config swap, so the cache is keyed by pointer and reset when it grows past
// the number of teams a gateway plausibly serves.
func (g *Guardrails) policy(t *runtime.Team) *guardrail.Policy {
	if len(t.Guardrails) == 0 {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if p, ok := g.policies[t]; ok {
		return p
	}
	if len(g.policies) > 10000 {
		g.policies = map[*runtime.Team]*guardrail.Policy{}
	}
	rules := make([]*gatehousev1.GuardrailRule, len(t.Guardrails))
	for i, r := range t.Guardrails {
		rules[i] = &gatehousev1.GuardrailRule{Id: r.ID, Name: r.Name, Detector: r.Detector, Mode: r.Mode, Direction: r.Direction, Pattern: r.Pattern}
	}
	// The runtime validated the rules already; a policy that still fails to compile
	// fails closed for this team.
	p, err := guardrail.Compile(rules)
	if err != nil {
		g.policies[t] = failClosed
		return failClosed
	}
	g.policies[t] = p
	return p
}

// failClosed blocks every request of a team whose rules could not be compiled.
var failClosed = mustFailClosed()

func mustFailClosed() *guardrail.Policy {
	p, err := guardrail.Compile([]*gatehousev1.GuardrailRule{{Id: "invalid-guardrails", Name: "invalid guardrail configuration",
		Detector: gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_CUSTOM_REGEX, Mode: gatehousev1.GuardrailMode_GUARDRAIL_MODE_BLOCK,
		Direction: gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_REQUEST, Pattern: `[\s\S]`}})
	if err != nil {
		panic(err) // a fixed, valid rule
	}
	return p
}

var contentBlocked = "content_blocked"

// requestText is where request rules match, as events record it: the request check
// does not tell which of the request's texts (messages, documents, tool outputs) a
// match was in.
const requestText = "request"

// Request implements httpapi.Guard.
func (g *Guardrails) Request(_ context.Context, in httpapi.GuardInput) ([]byte, []*gatehousev1.GuardrailEvent, error) {
	p := g.policy(in.Key.Team)
	if !p.HasRequestRules() {
		return in.Body, nil, nil
	}
	out, err := p.CheckRequestJSON(in.Body)
	if err != nil {
		return in.Body, nil, nil // not a JSON object: the parser answers that
	}
	for _, e := range out.Events {
		e.Texts = []string{requestText}
	}
	if out.Blocked != nil {
		return nil, out.Events, &llm.Refusal{Status: http.StatusBadRequest, Code: contentBlocked, Message: out.Blocked.Error()}
	}
	return out.Body, out.Events, nil
}

// Response implements httpapi.Guard.
func (g *Guardrails) Response(_ context.Context, in httpapi.GuardInput) httpapi.ResponseGuard {
	p := g.policy(in.Key.Team)
	if !p.HasResponseRules() {
		return nil
	}
	if in.Text == llm.TextToolArguments {
		return &responseGuard{f: p.NewArgumentsFilter(), text: in.Text.String()}
	}
	// Content, reasoning and refusals: the same rules, each text on its own.
	return &responseGuard{f: p.NewStreamFilter(), text: in.Text.String()}
}

type responseGuard struct {
	f *guardrail.StreamFilter
	// text is where the filter's matches are, recorded on its events.
	text string
}

func (r *responseGuard) Filter(delta string) (string, error) {
	out, blocked := r.f.Write(delta)
	if blocked {
		return "", &llm.Refusal{Status: http.StatusBadRequest, Code: contentBlocked, Message: r.f.Blocked().Error()}
	}
	return out, nil
}

func (r *responseGuard) Flush() (string, error) {
	out, blocked := r.f.Flush()
	if blocked {
		return "", &llm.Refusal{Status: http.StatusBadRequest, Code: contentBlocked, Message: r.f.Blocked().Error()}
	}
	return out, nil
}

func (r *responseGuard) Events() []*gatehousev1.GuardrailEvent {
	evs := r.f.Events()
	for _, e := range evs {
		e.Texts = []string{r.text}
	}
	return evs
}
