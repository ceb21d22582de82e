package heartbeat

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/fakecp"
	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
)

// TestKickSendsAtOnce: with an hour-long interval, only the first heartbeat and the
// kicked ones arrive.
func TestKickSendsAtOnce(t *testing.T) {
	cp := fakecp.Start(t)
	nc, err := nats.Connect(cp.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var got atomic.Int32
	sub, err := nc.Subscribe(wire.StatusSubject("eu", "gw-1"), func(m *nats.Msg) {
		var st gatehousev1.GatewayStatus
		if proto.Unmarshal(m.Data, &st) == nil && st.GatewayId == "gw-1" {
			got.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe() //nolint:errcheck // test cleanup
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	status := func() *gatehousev1.GatewayStatus { return &gatehousev1.GatewayStatus{GatewayId: "gw-1", Region: "eu"} }
	p := New(nc, "eu", "gw-1", time.Hour, status, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx) //nolint:errcheck // ends with ctx
	wait := func(n int32) {
		t.Helper()
		fakecp.Eventually(t, 5*time.Second, func() error {
			if got.Load() < n {
				return context.DeadlineExceeded
			}
			return nil
		})
	}
	wait(1)
	p.Kick()
	wait(2)
	p.Kick()
	wait(3)
}
