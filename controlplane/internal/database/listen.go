package database

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Listen LISTENs on channel on a dedicated connection until ctx ends and signals out
// (without blocking, coalescing) for each notification, so changes made on another
// replica are seen at once. It reconnects after errors.
func Listen(ctx context.Context, pool *pgxpool.Pool, channel string, out chan<- struct{}, log *slog.Logger) {
	for ctx.Err() == nil {
		err := func() error {
			conn, err := pool.Acquire(ctx)
			if err != nil {
				return err
			}
			defer conn.Release()
			if _, err := conn.Exec(ctx, "listen "+channel); err != nil {
				return err
			}
			for {
				if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
					return err
				}
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}()
		if ctx.Err() != nil {
			return
		}
		log.Warn("listen interrupted", "channel", channel, "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
