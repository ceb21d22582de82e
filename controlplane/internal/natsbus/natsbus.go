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

// Ensure creates or updates the config bucket and the usage stream.
func Ensure(ctx context.Context, js jetstream.JetStream) (Resources, error) {
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
	usage, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        wire.UsageStream,
		Description: "Gatehouse usage batches from every gateway",
		Subjects:    []string{wire.UsageSubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      7 * 24 * time.Hour,
		Duplicates:  2 * time.Minute,
	})
	if err != nil {
		return Resources{}, fmt.Errorf("ensure usage stream: %w", err)
	}
	return Resources{Config: kv, Usage: usage}, nil
}
