package limit

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	refusedVec *prometheus.CounterVec
	// known holds refusedVec's counters for the config's scopes and kinds, resolved
	// once so that refusing (the path under abuse) does not hash label values.
	known   [3][3]prometheus.Counter
	evicted prometheus.Counter
}

var (
	knownScopes = [3]Scope{ScopeKey, ScopeTeam, ScopeModel}
	knownKinds  = [3]Kind{RPM, TPM, Concurrency}
)

func (m *metrics) init(reg prometheus.Registerer, states func() int) error {
	m.refusedVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_gateway_ratelimit_refused_total",
		Help: "Requests refused by rate limits, by level (key, team, model) and limit (rpm, tpm, concurrency).",
	}, []string{"scope", "limit"})
	for i, s := range knownScopes {
		for j, k := range knownKinds {
			m.known[i][j] = m.refusedVec.WithLabelValues(string(s), string(k))
		}
	}
	m.evicted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gatehouse_gateway_ratelimit_states_evicted_total",
		Help: "Idle rate limit states forgotten.",
	})
	if reg == nil {
		return nil
	}
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gatehouse_gateway_ratelimit_states",
		Help: "Rate limit states held (one per limited key, team and model seen recently).",
	}, func() float64 { return float64(states()) })
	for _, c := range []prometheus.Collector{m.refusedVec, m.evicted, held} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}

func (m *metrics) refused(s Scope, k Kind) {
	for i := range knownScopes {
		if knownScopes[i] != s {
			continue
		}
		for j := range knownKinds {
			if knownKinds[j] == k {
				m.known[i][j].Inc()
				return
			}
		}
	}
	m.refusedVec.WithLabelValues(string(s), string(k)).Inc()
}
