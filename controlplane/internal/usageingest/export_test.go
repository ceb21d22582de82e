package usageingest

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

// PurgeAcked exposes purgeAcked to the tests.
func (in *Ingester) PurgeAcked(ctx context.Context, cons jetstream.Consumer, purged uint64) uint64 {
	return in.purgeAcked(ctx, cons, purged)
}
