// Package usage records one usage event per authenticated request and ships them to the
// control plane: Emit only appends in memory, a background flusher groups events per org
// into UsageBatches and publishes them to the USAGE stream with the batch id as
// Nats-Msg-Id. Batches that cannot be published go to a bounded on-disk spool and are
// re-sent in order, with the same batch id, once NATS is back (also after a restart), so
// the stream's duplicate window and the control plane's idempotent insert make delivery
// exactly once. It does not price requests or decide what an event contains.
package usage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Recorder. Zero durations and sizes take the defaults.
type Config struct {
	Conn      *nats.Conn
	Region    string
	GatewayID string
	// SpoolDir holds batches that could not be published.
	SpoolDir string
	// SpoolMaxBytes bounds the spool; batches beyond it are dropped and counted.
	SpoolMaxBytes int64
	// FlushInterval is how often pending events are shipped (default 100ms).
	FlushInterval time.Duration
	// MaxBatch is the most events in one batch, and the pending count that triggers an
	// early flush (default 256).
	MaxBatch int
	// MaxPending bounds events held in memory between flushes (default 262144).
	MaxPending int
	// PublishTimeout bounds the wait for one JetStream ack (default 5s).
	PublishTimeout time.Duration
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
}

// Recorder collects usage events and ships them.
type Recorder struct {
	nc         *nats.Conn
	js         jetstream.JetStream
	region     string
	gatewayID  string
	interval   time.Duration
	maxBatch   int
	maxPending int
	timeout    time.Duration
	log        *slog.Logger
	metrics    *metrics
	// spool is only touched by the flusher goroutine.
	spool *spool

	kick chan struct{}

	mu      sync.Mutex
	pending []*gatehousev1.UsageEvent
}

// New opens the spool (keeping batches left by a previous run) and returns a Recorder;
// call Run to start shipping.
func New(cfg Config) (*Recorder, error) {
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("usage: jetstream: %w", err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("usage: %w", err)
	}
	maxBytes := cfg.SpoolMaxBytes
	if maxBytes <= 0 {
		maxBytes = 256 << 20
	}
	sp, err := openSpool(cfg.SpoolDir, maxBytes)
	if err != nil {
		return nil, fmt.Errorf("usage: %w", err)
	}
	r := &Recorder{
		nc:         cfg.Conn,
		js:         js,
		region:     cfg.Region,
		gatewayID:  cfg.GatewayID,
		interval:   orDefault(cfg.FlushInterval, 100*time.Millisecond),
		maxBatch:   orDefault(cfg.MaxBatch, 256),
		maxPending: orDefault(cfg.MaxPending, 1<<18),
		timeout:    orDefault(cfg.PublishTimeout, 5*time.Second),
		log:        cfg.Logger.With("component", "usage"),
		metrics:    m,
		spool:      sp,
		kick:       make(chan struct{}, 1),
	}
	m.spoolBytes.Set(float64(sp.bytes))
	m.spoolFiles.Set(float64(len(sp.files)))
	if n := len(sp.files); n > 0 {
		r.log.Info("usage spool holds batches from a previous run", "files", n, "bytes", sp.bytes)
	}
	return r, nil
}

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Emit queues ev for shipping. It never blocks on I/O: it fills in the event id, region
// and gateway id and appends under a mutex. When the in-memory queue is full the event
// is dropped and counted.
func (r *Recorder) Emit(ev *gatehousev1.UsageEvent) {
	if ev.EventId == "" {
		ev.EventId = NewUUID()
	}
	ev.Region = r.region
	ev.GatewayId = r.gatewayID
	r.mu.Lock()
	if len(r.pending) >= r.maxPending {
		r.mu.Unlock()
		r.metrics.dropped.WithLabelValues("queue_full").Inc()
		return
	}
	r.pending = append(r.pending, ev)
	n := len(r.pending)
	r.mu.Unlock()
	r.metrics.emitted.Inc()
	if n >= r.maxBatch {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// Run ships events until ctx is done, then ships or spools what is left (bounded by the
// publish timeout) and returns. Cancel its context only after the last Emit.
func (r *Recorder) Run(ctx context.Context) error {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
			defer cancel()
			r.flush(final)
			return nil
		case <-t.C:
		case <-r.kick:
		}
		r.flush(ctx)
	}
}

func (r *Recorder) take() []*gatehousev1.UsageEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	evs := r.pending
	if len(evs) == 0 {
		return nil
	}
	r.pending = make([]*gatehousev1.UsageEvent, 0, min(len(evs), r.maxPending))
	return evs
}

// flush sends the spool first (oldest batches first), then the pending events. A batch
// goes to the spool whenever older batches are still waiting there, so order holds.
func (r *Recorder) flush(ctx context.Context) {
	if len(r.spool.files) > 0 && r.nc.IsConnected() {
		r.replay(ctx)
	}
	for _, b := range r.batches(r.take()) {
		if len(r.spool.files) == 0 && r.nc.IsConnected() {
			err := r.publish(ctx, b)
			if err == nil {
				continue
			}
			r.log.Warn("usage publish failed, spooling", "batch_id", b.BatchId, "org_id", b.OrgId, "err", err)
		}
		r.store(b)
	}
}

// batches groups events per org into batches of at most maxBatch events.
func (r *Recorder) batches(evs []*gatehousev1.UsageEvent) []*gatehousev1.UsageBatch {
	if len(evs) == 0 {
		return nil
	}
	open := map[string]*gatehousev1.UsageBatch{}
	var out []*gatehousev1.UsageBatch
	for _, ev := range evs {
		b := open[ev.OrgId]
		if b == nil || len(b.Events) >= r.maxBatch {
			b = &gatehousev1.UsageBatch{
				BatchId:   NewUUID(),
				GatewayId: r.gatewayID,
				Region:    r.region,
				OrgId:     ev.OrgId,
				Events:    make([]*gatehousev1.UsageEvent, 0, min(r.maxBatch, len(evs))),
			}
			open[ev.OrgId] = b
			out = append(out, b)
		}
		b.Events = append(b.Events, ev)
	}
	return out
}

// publish sends b. A batch over the server's message size limit is split in halves,
// each sent as its own batch, so that no batch is refused for its size on every try
// (a spooled one would hold back every later batch); an event too large to send even
// alone is dropped and counted.
func (r *Recorder) publish(ctx context.Context, b *gatehousev1.UsageBatch) error {
	data, err := r.marshal(b)
	if err != nil {
		return fmt.Errorf("publish usage: marshal: %w", err)
	}
	if limit := r.nc.MaxPayload() - payloadHeadroom; limit > 0 && int64(len(data)) > limit {
		if len(b.Events) == 1 {
			r.metrics.dropped.WithLabelValues("too_large").Inc()
			r.log.Error("usage event dropped: larger than a NATS message may be", "batch_id", b.BatchId,
				"org_id", b.OrgId, "bytes", len(data), "max_payload", r.nc.MaxPayload())
			return nil
		}
		half := len(b.Events) / 2
		for _, events := range [][]*gatehousev1.UsageEvent{b.Events[:half], b.Events[half:]} {
			part := &gatehousev1.UsageBatch{BatchId: NewUUID(), GatewayId: b.GatewayId, Region: b.Region, OrgId: b.OrgId, Events: events}
			if err := r.publish(ctx, part); err != nil {
				// The whole batch is spooled or retried; the half already sent is
				// ingested once all the same (events are idempotent by id).
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	msg := &nats.Msg{Subject: wire.UsageSubject(r.region, b.OrgId), Data: data}
	if _, err := r.js.PublishMsg(ctx, msg, jetstream.WithMsgID(b.BatchId), jetstream.WithExpectStream(wire.UsageStream)); err != nil {
		r.metrics.publishErrors.Inc()
		return fmt.Errorf("publish usage: %w", err)
	}
	r.metrics.published.Add(float64(len(b.Events)))
	r.metrics.batches.Inc()
	return nil
}

// payloadHeadroom is kept free under the server's max payload for the message's
// headers (its id and the expected stream).
const payloadHeadroom = 1024

// marshal encodes b, repairing strings that are not valid UTF-8 (counted and logged)
// rather than losing the batch.
func (r *Recorder) marshal(b *gatehousev1.UsageBatch) ([]byte, error) {
	data, repaired, err := marshalBatch(b)
	if repaired > 0 {
		r.metrics.repaired.Add(float64(repaired))
		r.log.Warn("usage batch had strings that were not UTF-8; repaired", "batch_id", b.BatchId,
			"org_id", b.OrgId, "strings", repaired)
	}
	return data, err
}

// store spools b, or drops it when the spool is full.
func (r *Recorder) store(b *gatehousev1.UsageBatch) {
	data, err := r.marshal(b)
	if err == nil {
		err = r.spool.put(b.BatchId, data)
	}
	r.metrics.spoolBytes.Set(float64(r.spool.bytes))
	r.metrics.spoolFiles.Set(float64(len(r.spool.files)))
	if err != nil {
		reason := "spool_error"
		if errors.Is(err, errSpoolFull) {
			reason = "spool_full"
		}
		r.metrics.dropped.WithLabelValues(reason).Add(float64(len(b.Events)))
		r.log.Error("usage batch dropped", "batch_id", b.BatchId, "org_id", b.OrgId,
			"events", len(b.Events), "reason", reason, "err", err)
		return
	}
	r.metrics.spooled.Add(float64(len(b.Events)))
}

// replay publishes spooled batches oldest first and stops at the first failure.
func (r *Recorder) replay(ctx context.Context) {
	defer func() {
		r.metrics.spoolBytes.Set(float64(r.spool.bytes))
		r.metrics.spoolFiles.Set(float64(len(r.spool.files)))
	}()
	sent := 0
	for len(r.spool.files) > 0 && ctx.Err() == nil {
		b, err := r.spool.head()
		if err != nil {
			r.log.Error("dropping unreadable usage spool file", "file", r.spool.files[0].name, "err", err)
			r.metrics.dropped.WithLabelValues("spool_corrupt").Inc()
			if err := r.spool.pop(); err != nil {
				r.log.Error("usage spool stuck", "err", err)
				return
			}
			continue
		}
		if err := r.publish(ctx, b); err != nil {
			r.log.Warn("usage spool replay paused", "batch_id", b.BatchId, "err", err)
			return
		}
		if err := r.spool.pop(); err != nil {
			// The batch is sent; resending it later is harmless (same batch id), so a
			// file that cannot be removed only costs a duplicate.
			r.log.Error("usage spool stuck", "err", err)
			return
		}
		sent++
	}
	if sent > 0 {
		r.log.Info("usage spool replayed", "batches", sent, "remaining", len(r.spool.files))
	}
}

// NewUUID returns a time-ordered (version 7, RFC 9562) UUID string: 48 bits of Unix
// milliseconds, 12 bits of the sub-millisecond fraction, then 62 random bits. Event ids
// made this way arrive at the usage table's primary key near its right edge instead of
// at random leaf pages, so a month-long partition's index stays cheap to insert into
// when it no longer fits in memory.
func NewUUID() string { return newUUIDAt(time.Now()) }

func newUUIDAt(t time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[6:])
	ms := uint64(t.UnixMilli())
	frac := uint64(t.Nanosecond()%1_000_000) * 4096 / 1_000_000 // 12 bits of the rest of the millisecond
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	b[6] = 0x70 | byte(frac>>8)
	b[7] = byte(frac)
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

type metrics struct {
	emitted       prometheus.Counter
	published     prometheus.Counter
	spooled       prometheus.Counter
	dropped       *prometheus.CounterVec
	batches       prometheus.Counter
	publishErrors prometheus.Counter
	spoolBytes    prometheus.Gauge
	spoolFiles    prometheus.Gauge
	repaired      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		emitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_gateway_usage_events_emitted_total", Help: "Usage events emitted by requests.",
		}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_gateway_usage_events_published_total", Help: "Usage events acknowledged by the USAGE stream.",
		}),
		spooled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_gateway_usage_events_spooled_total", Help: "Usage events written to the local spool.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_gateway_usage_events_dropped_total",
			Help: "Usage events lost, by reason (queue_full, spool_full, spool_error; spool_corrupt counts files).",
		}, []string{"reason"}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_gateway_usage_batches_published_total", Help: "Usage batches acknowledged by the USAGE stream.",
		}),
		publishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_gateway_usage_publish_errors_total", Help: "Failed usage batch publishes.",
		}),
		spoolBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_gateway_usage_spool_bytes", Help: "Bytes held in the usage spool.",
		}),
		spoolFiles: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_gateway_usage_spool_batches", Help: "Batches held in the usage spool.",
		}),
		repaired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_gateway_usage_strings_repaired_total",
			Help: "Strings in usage events that were not valid UTF-8 and were repaired before shipping.",
		}),
	}
	for _, c := range []prometheus.Collector{m.emitted, m.published, m.spooled, m.dropped, m.batches, m.publishErrors, m.spoolBytes, m.spoolFiles, m.repaired} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}
