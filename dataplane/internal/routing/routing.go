// Package routing chooses which deployment of a model serves an upstream attempt and
// keeps the mutable state that choice needs: a circuit breaker, an in-flight count and
// a latency average (EWMA) per deployment, and smooth weighted round robin positions
// per model. The state lives outside the immutable runtime, keyed by the deployments'
// stable state keys, so it survives config swaps. It does no I/O: the llm package
// makes the attempts and reports their outcomes here.
package routing

import (
	"sync"
	"sync/atomic"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// Breaker configures a deployment's circuit breaker: Failures consecutive failures
// open it for Cooldown; then one probe is let through (half-open), whose outcome closes
// or reopens it.
type Breaker struct {
	Failures int
	Cooldown time.Duration
}

// Outcome is what an attempt on a deployment says about its health.
type Outcome uint8

const (
	// Success closes the breaker and feeds the latency average.
	Success Outcome = iota
	// Failure counts towards opening the breaker (5xx, connection errors, timeouts,
	// refused credentials).
	Failure
	// Neutral says nothing about health (429, a caller's bad request).
	Neutral
)

type breakerState uint8

const (
	closed breakerState = iota
	halfOpen
	open
)

// ewmaAlpha weighs the newest latency sample.
const ewmaAlpha = 0.3

type deployment struct {
	inFlight atomic.Int64

	mu        sync.Mutex
	state     breakerState
	failures  int
	openUntil time.Time
	probing   bool
	ewma      float64 // seconds
	samples   int64
}

// available reports whether the breaker lets an attempt through now, without taking
// the half-open probe slot.
func (d *deployment) available(now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.state {
	case open:
		return !now.Before(d.openUntil) && !d.probing
	case halfOpen:
		return !d.probing
	}
	return true
}

// take claims the attempt: an open breaker past its cooldown turns half-open and its
// one probe slot is taken. It fails when another request took the slot first.
func (d *deployment) take(now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.state {
	case open:
		if now.Before(d.openUntil) || d.probing {
			return false
		}
		d.state, d.probing = halfOpen, true
	case halfOpen:
		if d.probing {
			return false
		}
		d.probing = true
	}
	return true
}

func (d *deployment) latency() (float64, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ewma, d.samples > 0
}

type model struct {
	mu      sync.Mutex
	current map[string]int
}

// Router holds the routing state of every deployment the gateway has used.
type Router struct {
	now    func() time.Time
	deps   sync.Map // state key → *deployment
	models sync.Map // model state key → *model
}

// Config configures a Router.
type Config struct {
	// Now is the clock (default time.Now).
	Now        func() time.Time
	Registerer prometheus.Registerer
}

// New returns a Router and registers its breaker, in-flight and latency gauges.
func New(cfg Config) (*Router, error) {
	r := &Router{now: cfg.Now}
	if r.now == nil {
		r.now = time.Now
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(&collector{r: r}); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *Router) state(d *runtime.Deployment) *deployment {
	if v, ok := r.deps.Load(d.StateKey); ok {
		return v.(*deployment)
	}
	v, _ := r.deps.LoadOrStore(d.StateKey, &deployment{})
	return v.(*deployment)
}

// Lease is an attempt on a deployment, counted in flight until Done.
type Lease struct {
	r  *Router
	st *deployment
	b  Breaker
}

// Done reports the attempt's outcome and its latency (0 when unknown). It must be
// called exactly once per lease.
func (l Lease) Done(o Outcome, latency time.Duration) {
	st := l.st
	st.inFlight.Add(-1)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.probing = false
	switch o {
	case Success:
		st.state, st.failures = closed, 0
		if latency > 0 {
			x := latency.Seconds()
			if st.samples == 0 {
				st.ewma = x
			} else {
				st.ewma = ewmaAlpha*x + (1-ewmaAlpha)*st.ewma
			}
			st.samples++
		}
	case Failure:
		st.failures++
		if st.state == halfOpen || (l.b.Failures > 0 && st.failures >= l.b.Failures) {
			st.state, st.openUntil = open, l.r.now().Add(l.b.Cooldown)
		}
	}
}

// Pick chooses the deployment of m for the next attempt under strategy, or nil when
// every deployment is excluded or behind an open breaker. Deployments in tried are
// chosen only when no other is available (a retry prefers another deployment).
// The caller must call the lease's Done exactly once with the attempt's outcome.
func (r *Router) Pick(m *runtime.Model, strategy gatehousev1.RoutingStrategy, b Breaker, tried, excluded []*runtime.Deployment) (*runtime.Deployment, Lease) {
	now := r.now()
	deps := m.Deployments
	if len(deps) == 1 {
		// The common case: no choice to make, only the breaker to ask.
		d := deps[0]
		if contains(excluded, d) {
			return nil, Lease{}
		}
		st := r.state(d)
		if !st.take(now) {
			return nil, Lease{}
		}
		return d, r.lease(st, b)
	}
	for range len(deps) {
		cands := make([]*runtime.Deployment, 0, len(deps))
		states := make([]*deployment, 0, len(deps))
		for pass := 0; pass < 2 && len(cands) == 0; pass++ {
			for _, d := range deps {
				if contains(excluded, d) || (pass == 0 && contains(tried, d)) {
					continue
				}
				st := r.state(d)
				if st.available(now) {
					cands, states = append(cands, d), append(states, st)
				}
			}
		}
		if len(cands) == 0 {
			return nil, Lease{}
		}
		cands, states = narrow(strategy, cands, states)
		i := r.weighted(m, cands)
		if states[i].take(now) {
			return cands[i], r.lease(states[i], b)
		}
		// Another request took the half-open probe slot in between: choose again.
		excluded = append(excluded, cands[i])
	}
	return nil, Lease{}
}

// narrow keeps the least busy or the fastest deployments; ties are broken by weight.
func narrow(strategy gatehousev1.RoutingStrategy, cands []*runtime.Deployment, states []*deployment) ([]*runtime.Deployment, []*deployment) {
	if len(cands) < 2 {
		return cands, states
	}
	var score func(st *deployment) float64
	switch strategy {
	case gatehousev1.RoutingStrategy_ROUTING_STRATEGY_LEAST_BUSY:
		score = func(st *deployment) float64 { return float64(st.inFlight.Load()) }
	case gatehousev1.RoutingStrategy_ROUTING_STRATEGY_LATENCY:
		// Deployments without a sample score 0, so each gets measured.
		score = func(st *deployment) float64 { l, _ := st.latency(); return l }
	default:
		return cands, states
	}
	best := score(states[0])
	scores := make([]float64, len(states))
	for i, st := range states {
		scores[i] = score(st)
		best = min(best, scores[i])
	}
	var outC []*runtime.Deployment
	var outS []*deployment
	for i := range cands {
		if scores[i] == best {
			outC, outS = append(outC, cands[i]), append(outS, states[i])
		}
	}
	return outC, outS
}

// weighted runs one step of smooth weighted round robin over cands for m.
func (r *Router) weighted(m *runtime.Model, cands []*runtime.Deployment) int {
	if len(cands) == 1 {
		return 0
	}
	key := m.Deployments[0].StateKey
	v, ok := r.models.Load(key)
	if !ok {
		v, _ = r.models.LoadOrStore(key, &model{current: map[string]int{}})
	}
	mm := v.(*model)
	mm.mu.Lock()
	defer mm.mu.Unlock()
	total, best := 0, -1
	for i, d := range cands {
		total += d.Weight
		mm.current[d.StateKey] += d.Weight
		if best < 0 || mm.current[d.StateKey] > mm.current[cands[best].StateKey] {
			best = i
		}
	}
	mm.current[cands[best].StateKey] -= total
	return best
}

func (r *Router) lease(st *deployment, b Breaker) Lease {
	st.inFlight.Add(1)
	return Lease{r: r, st: st, b: b}
}

// State describes one deployment's routing state, for tests and metrics.
type State struct {
	Open, HalfOpen bool
	Failures       int
	InFlight       int64
	Latency        time.Duration
}

// Snapshot returns the state of the deployment with that state key.
func (r *Router) Snapshot(stateKey string) State {
	v, ok := r.deps.Load(stateKey)
	if !ok {
		return State{}
	}
	st := v.(*deployment)
	st.mu.Lock()
	defer st.mu.Unlock()
	return State{Open: st.state == open, HalfOpen: st.state == halfOpen, Failures: st.failures,
		InFlight: st.inFlight.Load(), Latency: time.Duration(st.ewma * float64(time.Second))}
}

// Retain forgets the state of deployments for which keep returns false (deployments
// that left the config), so the state does not grow without bound.
func (r *Router) Retain(keep func(stateKey string) bool) {
	r.deps.Range(func(k, v any) bool {
		if !keep(k.(string)) && v.(*deployment).inFlight.Load() == 0 {
			r.deps.Delete(k)
		}
		return true
	})
	r.models.Range(func(k, _ any) bool {
		if !keep(k.(string)) {
			r.models.Delete(k)
		}
		return true
	})
}

func contains(list []*runtime.Deployment, d *runtime.Deployment) bool {
	for _, x := range list {
		if x == d || x.StateKey == d.StateKey {
			return true
		}
	}
	return false
}

// collector exports the per-deployment state as gauges.
type collector struct{ r *Router }

var (
	breakerDesc = prometheus.NewDesc("gatehouse_gateway_deployment_breaker_state",
		"Circuit breaker of a deployment: 0 closed, 1 half-open, 2 open.", []string{"deployment"}, nil)
	inFlightDesc = prometheus.NewDesc("gatehouse_gateway_deployment_in_flight",
		"Upstream attempts in flight per deployment.", []string{"deployment"}, nil)
	latencyDesc = prometheus.NewDesc("gatehouse_gateway_deployment_latency_ewma_seconds",
		"Moving average of a deployment's upstream latency (time to first token when streaming).", []string{"deployment"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- breakerDesc
	ch <- inFlightDesc
	ch <- latencyDesc
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.r.deps.Range(func(k, v any) bool {
		st := v.(*deployment)
		st.mu.Lock()
		state, ewma := st.state, st.ewma
		st.mu.Unlock()
		key := k.(string)
		ch <- prometheus.MustNewConstMetric(breakerDesc, prometheus.GaugeValue, float64(state), key)
		ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(st.inFlight.Load()), key)
		ch <- prometheus.MustNewConstMetric(latencyDesc, prometheus.GaugeValue, ewma, key)
		return true
	})
}
