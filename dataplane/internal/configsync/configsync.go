// Package configsync keeps a gateway's runtime config in step with the control plane: it
// watches the region's entries of the config KV bucket, opens and validates each snapshot,
// compiles it and publishes a new whole-fleet runtime through runtime.Store. A snapshot
// that fails any check is refused (NACK, remembered with its reason) and the previous one
// keeps serving. It survives NATS outages by re-watching after every reconnect.
//
// With a cache directory it also keeps the last applied KV value of every org on disk
// (still sealed), and when the initial values do not arrive within a grace period (NATS
// unreachable at start) it serves the cached ones, opened and compiled exactly like live
// values, until the watch delivers; the live values then replace them. It never serves
// requests and never writes to NATS.
package configsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
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
	// CacheDir, when not empty, turns the disk cache on: the sealed value of every
	// applied org is kept as CacheDir/<region>/<org_id>.cfg. The directory belongs to
	// one gateway.
	CacheDir string
	// CacheGrace is how long Run waits for the initial values before it serves the
	// cache (default 5s).
	CacheGrace time.Duration
	// OnChange, if set, is called (under the syncer's lock: it must not block) after
	// the served config or its ACK/NACK state changed, so heartbeats go out at once.
	OnChange func()
}

// Syncer watches the config bucket and publishes compiled runtimes.
type Syncer struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	region   string
	keyring  *wire.Keyring
	store    *runtime.Store
	log      *slog.Logger
	onChange func()
	metrics  *metrics
	maxRetry time.Duration
	// cache is nil when the disk cache is off.
	cache      *diskCache
	cacheGrace time.Duration
	// initial is closed once a watcher has delivered its initial values.
	initial chan struct{}

	// mu guards what follows: the watch builds runtimes, and so does the cache
	// fallback, once, on its own goroutine.
	mu sync.Mutex
	// cur is the latest compiled runtime. It is published to store once the initial
	// values (or cached ones) have been loaded; before that it is built on the side.
	cur    *runtime.Runtime
	states map[string]*gatehousev1.OrgConfigState
	// live is set once a watcher has delivered its initial values: from then on the
	// cache is never read.
	live bool
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
	var cache *diskCache
	if cfg.CacheDir != "" {
		cache = &diskCache{dir: filepath.Join(cfg.CacheDir, cfg.Region)}
	}
	grace := cfg.CacheGrace
	if grace <= 0 {
		grace = 5 * time.Second
	}
	return &Syncer{
		nc:         cfg.Conn,
		js:         js,
		region:     cfg.Region,
		keyring:    cfg.Keyring,
		store:      cfg.Store,
		log:        cfg.Logger.With("component", "configsync"),
		onChange:   cfg.OnChange,
		metrics:    m,
		maxRetry:   maxRetry,
		cache:      cache,
		cacheGrace: grace,
		initial:    make(chan struct{}),
		cur:        runtime.Empty(),
		states:     map[string]*gatehousev1.OrgConfigState{},
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
// NATS: failures are logged and retried with back-off. With the disk cache on, it
// serves the cached config when the initial values are late. Run is called once.
func (s *Syncer) Run(ctx context.Context) error {
	if s.cache != nil {
		var wg sync.WaitGroup
		defer wg.Wait()
		fctx, cancel := context.WithCancel(ctx)
		defer cancel()
		wg.Go(func() { s.fallBackToCache(fctx) })
	}
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

	// Orgs with a value in this watcher's initial values; any org served before (or
	// loaded from the cache) but missing from them, or deleted, is dropped.
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
			if !synced && e.Operation() == jetstream.KeyValuePut {
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

// finishInitial drops orgs that disappeared while unwatched (and those loaded from the
// cache that the live values no longer have) and publishes the runtime, making the
// gateway ready the first time.
func (s *Syncer) finishInitial(seen map[string]struct{}) {
	s.mu.Lock()
	var removed []string
	for _, id := range s.cur.OrgIDs() {
		if _, ok := seen[id]; !ok {
			s.removeOrg(id)
			removed = append(removed, id)
		}
	}
	first := !s.live
	fromCache := first && s.store.Load() != nil
	s.live = true
	s.store.Store(s.cur)
	orgs := len(s.cur.OrgIDs())
	s.mu.Unlock()

	s.metrics.orgs.Set(float64(orgs))
	s.changed()
	if first {
		close(s.initial)
		s.metrics.ready.Set(1)
		s.metrics.fromCache.Set(0)
		if fromCache {
			s.log.Info("live config replaced the cached config", "orgs", orgs, "dropped", len(removed))
		} else {
			s.log.Info("initial config loaded", "orgs", orgs)
		}
	}
	if s.cache != nil {
		if err := s.cache.prune(seen); err != nil {
			s.cacheFailed("prune", "", err)
		}
	}
}

// publish stores cur once the gateway is ready; before that, cur is built on the side.
// Callers hold mu.
func (s *Syncer) publish() {
	s.metrics.orgs.Set(float64(len(s.cur.OrgIDs())))
	if s.store.Load() != nil {
		s.store.Store(s.cur)
	}
	s.changed()
}

// changed tells the OnChange hook, if any.
func (s *Syncer) changed() {
	if s.onChange != nil {
		s.onChange()
	}
}

// removeOrg drops an org and its cached snapshot. Callers hold mu.
func (s *Syncer) removeOrg(id string) {
	s.cur = s.cur.WithoutOrg(id)
	delete(s.states, id)
	if s.cache != nil {
		if err := s.cache.remove(id); err != nil {
			s.cacheFailed("remove", id, err)
		}
	}
	s.log.Info("config removed", "org_id", id)
}

// apply handles one KV entry of org.
func (s *Syncer) apply(orgID string, e jetstream.KeyValueEntry) {
	if orgID == wire.GlobalConfigID {
		// Platform-wide settings are accepted but carry nothing this gateway enforces yet.
		return
	}
	s.mu.Lock()
	switch e.Operation() {
	case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
		if _, ok := s.cur.Org(orgID); ok || s.states[orgID] != nil {
			s.removeOrg(orgID)
			s.publish()
		} else if s.cache != nil {
			if err := s.cache.remove(orgID); err != nil {
				s.cacheFailed("remove", orgID, err)
			}
		}
		s.mu.Unlock()
		return
	}
	meta, res, reason, err := s.install(orgID, e.Value())
	switch {
	case err != nil:
		s.reject(orgID, meta, reason, err)
	case res == installed:
		s.publish()
	}
	s.mu.Unlock()
	if err != nil {
		return
	}
	if res == installed {
		s.metrics.applied.Inc()
		s.log.Info("config applied", "org_id", orgID, "epoch", meta.Epoch, "version", meta.Version, "revision", e.Revision())
	}
	if s.cache != nil && res != stale {
		// Also for an unchanged version: the value may have been re-sealed under a new
		// key, and the cached copy must stay readable after the old key is retired.
		if err := s.cache.put(orgID, e.Value()); err != nil {
			s.cacheFailed("write", orgID, err)
		}
	}
}

// installResult says what install did with a value it accepted.
type installResult int

const (
	installed installResult = iota
	// unchanged: the value has the applied version and content.
	unchanged
	// stale: the value is older than the applied one.
	stale
)

// install opens a sealed value of an org, checks it, compiles it and swaps it into cur.
// It returns the refusal reason with an error when the value is refused. Callers hold
// mu.
func (s *Syncer) install(orgID string, value []byte) (*gatehousev1.SnapshotMeta, installResult, string, error) {
	meta, snap, err := s.keyring.Open(value)
	if err != nil {
		return meta, 0, "open", err
	}
	if reason, err := s.checkMeta(orgID, meta); err != nil {
		return meta, 0, reason, err
	}
	if res := s.staleness(orgID, meta); res != installed {
		return meta, res, "", nil
	}
	org, err := runtime.Compile(meta, snap)
	if err != nil {
		return meta, 0, "invalid", err
	}
	next, err := s.cur.WithOrg(org)
	if err != nil {
		return meta, 0, "conflict", fmt.Errorf("apply snapshot: %w", err)
	}
	s.cur = next
	s.states[orgID] = &gatehousev1.OrgConfigState{
		OrgId:          orgID,
		AppliedEpoch:   meta.Epoch,
		AppliedVersion: meta.Version,
		AppliedSha256:  meta.Sha256,
	}
	return meta, installed, "", nil
}

// fallBackToCache waits for the initial values for the grace period; when they are
// late it loads the cached values and, if any is usable, publishes them so the gateway
// becomes ready. Live values applied meanwhile win over cached ones.
func (s *Syncer) fallBackToCache(ctx context.Context) {
	t := time.NewTimer(s.cacheGrace)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-s.initial:
		return
	case <-t.C:
	}
	values, skipped := s.cache.load()
	for _, err := range skipped {
		s.cacheFailed("load", "", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live {
		return
	}
	loaded := 0
	for _, orgID := range slices.Sorted(maps.Keys(values)) {
		if _, ok := s.cur.Org(orgID); ok {
			continue
		}
		// A live value refused meanwhile stays reported: the cached one is older.
		prev := s.states[orgID]
		meta, res, reason, err := s.install(orgID, values[orgID])
		if err != nil {
			s.cacheFailed("load", orgID, fmt.Errorf("%s: %w", reason, err))
			continue
		}
		if res == installed {
			if prev != nil {
				s.states[orgID].RejectedVersion, s.states[orgID].RejectedReason = prev.RejectedVersion, prev.RejectedReason
			}
			loaded++
			s.log.Info("cached config applied", "org_id", orgID, "epoch", meta.Epoch, "version", meta.Version)
		}
	}
	if loaded == 0 {
		s.log.Warn("initial config late and no usable cached config; not ready yet", "waited", s.cacheGrace.String())
		return
	}
	s.store.Store(s.cur)
	s.metrics.orgs.Set(float64(len(s.cur.OrgIDs())))
	s.metrics.ready.Set(1)
	s.metrics.fromCache.Set(1)
	s.log.Warn("initial config late; serving the cached config until NATS delivers", "orgs", loaded, "waited", s.cacheGrace.String())
}

func (s *Syncer) cacheFailed(op, orgID string, err error) {
	s.metrics.cacheErrors.WithLabelValues(op).Inc()
	attrs := []any{"op", op, "err", err}
	if orgID != "" {
		attrs = append(attrs, "org_id", orgID)
	}
	s.log.Warn("config cache", attrs...)
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

// staleness compares meta with the applied snapshot of the same epoch: unchanged or
// stale when it is not newer, installed when it should apply. Versions of different
// epochs are not comparable, so a new epoch always applies. Callers hold mu.
func (s *Syncer) staleness(orgID string, meta *gatehousev1.SnapshotMeta) installResult {
	st, ok := s.states[orgID]
	if !ok || st.AppliedVersion == 0 || st.AppliedEpoch != meta.Epoch {
		return installed
	}
	switch {
	case meta.Version == st.AppliedVersion && meta.Sha256 == st.AppliedSha256:
		return unchanged
	case meta.Version <= st.AppliedVersion:
		s.metrics.rejected.WithLabelValues("stale").Inc()
		s.log.Warn("ignoring stale config", "org_id", orgID, "epoch", meta.Epoch,
			"version", meta.Version, "applied_version", st.AppliedVersion)
		return stale
	}
	return installed
}

// reject records a refused snapshot. Callers hold mu.
func (s *Syncer) reject(orgID string, meta *gatehousev1.SnapshotMeta, reason string, err error) {
	s.metrics.rejected.WithLabelValues(reason).Inc()
	s.log.Warn("config rejected", "org_id", orgID, "version", meta.GetVersion(), "reason", reason, "err", err)
	st, ok := s.states[orgID]
	if !ok {
		st = &gatehousev1.OrgConfigState{OrgId: orgID}
		s.states[orgID] = st
	}
	st.RejectedVersion = meta.GetVersion()
	st.RejectedReason = strings.TrimSpace(err.Error())
	s.changed()
}

type metrics struct {
	applied     prometheus.Counter
	rejected    *prometheus.CounterVec
	orgs        prometheus.Gauge
	ready       prometheus.Gauge
	fromCache   prometheus.Gauge
	cacheErrors *prometheus.CounterVec
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
		fromCache: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_gateway_config_from_cache",
			Help: "1 while the gateway serves config loaded from its disk cache because NATS has not delivered yet.",
		}),
		cacheErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_gateway_config_cache_errors_total",
			Help: "Config disk cache failures and refused cached values, by operation (write, remove, load, prune).",
		}, []string{"op"}),
	}
	for _, c := range []prometheus.Collector{m.applied, m.rejected, m.orgs, m.ready, m.fromCache, m.cacheErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}
