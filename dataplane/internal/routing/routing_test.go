package routing

import (
	"strings"
	"sync"
	"testing"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

const (
	weighted   = gatehousev1.RoutingStrategy_ROUTING_STRATEGY_WEIGHTED
	leastBusy  = gatehousev1.RoutingStrategy_ROUTING_STRATEGY_LEAST_BUSY
	byLatency  = gatehousev1.RoutingStrategy_ROUTING_STRATEGY_LATENCY
	noBreakers = 0
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newRouter(t *testing.T) (*Router, *clock) {
	t.Helper()
	clk := &clock{now: time.Unix(1000, 0)}
	r, err := New(Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return r, clk
}

func newModel(weights ...int) *runtime.Model {
	m := &runtime.Model{ID: "m", Name: "m"}
	for i, w := range weights {
		id := string(rune('a' + i))
		m.Deployments = append(m.Deployments, &runtime.Deployment{ID: id, Weight: w, StateKey: "org/" + id})
	}
	return m
}

func TestSmoothWeightedRoundRobin(t *testing.T) {
	t.Parallel()
	r, _ := newRouter(t)
	m := newModel(3, 1, 1)
	var got strings.Builder
	for range 10 {
		d, lease := r.Pick(m, weighted, Breaker{}, nil, nil)
		got.WriteString(d.ID)
		lease.Done(Success, 0)
	}
	// Smooth: the heavy deployment's turns are spread out, never all in a row.
	if diff := cmp.Diff("abacaabaca", got.String()); diff != "" {
		t.Errorf("sequence (-want +got):\n%s", diff)
	}
}

func TestPickPrefersUntriedAndSkipsExcluded(t *testing.T) {
	t.Parallel()
	r, _ := newRouter(t)
	m := newModel(100, 1)
	a, b := m.Deployments[0], m.Deployments[1]
	d, lease := r.Pick(m, weighted, Breaker{}, []*runtime.Deployment{a}, nil)
	if d != b {
		t.Fatalf("retry picked %s, want the untried b", d.ID)
	}
	lease.Done(Neutral, 0)
	d, lease = r.Pick(m, weighted, Breaker{}, []*runtime.Deployment{a, b}, nil)
	if d == nil {
		t.Fatal("every deployment tried: a tried one must still be chosen")
	}
	lease.Done(Neutral, 0)
	if d, _ := r.Pick(m, weighted, Breaker{}, nil, []*runtime.Deployment{a, b}); d != nil {
		t.Fatalf("picked excluded %s", d.ID)
	}
	single := newModel(1)
	if d, _ := r.Pick(single, weighted, Breaker{}, nil, single.Deployments); d != nil {
		t.Fatal("picked the excluded only deployment")
	}
}

func TestLeastBusy(t *testing.T) {
	t.Parallel()
	r, _ := newRouter(t)
	m := newModel(1, 1, 1)
	held := map[string]Lease{}
	for range 3 {
		d, lease := r.Pick(m, leastBusy, Breaker{}, nil, nil)
		if _, dup := held[d.ID]; dup {
			t.Fatalf("%s picked while busy and others idle", d.ID)
		}
		held[d.ID] = lease
	}
	held["b"].Done(Success, 0)
	if d, lease := r.Pick(m, leastBusy, Breaker{}, nil, nil); d.ID != "b" {
		t.Errorf("picked %s, want the idle b", d.ID)
	} else {
		lease.Done(Success, 0)
	}
	if st := r.Snapshot("org/a"); st.InFlight != 1 {
		t.Errorf("a in flight = %d", st.InFlight)
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()
	r, _ := newRouter(t)
	m := newModel(1, 1, 1)
	latency := map[string]time.Duration{"a": 300 * time.Millisecond, "b": 20 * time.Millisecond, "c": 90 * time.Millisecond}
	// Unmeasured deployments come first, so each gets measured.
	seen := map[string]bool{}
	for range 3 {
		d, lease := r.Pick(m, byLatency, Breaker{}, nil, nil)
		seen[d.ID] = true
		lease.Done(Success, latency[d.ID])
	}
	if len(seen) != 3 {
		t.Fatalf("measured %v", seen)
	}
	for range 5 {
		d, lease := r.Pick(m, byLatency, Breaker{}, nil, nil)
		if d.ID != "b" {
			t.Fatalf("picked %s, want the fastest b", d.ID)
		}
		lease.Done(Success, latency[d.ID])
	}
	// b slows down: the moving average follows and c takes over.
	for range 10 {
		d, lease := r.Pick(m, byLatency, Breaker{}, nil, nil)
		if d.ID == "c" {
			lease.Done(Success, latency["c"])
			return
		}
		lease.Done(Success, time.Second)
	}
	t.Error("c never took over from the slowed-down b")
}

func TestBreaker(t *testing.T) {
	t.Parallel()
	r, clk := newRouter(t)
	m := newModel(1)
	b := Breaker{Failures: 3, Cooldown: 10 * time.Second}
	fail := func() {
		t.Helper()
		d, lease := r.Pick(m, weighted, b, nil, nil)
		if d == nil {
			t.Fatal("breaker open too early")
		}
		lease.Done(Failure, 0)
	}
	fail()
	fail()
	// A success resets the count of consecutive failures.
	_, lease := r.Pick(m, weighted, b, nil, nil)
	lease.Done(Success, time.Millisecond)
	fail()
	fail()
	fail()
	if st := r.Snapshot("org/a"); !st.Open || st.Failures != 3 {
		t.Fatalf("state = %+v, want open", st)
	}
	if d, _ := r.Pick(m, weighted, b, nil, nil); d != nil {
		t.Fatal("open breaker let an attempt through")
	}
	clk.advance(10 * time.Second)
	// Half-open: one probe at a time.
	probe, probeLease := r.Pick(m, weighted, b, nil, nil)
	if probe == nil {
		t.Fatal("no probe after the cooldown")
	}
	if d, _ := r.Pick(m, weighted, b, nil, nil); d != nil {
		t.Fatal("a second probe went through")
	}
	probeLease.Done(Failure, 0)
	if st := r.Snapshot("org/a"); !st.Open {
		t.Fatalf("failed probe left state %+v, want open again", st)
	}
	clk.advance(10 * time.Second)
	probe, probeLease = r.Pick(m, weighted, b, nil, nil)
	if probe == nil {
		t.Fatal("no probe after the second cooldown")
	}
	probeLease.Done(Success, time.Millisecond)
	if st := r.Snapshot("org/a"); st.Open || st.HalfOpen || st.Failures != 0 {
		t.Fatalf("state after a good probe = %+v, want closed", st)
	}
	// Neutral outcomes (429s) never open it.
	for range 10 {
		d, lease := r.Pick(m, weighted, b, nil, nil)
		if d == nil {
			t.Fatal("neutral outcomes opened the breaker")
		}
		lease.Done(Neutral, 0)
	}
}

func TestBreakerRoutesAroundOpenDeployment(t *testing.T) {
	t.Parallel()
	r, _ := newRouter(t)
	m := newModel(1, 1)
	b := Breaker{Failures: 1, Cooldown: time.Minute}
	for {
		d, lease := r.Pick(m, weighted, b, nil, nil)
		if d.ID == "a" {
			lease.Done(Failure, 0)
			break
		}
		lease.Done(Success, 0)
	}
	for range 5 {
		d, lease := r.Pick(m, weighted, b, nil, nil)
		if d == nil || d.ID != "b" {
			t.Fatalf("picked %v, want b while a is open", d)
		}
		lease.Done(Success, 0)
	}
}

func TestStateSurvivesNewModelObjects(t *testing.T) {
	t.Parallel()
	r, _ := newRouter(t)
	b := Breaker{Failures: 1, Cooldown: time.Minute}
	d, lease := r.Pick(newModel(1), weighted, b, nil, nil)
	lease.Done(Failure, 0)
	// A config swap compiles new objects with the same state keys.
	if d2, _ := r.Pick(newModel(1), weighted, b, nil, nil); d2 != nil {
		t.Fatalf("breaker of %s forgotten across a swap", d.ID)
	}
	r.Retain(func(key string) bool { return false })
	if d2, lease := r.Pick(newModel(1), weighted, b, nil, nil); d2 == nil {
		t.Fatal("state of a removed deployment kept")
	} else {
		lease.Done(Success, 0)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	r, err := New(Config{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	_, lease := r.Pick(newModel(1), weighted, Breaker{Failures: 1, Cooldown: time.Minute}, nil, nil)
	lease.Done(Failure, 0)
	want := `
# HELP gatehouse_gateway_deployment_breaker_state Circuit breaker of a deployment: 0 closed, 1 half-open, 2 open.
# TYPE gatehouse_gateway_deployment_breaker_state gauge
gatehouse_gateway_deployment_breaker_state{deployment="org/a"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "gatehouse_gateway_deployment_breaker_state"); err != nil {
		t.Error(err)
	}
}

var _ = noBreakers
