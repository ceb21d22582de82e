// Package fleet listens to gateway heartbeats on status.> and records the latest of
// each gateway in Postgres, so the console can show regions, gateways, their build
// versions, liveness and config lag per org. It does not judge the gateways.
package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
)

// Recorder stores heartbeats.
type Recorder struct {
	store *store.Store
	nc    *nats.Conn
	log   *slog.Logger
	now   func() time.Time
}

// New returns a Recorder.
func New(st *store.Store, nc *nats.Conn, log *slog.Logger) *Recorder {
	return &Recorder{store: st, nc: nc, log: log, now: time.Now}
}

// Run subscribes until ctx ends. Gateways unseen for a day are forgotten.
func (r *Recorder) Run(ctx context.Context) error {
	ch := make(chan *nats.Msg, 1024)
	sub, err := r.nc.ChanSubscribe(wire.StatusWildcard, ch)
	if err != nil {
		return fmt.Errorf("fleet: subscribe: %w", err)
	}
	defer sub.Unsubscribe() //nolint:errcheck // connection closes anyway
	purge := time.NewTicker(time.Hour)
	defer purge.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-purge.C:
			if err := r.store.ForgetGateways(ctx, r.now().Add(-24*time.Hour)); err != nil {
				r.log.Warn("fleet purge failed", "error", err)
			}
		case m := <-ch:
			if err := r.record(ctx, m.Data); err != nil {
				r.log.Warn("heartbeat dropped", "subject", m.Subject, "error", err)
			}
		}
	}
}

func (r *Recorder) record(ctx context.Context, data []byte) error {
	var st gatehousev1.GatewayStatus
	if err := proto.Unmarshal(data, &st); err != nil {
		return err
	}
	if st.GatewayId == "" || wire.ValidRegion(st.Region) != nil {
		return fmt.Errorf("malformed heartbeat")
	}
	h := store.GatewayHeartbeat{GatewayID: st.GatewayId, Region: st.Region, BuildVersion: st.BuildVersion,
		Capability: int32(st.Capability), Ready: st.Ready, InFlight: st.InFlight, SeenAt: r.now()}
	if st.StartedAtUnixMs > 0 {
		h.StartedAt = time.UnixMilli(st.StartedAtUnixMs)
	}
	for _, o := range st.Orgs {
		h.Orgs = append(h.Orgs, store.GatewayOrgState{OrgID: o.OrgId, AppliedEpoch: o.AppliedEpoch, AppliedVersion: o.AppliedVersion,
			AppliedSHA256: o.AppliedSha256, RejectedVersion: o.RejectedVersion, RejectedReason: o.RejectedReason})
	}
	return r.store.RecordHeartbeat(ctx, h)
}
