// Package fakecp is a fake control plane for gateway tests: it runs an embedded NATS
// server with JetStream (store in a temporary directory), creates the config bucket and
// the USAGE stream as the real control plane does, publishes hand-built sealed snapshots
// and reads back the usage batches and heartbeats gateways send. It is only imported by
// tests; nothing in it mocks NATS.
package fakecp

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

// CP is a running fake control plane.
type CP struct {
	t    testing.TB
	dir  string
	port int
	srv  *server.Server

	// NC and JS are the control plane's own connection; they reconnect across Restart.
	NC *nats.Conn
	JS jetstream.JetStream
	// Keyring seals snapshots; KeysSpec is its form for --config-keys.
	Keyring  *wire.Keyring
	KeysSpec string

	mu       sync.Mutex
	versions map[string]uint64
}

// Option changes how Start sets things up.
type Option func(*options)

type options struct{ noBucket bool }

// WithoutBucket starts without the config bucket, as before a control plane's first run;
// call CreateBucket later.
func WithoutBucket() Option { return func(o *options) { o.noBucket = true } }

// Start runs a fake control plane for the life of the test.
func Start(t testing.TB, opts ...Option) *CP {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	kr, err := wire.NewKeyring("k1", key)
	if err != nil {
		t.Fatalf("fakecp: keyring: %v", err)
	}
	c := &CP{
		t:        t,
		dir:      t.TempDir(),
		port:     -1,
		Keyring:  kr,
		KeysSpec: "k1:" + base64.StdEncoding.EncodeToString(key),
		versions: map[string]uint64{},
	}
	c.startServer()
	t.Cleanup(c.Stop)

	nc, err := nats.Connect(c.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatalf("fakecp: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	c.NC = nc
	c.JS, err = jetstream.New(nc)
	if err != nil {
		t.Fatalf("fakecp: jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.JS.CreateStream(ctx, jetstream.StreamConfig{
		Name:       wire.UsageStream,
		Subjects:   []string{wire.UsageSubjects},
		Storage:    jetstream.FileStorage,
		Duplicates: 2 * time.Minute,
	}); err != nil {
		t.Fatalf("fakecp: create usage stream: %v", err)
	}
	if !o.noBucket {
		c.CreateBucket()
	}
	return c
}

func (c *CP) startServer() {
	c.t.Helper()
	srv, err := server.NewServer(&server.Options{
		ServerName: "fakecp",
		Host:       "127.0.0.1",
		Port:       c.port,
		JetStream:  true,
		StoreDir:   c.dir,
		NoLog:      true,
		NoSigs:     true,
	})
	if err != nil {
		c.t.Fatalf("fakecp: new server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		c.t.Fatal("fakecp: server not ready")
	}
	c.srv = srv
	c.port = srv.Addr().(*net.TCPAddr).Port
}

// URL is the NATS URL gateways connect to; it stays the same across Restart.
func (c *CP) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", c.port) }

// Stop shuts the NATS server down, keeping its store.
func (c *CP) Stop() {
	if c.srv != nil {
		c.srv.Shutdown()
		c.srv.WaitForShutdown()
		c.srv = nil
	}
}

// Restart starts the NATS server again on the same port and store, and waits until
// JetStream answers.
func (c *CP) Restart() {
	c.t.Helper()
	c.Stop()
	c.startServer()
	Eventually(c.t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.JS.KeyValue(ctx, wire.ConfigBucket)
		return err
	})
}

// CreateBucket creates the config bucket.
func (c *CP) CreateBucket() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:  wire.ConfigBucket,
		History: 5,
		Storage: jetstream.FileStorage,
	}); err != nil {
		c.t.Fatalf("fakecp: create bucket: %v", err)
	}
}

func (c *CP) kv() jetstream.KeyValue {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := c.JS.KeyValue(ctx, wire.ConfigBucket)
	if err != nil {
		c.t.Fatalf("fakecp: open bucket: %v", err)
	}
	return kv
}

// Publish seals snap for region under the next version of its org (epoch 1) and puts
// it in the bucket. It returns the meta it used.
func (c *CP) Publish(region string, snap *gatehousev1.Snapshot) *gatehousev1.SnapshotMeta {
	c.t.Helper()
	orgID := snap.GetOrg().GetId()
	c.mu.Lock()
	c.versions[region+"/"+orgID]++
	v := c.versions[region+"/"+orgID]
	c.mu.Unlock()
	meta := &gatehousev1.SnapshotMeta{
		OrgId:                orgID,
		Region:               region,
		Epoch:                1,
		Version:              v,
		BuiltAtUnixMs:        time.Now().UnixMilli(),
		MinGatewayCapability: wire.Capability,
	}
	c.PublishMeta(wire.ConfigKey(region, orgID), meta, snap)
	return meta
}

// PublishMeta seals snap with meta as given (its sha256 is filled in) and puts it under key.
func (c *CP) PublishMeta(key string, meta *gatehousev1.SnapshotMeta, snap *gatehousev1.Snapshot) {
	c.t.Helper()
	c.PutRaw(key, c.Seal(meta, snap))
}

// Seal returns the envelope bytes for snap under meta (its sha256 is filled in).
func (c *CP) Seal(meta *gatehousev1.SnapshotMeta, snap *gatehousev1.Snapshot) []byte {
	c.t.Helper()
	body, sum, err := wire.MarshalSnapshot(snap)
	if err != nil {
		c.t.Fatalf("fakecp: %v", err)
	}
	meta.Sha256 = sum
	sealed, err := c.Keyring.Seal(meta, body)
	if err != nil {
		c.t.Fatalf("fakecp: %v", err)
	}
	return sealed
}

// PutRaw puts value under key as it is.
func (c *CP) PutRaw(key string, value []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.kv().Put(ctx, key, value); err != nil {
		c.t.Fatalf("fakecp: put %s: %v", key, err)
	}
}

// Value returns the raw (sealed) value of the org's entry for region, as gateways
// receive it.
func (c *CP) Value(region, orgID string) []byte {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := c.kv().Get(ctx, wire.ConfigKey(region, orgID))
	if err != nil {
		c.t.Fatalf("fakecp: get %s/%s: %v", region, orgID, err)
	}
	return e.Value()
}

// Delete deletes the org's entry for region.
func (c *CP) Delete(region, orgID string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.kv().Delete(ctx, wire.ConfigKey(region, orgID)); err != nil {
		c.t.Fatalf("fakecp: delete: %v", err)
	}
}

// UsageBatches returns every batch in the USAGE stream, in stream order.
func (c *CP) UsageBatches() ([]*gatehousev1.UsageBatch, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := c.JS.Stream(ctx, wire.UsageStream)
	if err != nil {
		return nil, fmt.Errorf("usage stream: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("usage stream: %w", err)
	}
	var out []*gatehousev1.UsageBatch
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("usage stream: get %d: %w", seq, err)
		}
		var b gatehousev1.UsageBatch
		if err := proto.Unmarshal(msg.Data, &b); err != nil {
			return nil, fmt.Errorf("usage stream: decode %d: %w", seq, err)
		}
		if id := msg.Header.Get(jetstream.MsgIDHeader); id != b.BatchId {
			return nil, fmt.Errorf("usage stream: message %d has Nats-Msg-Id %q, batch id %q", seq, id, b.BatchId)
		}
		if want := wire.UsageSubject(b.Region, b.OrgId); msg.Subject != want {
			return nil, fmt.Errorf("usage stream: batch on %q, want %q", msg.Subject, want)
		}
		out = append(out, &b)
	}
	return out, nil
}

// NewKey returns a fresh key string with the given 12-character id, and its SHA-256 as
// the snapshot carries it.
func NewKey(id string) (token string, sum []byte) {
	var b [24]byte
	_, _ = rand.Read(b[:])
	token = "gate_" + id + "_" + strings.TrimRight(base64.RawURLEncoding.EncodeToString(b[:]), "=")
	h := sha256.Sum256([]byte(token))
	return token, h[:]
}

// Eventually calls f until it returns nil, failing the test with f's last error when
// d passes first.
func Eventually(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	wait := time.Millisecond
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %s: %v", d, err)
		}
		time.Sleep(wait)
		wait = min(wait*2, 50*time.Millisecond)
	}
}
