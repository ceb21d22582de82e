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
	"strings"
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

// JetStream's refusals of a stream bound it cannot reserve: storage resources
// exceeded (one server, or the account's limits), insufficient resources, and, in a
// cluster, no peers with room ("insufficient storage").
const (
	errCodeStorageExceeded    jetstream.ErrorCode = 10047
	errCodeInsufficient       jetstream.ErrorCode = 10023
	errCodeClusterNoPeers     jetstream.ErrorCode = 10005
	clusterNoStorageSubstring                     = "insufficient storage"
)

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

// UsageStreamConfig is the usage stream, bounded in bytes and kept only until
// ingested: the control plane purges what its consumer has acknowledged (see
// usageingest), so the stream holds the backlog, not the history (an earlier
// release kept every batch for 7 days and dropped older ones, ingested or not). A
// full stream refuses new batches (DiscardNew) rather than dropping old ones: the
// gateways keep refused batches in their spools and send them again. The retention
// stays "limits" — a work queue would need the stream recreated, which cannot be
// done without a window where acknowledged publishes are lost.
func UsageStreamConfig(maxBytes int64) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        wire.UsageStream,
		Description: "Gatehouse usage batches from every gateway, until ingested",
		Subjects:    []string{wire.UsageSubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxBytes:    maxBytes,
		Discard:     jetstream.DiscardNew,
		Duplicates:  2 * time.Minute,
	}
}

// ensureUsage creates or updates the usage stream. When JetStream cannot reserve
// maxBytes, the bound is halved (down to minUsageMaxBytes) and the one taken logged.
func ensureUsage(ctx context.Context, js jetstream.JetStream, maxBytes int64, log *slog.Logger) (jetstream.Stream, error) {
	cfg := UsageStreamConfig(maxBytes)
	// A stream made a work queue by a build of this release's development keeps that
	// retention (JetStream cannot change it in place); it is purged all the same.
	if s, err := js.Stream(ctx, wire.UsageStream); err == nil && s.CachedInfo().Config.Retention == jetstream.WorkQueuePolicy {
		cfg.Retention = jetstream.WorkQueuePolicy
	} else if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, err
	}
	for {
		s, err := js.CreateOrUpdateStream(ctx, cfg)
		if err == nil {
			if cfg.MaxBytes != maxBytes {
				log.Warn("usage stream bound lowered: JetStream has too little storage for the one asked",
					"asked_bytes", maxBytes, "max_bytes", cfg.MaxBytes)
			}
			return s, nil
		}
		if !noStorage(err) || cfg.MaxBytes/2 < minUsageMaxBytes {
			return nil, err
		}
		cfg.MaxBytes /= 2
	}
}

// noStorage reports whether err is JetStream refusing a stream for want of storage.
func noStorage(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case errCodeStorageExceeded, errCodeInsufficient:
		return true
	case errCodeClusterNoPeers:
		return strings.Contains(apiErr.Description, clusterNoStorageSubstring)
	}
	return false
}
