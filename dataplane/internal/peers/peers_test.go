package peers

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/fakecp"
)

// clock is a test clock that moves only when told.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func connect(t *testing.T, cp *fakecp.CP) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(cp.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// beat publishes one heartbeat of id in region and waits until the server has it.
func beat(t *testing.T, nc *nats.Conn, region, id string) {
	t.Helper()
	data, err := proto.Marshal(&gatehousev1.GatewayStatus{GatewayId: id, Region: region, Ready: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(wire.StatusSubject(region, id), data); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

type tracked struct {
	*Tracker
	mu      sync.Mutex
	changes []int
}

func (tr *tracked) Changes() []int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.changes)
}

// start runs a tracker for gw-1 in region eu until the test ends.
func start(t *testing.T, nc *nats.Conn, interval time.Duration, now func() time.Time) *tracked {
	t.Helper()
	tr := &tracked{}
	var err error
	tr.Tracker, err = New(Options{
		Conn: nc, Region: "eu", Self: "gw-1", Interval: interval, Now: now,
		Registerer: prometheus.NewRegistry(),
		OnChange: func(n int) {
			tr.mu.Lock()
			tr.changes = append(tr.changes, n)
			tr.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The subscription is on the server once our connection has round-tripped.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := tr.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return tr
}

// heard waits until the tracker has taken in n heartbeats of other gateways in all.
func heard(t *testing.T, tr *tracked, n int) {
	t.Helper()
	fakecp.Eventually(t, 5*time.Second, func() error {
		if got := int(testutil.ToFloat64(tr.heartbeats)); got < n {
			return fmt.Errorf("heard %d heartbeats, want %d", got, n)
		}
		return nil
	})
}

func wantCount(t *testing.T, tr *tracked, n int) {
	t.Helper()
	if got := tr.Count(); got != n {
		t.Fatalf("Count = %d, want %d", got, n)
	}
}

// TestCount: three gateways heartbeat, one stops, and the count drops once it has
// been silent for three intervals — not before.
func TestCount(t *testing.T) {
	t.Parallel()
	cp := fakecp.Start(t)
	var clk clock
	nc := connect(t, cp)
	tr := start(t, nc, 5*time.Second, clk.Now)
	pubs := map[string]*nats.Conn{"gw-1": connect(t, cp), "gw-2": connect(t, cp), "gw-3": connect(t, cp)}
	wantCount(t, tr, 1)

	for id, pc := range pubs {
		beat(t, pc, "eu", id)
	}
	total := 2 // gw-1 is this gateway: its own heartbeats do not count
	heard(t, tr, total)
	wantCount(t, tr, 3)
	// gw-3 stops; the others beat every 5s.
	for step := 1; step <= 4; step++ {
		clk.Advance(5 * time.Second)
		beat(t, pubs["gw-1"], "eu", "gw-1")
		beat(t, pubs["gw-2"], "eu", "gw-2")
		total++
		heard(t, tr, total)
		tr.Sweep()
		want := 3
		if step == 4 { // silent for 20s > 15s
			want = 2
		}
		wantCount(t, tr, want)
	}
	if diff := cmp.Diff([]int{2, 3, 2}, tr.Changes()); diff != "" {
		t.Errorf("OnChange calls (-want +got):\n%s", diff)
	}
	// It comes back.
	beat(t, pubs["gw-3"], "eu", "gw-3")
	heard(t, tr, total+1)
	wantCount(t, tr, 3)
}

// TestCountRealTime runs publishers and the tracker's own sweeps on the real clock.
func TestCountRealTime(t *testing.T) {
	t.Parallel()
	cp := fakecp.Start(t)
	const interval = 50 * time.Millisecond
	tr := start(t, connect(t, cp), interval, nil)
	stops := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	for _, id := range []string{"gw-1", "gw-2", "gw-3"} {
		nc := connect(t, cp)
		ctx, cancel := context.WithCancel(context.Background())
		stops[id] = cancel
		wg.Go(func() {
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				beat(t, nc, "eu", id)
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		})
	}
	t.Cleanup(func() {
		for _, stop := range stops {
			stop()
		}
		wg.Wait()
	})
	count := func(n int) func() error {
		return func() error {
			if got := tr.Count(); got != n {
				return fmt.Errorf("count %d, want %d", got, n)
			}
			return nil
		}
	}
	fakecp.Eventually(t, 5*time.Second, count(3))
	stopped := time.Now()
	stops["gw-3"]()
	fakecp.Eventually(t, 5*time.Second, count(2))
	if d := time.Since(stopped); d < ExpiryIntervals*interval-interval {
		t.Errorf("gw-3 expired %v after its last heartbeat, before the %v timeout", d, ExpiryIntervals*interval)
	}
}

// TestDisconnectFreezes: while this gateway is cut off, silence proves nothing, so
// nobody expires, until the connection has been back for three intervals.
func TestDisconnectFreezes(t *testing.T) {
	t.Parallel()
	cp := fakecp.Start(t)
	var clk clock
	nc := connect(t, cp)
	tr := start(t, nc, 5*time.Second, clk.Now)
	pub := connect(t, cp)
	beat(t, pub, "eu", "gw-2")
	beat(t, pub, "eu", "gw-3")
	heard(t, tr, 2)
	wantCount(t, tr, 3)
	cp.Stop()
	fakecp.Eventually(t, 5*time.Second, func() error {
		if nc.IsConnected() {
			return fmt.Errorf("still connected")
		}
		return nil
	})
	clk.Advance(time.Minute)
	tr.Sweep()
	wantCount(t, tr, 3)

	cp.Restart()
	fakecp.Eventually(t, 10*time.Second, func() error {
		if !nc.IsConnected() {
			return fmt.Errorf("not reconnected")
		}
		return nil
	})
	tr.Sweep() // notices the reconnect
	clk.Advance(15 * time.Second)
	tr.Sweep()
	wantCount(t, tr, 3)
	clk.Advance(time.Second)
	tr.Sweep()
	wantCount(t, tr, 1)
}

// TestIgnores: other regions, malformed messages, mismatched ids and our own
// heartbeats do not count.
func TestIgnores(t *testing.T) {
	t.Parallel()
	cp := fakecp.Start(t)
	tr := start(t, connect(t, cp), time.Hour, nil)
	pub := connect(t, cp)
	beat(t, pub, "us", "gw-9")   // another region
	beat(t, pub, "eu-2", "gw-9") // a region with our name as prefix
	beat(t, pub, "eu", "gw-1")   // ourselves
	if err := pub.Publish(wire.StatusSubject("eu", "gw-8"), []byte("not a protobuf \xff\xff")); err != nil {
		t.Fatal(err)
	}
	data, _ := proto.Marshal(&gatehousev1.GatewayStatus{GatewayId: "gw-6"})
	if err := pub.Publish(wire.StatusSubject("eu", "gw-7"), data); err != nil { // wrong subject
		t.Fatal(err)
	}
	data, _ = proto.Marshal(&gatehousev1.GatewayStatus{})
	if err := pub.Publish(wire.StatusSubject("eu", "x"), data); err != nil { // no id
		t.Fatal(err)
	}
	beat(t, pub, "eu", "gw-2") // delivered after all of the above
	heard(t, tr, 1)
	wantCount(t, tr, 2)
	if got := int(testutil.ToFloat64(tr.heartbeats)); got != 1 {
		t.Errorf("counted %d heartbeats, want 1", got)
	}
}

func TestSettled(t *testing.T) {
	t.Parallel()
	cp := fakecp.Start(t)
	var clk clock
	nc := connect(t, cp)
	tr, err := New(Options{Conn: nc, Region: "eu", Self: "gw-1", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Settled() {
		t.Fatal("settled at once")
	}
	clk.Advance(5 * time.Second)
	if tr.Settled() {
		t.Fatal("settled after exactly one interval")
	}
	clk.Advance(time.Second)
	if !tr.Settled() {
		t.Fatal("not settled after 1.2 intervals")
	}
}

// TestFloorUntilSettled: a gateway that knew 3 gateways before its restart counts 3
// until it has listened a full interval, then what it hears.
func TestFloorUntilSettled(t *testing.T) {
	t.Parallel()
	cp := fakecp.Start(t)
	var clk clock
	nc := connect(t, cp)
	tr, err := New(Options{Conn: nc, Region: "eu", Self: "gw-1", Now: clk.Now, Floor: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Count(); got != 3 {
		t.Fatalf("count before settling = %d, want the floor 3", got)
	}
	clk.Advance(5 * time.Second)
	tr.Sweep()
	if got := tr.Count(); got != 3 {
		t.Fatalf("count after one interval = %d, want still 3", got)
	}
	clk.Advance(time.Second)
	tr.Sweep()
	if got := tr.Count(); got != 1 {
		t.Fatalf("count once settled, nobody heard = %d, want 1", got)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	if _, err := New(Options{Region: "eu", Self: "gw-1"}); err == nil {
		t.Error("no error without a connection")
	}
}
