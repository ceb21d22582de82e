// Package configsync keeps a gateway's runtime config in step with the control plane: it
// watches the region's entries of the config KV bucket, opens and validates each snapshot,
// compiles it and publishes a new whole-fleet runtime through runtime.Store. A snapshot
// that fails any check is refused (NACK, remembered with its reason) and the previous one
// keeps serving. It survives NATS outages by re-watching after every reconnect; it never
// serves requests and never writes to NATS.
package configsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// Config configures a Syncer.
type Config struct {
	Conn    *nats.Conn
	Region  string
	Keyring *wire.Keyring
	Store   *runtime.Store
	Logger  *slog.Logger
	// Registerer receives the syncer's metrics.
	Registerer prometheus.Registerer
	// MaxRetryInterval caps the back-off between attempts to (re)open the watch.
	MaxRetryInterval time.Duration
}

// Syncer watches the config bucket and publishes compiled runtimes.
type Syncer struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	region   string
	keyring  *wire.Keyring
	store    *runtime.Store
	log      *slog.Logger
	metrics  *metrics
	maxRetry time.Duration

	// cur is the latest compiled runtime; only the Run goroutine touches it. It is
	// published to store once the initial values have arrived.
	cur *runtime.Runtime

	mu     sync.Mutex
	states map[string]*gatehousev1.OrgConfigState
}

// New returns a Syncer; call Run to start it.
func New(cfg Config) (*Syncer, error) {
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("configsync: jetstream: %w", err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("configsync: %w", err)
	}
	maxRetry := cfg.MaxRetryInterval
	if maxRetry <= 0 {
		maxRetry = 5 * time.Second
	}
	return &Syncer{
		nc:       cfg.Conn,
		js:       js,
		region:   cfg.Region,
		keyring:  cfg.Keyring,
		store:    cfg.Store,
		log:      cfg.Logger.With("component", "configsync"),
		metrics:  m,
		maxRetry: maxRetry,
		cur:      runtime.Empty(),
		states:   map[string]*gatehousev1.OrgConfigState{},
	}, nil
}

// Ready reports whether the initial config has been loaded. It stays true afterwards,
// whatever happens to NATS: the gateway keeps serving its last config.
func (s *Syncer) Ready() bool { return s.store.Load() != nil }

// States returns, per org, the applied and last rejected snapshot versions, sorted by
// org id. The result is a copy.
func (s *Syncer) States() []*gatehousev1.OrgConfigState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*gatehousev1.OrgConfigState, 0, len(s.states))
	for _, id := range slices.Sorted(maps.Keys(s.states)) {
		st := s.states[id]
		out = append(out, &gatehousev1.OrgConfigState{
			OrgId:           st.OrgId,
			AppliedEpoch:    st.AppliedEpoch,
			AppliedVersion:  st.AppliedVersion,
			AppliedSha256:   st.AppliedSha256,
			RejectedVersion: st.RejectedVersion,
			RejectedReason:  st.RejectedReason,
		})
	}
	return out
}

// errReconnected ends a watch so that it is re-created on the new connection.
var errReconnected = errors.New("nats reconnected")

// Run watches until ctx is done. It returns nil on cancellation and never gives up on
// NATS: failures are logged and retried with back-off.
func (s *Syncer) Run(ctx context.Context) error {
	connected := s.nc.StatusChanged(nats.CONNECTED)
	defer s.nc.RemoveStatusListener(connected)
	const minRetry = 100 * time.Millisecond
	retry := minRetry
	for {
		synced, err := s.watch(ctx, connected)
		if ctx.Err() != nil {
			return nil
		}
		if synced {
			retry = minRetry
		}
		if errors.Is(err, errReconnected) {
			s.log.Info("re-watching config after reconnect")
		} else {
			s.log.Warn("config watch interrupted", "err", err, "retry_in", retry.String())
		}
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		retry = min(retry*2, s.maxRetry)
	}
}

// watch opens the bucket and consumes one watcher until it fails. synced reports
// whether the watcher delivered its initial values.
func (s *Syncer) watch(ctx context.Context, connected <-chan nats.Status) (synced bool, err error) {
	drain(connected)
	kv, err := s.js.KeyValue(ctx, wire.ConfigBucket)
	if err != nil {
		return false, fmt.Errorf("open bucket %s: %w", wire.ConfigBucket, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := kv.Watch(wctx, wire.ConfigWatchPattern(s.region))
	if err != nil {
		return false, fmt.Errorf("watch config: %w", err)
	}
	defer func() { _ = w.Stop() }()

	// Orgs seen in this watcher's initial values; any org served before but missing
	// from them was deleted while we were not watching.
	seen := map[string]struct{}{}
	for {
		select {
		case <-ctx.Done():
			return synced, ctx.Err()
		case <-connected:
			return synced, errReconnected
		case e, ok := <-w.Updates():
			if !ok {
				return synced, errors.New("watch config: watcher closed")
			}
			if e == nil {
				if !synced {
					synced = true
					s.finishInitial(seen)
				}
				continue
			}
			org, ok := wire.OrgFromConfigKey(s.region, e.Key())
			if !ok {
				s.log.Warn("ignoring malformed config key", "key", e.Key())
				continue
			}
			if !synced {
				seen[org] = struct{}{}
			}
			s.apply(org, e)
		}
	}
}

func drain(ch <-chan nats.Status) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// finishInitial drops orgs that disappeared while unwatched and publishes the runtime,
// making the gateway ready the first time.
func (s *Syncer) finishInitial(seen map[string]struct{}) {
	for _, id := range s.cur.OrgIDs() {
		if _, ok := seen[id]; !ok {
			s.removeOrg(id)
		}
	}
	first := s.store.Load() == nil
	s.store.Store(s.cur)
	s.metrics.orgs.Set(float64(len(s.cur.OrgIDs())))
	if first {
		s.metrics.ready.Set(1)
		s.log.Info("initial config loaded", "orgs", len(s.cur.OrgIDs()))
	}
}

// publish stores cur once the gateway is ready; before that, cur is built on the side.
func (s *Syncer) publish() {
	s.metrics.orgs.Set(float64(len(s.cur.OrgIDs())))
	if s.store.Load() != nil {
		s.store.Store(s.cur)
	}
}

func (s *Syncer) removeOrg(id string) {
	s.cur = s.cur.WithoutOrg(id)
	s.mu.Lock()
	delete(s.states, id)
	s.mu.Unlock()
	s.log.Info("config removed", "org_id", id)
}

// apply handles one KV entry of org.
func (s *Syncer) apply(orgID string, e jetstream.KeyValueEntry) {
	if orgID == wire.GlobalConfigID {
		// Platform-wide settings are accepted but carry nothing this gateway enforces yet.
		return
	}
	switch e.Operation() {
	case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
		s.removeOrg(orgID)
		s.publish()
		return
	}
	meta, snap, err := s.keyring.Open(e.Value())
	if err != nil {
		s.reject(orgID, meta, "open", err)
		return
	}
	if reason, err := s.checkMeta(orgID, meta); err != nil {
		s.reject(orgID, meta, reason, err)
		return
	}
	if skip := s.stale(orgID, meta); skip {
		return
	}
	org, err := runtime.Compile(meta, snap)
	if err != nil {
		s.reject(orgID, meta, "invalid", err)
		return
	}
	next, err := s.cur.WithOrg(org)
	if err != nil {
		s.reject(orgID, meta, "conflict", fmt.Errorf("apply snapshot: %w", err))
		return
	}
	s.cur = next
	s.publish()
	s.mu.Lock()
	s.states[orgID] = &gatehousev1.OrgConfigState{
		OrgId:          orgID,
		AppliedEpoch:   meta.Epoch,
		AppliedVersion: meta.Version,
		AppliedSha256:  meta.Sha256,
	}
	s.mu.Unlock()
	s.metrics.applied.Inc()
	s.log.Info("config applied", "org_id", orgID, "epoch", meta.Epoch, "version", meta.Version, "revision", e.Revision())
}

func (s *Syncer) checkMeta(orgID string, meta *gatehousev1.SnapshotMeta) (reason string, err error) {
	switch {
	case meta.OrgId != orgID:
		return "meta", fmt.Errorf("check meta: org %q under key of org %q", meta.OrgId, orgID)
	case meta.Region != s.region:
		return "meta", fmt.Errorf("check meta: region %q, gateway serves %q", meta.Region, s.region)
	case meta.MinGatewayCapability > wire.Capability:
		return "capability", fmt.Errorf("check meta: needs gateway capability %d, have %d", meta.MinGatewayCapability, wire.Capability)
	}
	return "", nil
}

// stale reports whether meta is older than, or the same as, the applied snapshot of the
// same epoch. Versions of different epochs are not comparable, so a new epoch always
// applies.
func (s *Syncer) stale(orgID string, meta *gatehousev1.SnapshotMeta) bool {
	s.mu.Lock()
	st, ok := s.states[orgID]
	s.mu.Unlock()
	if !ok || st.AppliedVersion == 0 || st.AppliedEpoch != meta.Epoch {
		return false
	}
	switch {
	case meta.Version == st.AppliedVersion && meta.Sha256 == st.AppliedSha256:
		return true
	case meta.Version <= st.AppliedVersion:
		s.metrics.rejected.WithLabelValues("stale").Inc()
		s.log.Warn("ignoring stale config", "org_id", orgID, "epoch", meta.Epoch,
			"version", meta.Version, "applied_version", st.AppliedVersion)
		return true
	}
	return false
}

func (s *Syncer) reject(orgID string, meta *gatehousev1.SnapshotMeta, reason string, err error) {
	s.metrics.rejected.WithLabelValues(reason).Inc()
	s.log.Warn("config rejected", "org_id", orgID, "version", meta.GetVersion(), "reason", reason, "err", err)
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.states[orgID]
	if !ok {
		st = &gatehousev1.OrgConfigState{OrgId: orgID}
		s.states[orgID] = st
	}
	st.RejectedVersion = meta.GetVersion()
	st.RejectedReason = strings.TrimSpace(err.Error())
}

type metrics struct {
	applied  prometheus.Counter
	rejected *prometheus.CounterVec
	orgs     prometheus.Gauge
	ready    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		applied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_gateway_config_applied_total",
			Help: "Org config snapshots applied.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_gateway_config_rejected_total",
			Help: "Org config snapshots refused, by reason (open, meta, capability, invalid, conflict, stale).",
		}, []string{"reason"}),
		orgs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_gateway_config_orgs",
			Help: "Orgs in the compiled config.",
		}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_gateway_config_ready",
			Help: "1 once the initial config has been loaded.",
		}),
	}
	for _, c := range []prometheus.Collector{m.applied, m.rejected, m.orgs, m.ready} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}
