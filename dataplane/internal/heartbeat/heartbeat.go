// Package heartbeat publishes the gateway's status (version, capability, readiness,
// in-flight requests and per-org config ACK/NACK) on its status subject at a fixed
// interval, with core NATS: a missed heartbeat is replaced by the next one, so nothing is
// queued or retried. It does not decide what the status contains.
package heartbeat

import (
	"context"
	"log/slog"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
)

// Publisher sends heartbeats.
type Publisher struct {
	nc       *nats.Conn
	subject  string
	interval time.Duration
	status   func() *gatehousev1.GatewayStatus
	log      *slog.Logger
	kick     chan struct{}
}

// New returns a Publisher that sends status() every interval on the gateway's subject.
func New(nc *nats.Conn, region, gatewayID string, interval time.Duration, status func() *gatehousev1.GatewayStatus, log *slog.Logger) *Publisher {
	return &Publisher{
		nc:       nc,
		subject:  wire.StatusSubject(region, gatewayID),
		interval: interval,
		status:   status,
		log:      log.With("component", "heartbeat"),
		kick:     make(chan struct{}, 1),
	}
}

// Kick asks for a heartbeat now (after a config change) without blocking; kicks that
// arrive while one is pending coalesce.
func (p *Publisher) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Run publishes immediately, then every interval and whenever kicked, until ctx is done.
func (p *Publisher) Run(ctx context.Context) error {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		p.publish()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-p.kick:
		}
	}
}

func (p *Publisher) publish() {
	if !p.nc.IsConnected() {
		return
	}
	st := p.status()
	st.SentAtUnixMs = time.Now().UnixMilli()
	data, err := proto.Marshal(st)
	if err != nil {
		p.log.Error("marshal heartbeat", "err", err)
		return
	}
	if err := p.nc.Publish(p.subject, data); err != nil {
		p.log.Warn("publish heartbeat", "err", err)
	}
}
