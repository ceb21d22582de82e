// Package natsbus connects the control plane to NATS: it can run an embedded
// nats-server with JetStream (dev and single-node installs), and it declares the
// JetStream resources of the wire contract (config bucket, usage stream). It knows
// nothing about what flows through them.
package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// MaxConfigValueBytes is the config bucket's value size limit. Snapshots above it are
// refused before publishing.
const MaxConfigValueBytes = 1 << 20

// EmbeddedOptions configures an in-process nats-server.
type EmbeddedOptions struct {
	// Listen is host:port; port 0 picks a free one.
	Listen   string
	StoreDir string
}

// StartEmbedded starts an in-process nats-server with JetStream and returns it with
// its client URL.
func StartEmbedded(o EmbeddedOptions, log *slog.Logger) (*server.Server, string, error) {
	host, portStr, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, "", fmt.Errorf("embedded nats: listen %q: %w", o.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, "", fmt.Errorf("embedded nats: port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "gatehouse-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		MaxPayload: MaxConfigValueBytes + 64*1024,
		NoSigs:     true,
	})
	if err != nil {
		return nil, "", fmt.Errorf("embedded nats: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, "", errors.New("embedded nats: not ready after 10s")
	}
	log.Info("embedded nats started", "url", srv.ClientURL(), "store_dir", o.StoreDir)
	return srv, srv.ClientURL(), nil
}

// Connect dials NATS and keeps reconnecting forever.
func Connect(url, name string, log *slog.Logger) (*nats.Conn, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "error", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
	)
	if err != nil {
		return nil, fmt.Errorf("connect nats: %w", err)
	}
	return nc, nil
}

// Resources are the JetStream objects the control plane owns.
type Resources struct {
	Config jetstream.KeyValue
	Usage  jetstream.Stream
}

// DefaultUsageMaxBytes bounds the usage stream when EnsureOptions names no size.
const DefaultUsageMaxBytes int64 = 4 << 30

// minUsageMaxBytes is the smallest bound Ensure settles for when JetStream has too
// little storage for the one asked.
const minUsageMaxBytes int64 = 64 << 20

// errCodeStorageExceeded is JetStream's "insufficient storage resources available".
const errCodeStorageExceeded jetstream.ErrorCode = 10047

// EnsureOptions configures Ensure.
type EnsureOptions struct {
	// UsageMaxBytes bounds the usage stream's backlog (default DefaultUsageMaxBytes).
	UsageMaxBytes int64
	Log           *slog.Logger
}

// Ensure creates or updates the config bucket and the usage stream.
func Ensure(ctx context.Context, js jetstream.JetStream, o EnsureOptions) (Resources, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.UsageMaxBytes <= 0 {
		o.UsageMaxBytes = DefaultUsageMaxBytes
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:       wire.ConfigBucket,
		Description:  "Gatehouse config snapshots, one sealed value per region and org",
		History:      5,
		MaxValueSize: MaxConfigValueBytes,
		Storage:      jetstream.FileStorage,
	})
	if err != nil {
		return Resources{}, fmt.Errorf("ensure config bucket: %w", err)
	}
	usage, err := ensureUsage(ctx, js, o.UsageMaxBytes, o.Log)
	if err != nil {
		return Resources{}, fmt.Errorf("ensure usage stream: %w", err)
	}
	return Resources{Config: kv, Usage: usage}, nil
}

// UsageStreamConfig is the usage stream: a work queue — a batch leaves it once the
// control plane has written it to Postgres and acknowledged it — bounded in bytes.
// A full stream refuses new batches (DiscardNew) rather than dropping old ones: the
// gateways keep refused batches in their spools and send them again, so a long
// control-plane outage costs disk at the edges, never events.
func UsageStreamConfig(maxBytes int64) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        wire.UsageStream,
		Description: "Gatehouse usage batches from every gateway, until ingested",
		Subjects:    []string{wire.UsageSubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.WorkQueuePolicy,
		MaxBytes:    maxBytes,
		Discard:     jetstream.DiscardNew,
		Duplicates:  2 * time.Minute,
	}
}

// ensureUsage creates or updates the usage stream. A stream of an earlier release
// (limits retention: every batch kept for 7 days, unbounded in bytes) cannot change
// its retention in place: it is replaced once everything in it has been ingested,
// and left as it is, with a warning, until then. When JetStream cannot reserve
// maxBytes, the bound is halved (down to minUsageMaxBytes) and the one taken logged.
func ensureUsage(ctx context.Context, js jetstream.JetStream, maxBytes int64, log *slog.Logger) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, wire.UsageStream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
	case err != nil:
		return nil, err
	case s.CachedInfo().Config.Retention != jetstream.WorkQueuePolicy:
		drained, err := usageDrained(ctx, s)
		if err != nil {
			return nil, err
		}
		if !drained {
			log.Warn("usage stream still holds batches not yet ingested: it becomes a bounded work queue at a later start, once they are",
				"stream", wire.UsageStream)
			return s, nil
		}
		if err := js.DeleteStream(ctx, wire.UsageStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, err
		}
		log.Info("usage stream replaced by a bounded work queue (everything in it was ingested)", "stream", wire.UsageStream)
	}
	cfg := UsageStreamConfig(maxBytes)
	for {
		s, err := js.CreateOrUpdateStream(ctx, cfg)
		if err == nil {
			if cfg.MaxBytes != maxBytes {
				log.Warn("usage stream bound lowered: JetStream has too little storage for the one asked",
					"asked_bytes", maxBytes, "max_bytes", cfg.MaxBytes)
			}
			return s, nil
		}
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode != errCodeStorageExceeded || cfg.MaxBytes/2 < minUsageMaxBytes {
			return nil, err
		}
		cfg.MaxBytes /= 2
	}
}

// usageDrained reports whether every batch in a limits-retention usage stream has
// been acknowledged by its consumers (an empty stream is drained; a stream that holds
// batches and has no consumer is not).
func usageDrained(ctx context.Context, s jetstream.Stream) (bool, error) {
	info, err := s.Info(ctx)
	if err != nil {
		return false, err
	}
	if info.State.Msgs == 0 {
		return true, nil
	}
	if info.State.Consumers == 0 {
		return false, nil
	}
	names := s.ConsumerNames(ctx)
	for name := range names.Name() {
		c, err := s.Consumer(ctx, name)
		if err != nil {
			return false, err
		}
		ci := c.CachedInfo()
		if ci.NumPending > 0 || ci.NumAckPending > 0 || ci.NumRedelivered > 0 {
			return false, nil
		}
	}
	if err := names.Err(); err != nil {
		return false, err
	}
	return true, nil
}
