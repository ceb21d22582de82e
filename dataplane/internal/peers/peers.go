// Package peers counts the live gateways of this gateway's region from the heartbeats
// every gateway publishes on `status.<region>.<gateway_id>` (see proto/wire), so that
// region-wide limits can be split into per-gateway shares without a round trip per
// request. A peer is live while it has been heard within three heartbeat intervals; the
// gateway itself always counts, so Count is at least 1. Gateways that report not ready
// count too: they are about to serve, and counting them early only makes shares
// smaller.
//
// Timing uses the local receive time (an injectable clock), never the sender's clock,
// so skew between machines does not matter. While this gateway is cut off from NATS it
// hears nobody, which would look like every peer leaving and make it claim the whole
// region's limits; so peers never expire while the connection is down, nor until it has
// been back for three intervals.
//
// A gateway that has just started has not heard its peers yet: Settled reports when it
// has listened for a full interval. Serving before that means using a share computed
// from too small a count (see package limit for the bound).
//
// The package only listens; it does not publish heartbeats (package heartbeat does) and
// does not decide what a count means for limits.
package peers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
)

// ExpiryIntervals is how many heartbeat intervals a peer may stay silent before it is
// no longer counted.
const ExpiryIntervals = 3

// Options configures a Tracker.
type Options struct {
	Conn   *nats.Conn
	Region string
	// Self is this gateway's id; it is always counted, whether or not its own
	// heartbeats come back.
	Self string
	// Interval is the heartbeat interval of the region's gateways (default 5s).
	Interval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Floor, when above 1, is the count to assume until Settled: the region's count
	// this gateway last knew (before a restart), so that a gateway coming back does not
	// claim a lone gateway's share of every limit while it has not heard its peers.
	Floor int
	// OnChange, if set, is called with the new count each time it changes, in order,
	// under the tracker's lock: it must not block (Count may be called from it).
	OnChange func(count int)
	Logger   *slog.Logger
	// Registerer receives the tracker's metrics (none when nil).
	Registerer prometheus.Registerer
}

// Tracker counts the live gateways of a region. Create it with New, start it with Run.
type Tracker struct {
	nc       *nats.Conn
	region   string
	self     string
	interval time.Duration
	now      func() time.Time
	onChange func(int)
	log      *slog.Logger

	sub        *nats.Subscription
	count      atomic.Int64
	floor      atomic.Int64 // Options.Floor until settled, then 0
	heartbeats prometheus.Counter

	mu sync.Mutex
	// seen is when each other gateway was last heard.
	seen map[string]time.Time
	// listening is when New subscribed.
	listening time.Time
	// connectedSince is when the connection was last seen to (re)connect; zero while
	// it is down. Peers do not expire until it is ExpiryIntervals old.
	connectedSince time.Time
	reconnects     uint64
}

// New subscribes to the region's heartbeats and returns a Tracker; call Run to expire
// silent peers (and to stop listening when its context ends).
func New(o Options) (*Tracker, error) {
	if o.Conn == nil || o.Region == "" || o.Self == "" {
		return nil, errors.New("peers: Conn, Region and Self are required")
	}
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Tracker{
		nc:       o.Conn,
		region:   o.Region,
		self:     o.Self,
		interval: o.Interval,
		now:      o.Now,
		onChange: o.OnChange,
		log:      o.Logger.With("component", "peers"),
		seen:     map[string]time.Time{},
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_gateway_peer_heartbeats_total",
			Help: "Heartbeats of other gateways of the region received.",
		}),
	}
	t.count.Store(1)
	if o.Floor > 1 {
		t.floor.Store(int64(o.Floor))
	}
	if o.Registerer != nil {
		peers := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_gateway_peers",
			Help: "Live gateways of the region, this one included, as used to share limits.",
		}, func() float64 { return float64(t.Count()) })
		for _, c := range []prometheus.Collector{peers, t.heartbeats} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("peers: register metrics: %w", err)
			}
		}
	}
	// Hold the lock across Subscribe so that no heartbeat is taken in before the
	// listening time is set.
	t.mu.Lock()
	defer t.mu.Unlock()
	sub, err := t.nc.Subscribe(wire.StatusSubject(t.region, ">"), t.receive)
	if err != nil {
		return nil, fmt.Errorf("peers: subscribe: %w", err)
	}
	t.sub = sub
	now := t.now()
	t.listening = now
	if t.nc.IsConnected() {
		t.connectedSince = now
	}
	t.reconnects = t.nc.Stats().Reconnects
	return t, nil
}

// Count is the number of live gateways in the region, this one included (at least 1),
// and until Settled at least Options.Floor. It is two atomic loads: call it on every
// request.
func (t *Tracker) Count() int { return int(max(t.count.Load(), t.floor.Load())) }

// Heard is the number of live gateways this tracker has heard, itself included,
// whatever Options.Floor says: what to keep for the next start.
func (t *Tracker) Heard() int { return int(t.count.Load()) }

// Settled reports whether the tracker has listened for a full heartbeat interval (plus
// a fifth for delivery), so that every live peer has been heard at least once unless a
// heartbeat was lost. Gate readiness on it to keep a starting gateway from serving with
// a share computed from too small a count.
func (t *Tracker) Settled() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.now().Sub(t.listening) >= t.interval+t.interval/5
}

// Run expires silent peers every half interval until ctx is done, then stops
// listening.
func (t *Tracker) Run(ctx context.Context) error {
	defer func() { _ = t.sub.Unsubscribe() }()
	tick := time.NewTicker(t.interval / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			t.Sweep()
		}
	}
}

// receive records a heartbeat. It must be a GatewayStatus sent on its gateway's own
// subject; anything else is ignored.
func (t *Tracker) receive(m *nats.Msg) {
	var st gatehousev1.GatewayStatus
	if err := proto.Unmarshal(m.Data, &st); err != nil || st.GetGatewayId() == "" ||
		m.Subject != wire.StatusSubject(t.region, st.GetGatewayId()) {
		t.log.Debug("ignoring malformed heartbeat", "subject", m.Subject)
		return
	}
	id := st.GetGatewayId()
	if id == t.self {
		return
	}
	t.heartbeats.Inc()
	t.mu.Lock()
	defer t.mu.Unlock()
	_, known := t.seen[id]
	t.seen[id] = t.now()
	if !known {
		t.log.Info("gateway joined", "peer_id", id)
		t.publishLocked()
	}
}

// Sweep forgets peers not heard from for ExpiryIntervals intervals. Run calls it every
// half interval; call it directly after moving a test clock.
func (t *Tracker) Sweep() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if t.floor.Load() != 0 && now.Sub(t.listening) >= t.interval+t.interval/5 {
		t.floor.Store(0) // settled: every live peer has been heard
	}
	// A silent peer may be our own outage: expire nobody while disconnected, nor until
	// the connection has been back long enough to hear everyone again.
	if !t.nc.IsConnected() {
		t.connectedSince = time.Time{}
		return
	}
	if r := t.nc.Stats().Reconnects; r != t.reconnects || t.connectedSince.IsZero() {
		t.reconnects = r
		t.connectedSince = now
	}
	timeout := ExpiryIntervals * t.interval
	if now.Sub(t.connectedSince) <= timeout {
		return
	}
	changed := false
	for id, at := range t.seen {
		if now.Sub(at) > timeout {
			delete(t.seen, id)
			t.log.Info("gateway expired", "peer_id", id, "silent_for", now.Sub(at).String())
			changed = true
		}
	}
	if changed {
		t.publishLocked()
	}
}

// publishLocked stores the count and tells OnChange when it moved.
func (t *Tracker) publishLocked() {
	n := int64(1 + len(t.seen))
	if t.count.Swap(n) != n && t.onChange != nil {
		t.onChange(int(n))
	}
}
