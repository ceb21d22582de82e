package natsbus

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startJS runs an in-process nats-server with JetStream (maxStore bytes of file
// storage, 0 for the server's default) and returns a JetStream client.
func startJS(t *testing.T, maxStore int64) jetstream.JetStream {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), JetStreamMaxStore: maxStore, MaxPayload: MaxConfigValueBytes + 64*1024, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestUsageStreamIsABoundedWorkQueue: an ingested batch leaves the stream, and a full
// stream refuses new batches (the gateway spools them) instead of dropping old ones.
func TestUsageStreamIsABoundedWorkQueue(t *testing.T) {
	t.Parallel()
	js, ctx := startJS(t, 0), ctxT(t)
	res, err := Ensure(ctx, js, EnsureOptions{UsageMaxBytes: minUsageMaxBytes})
	if err != nil {
		t.Fatal(err)
	}
	cfg := res.Usage.CachedInfo().Config
	if cfg.Retention != jetstream.WorkQueuePolicy || cfg.MaxBytes != minUsageMaxBytes || cfg.Discard != jetstream.DiscardNew || cfg.MaxAge != 0 {
		t.Fatalf("usage stream config %+v", cfg)
	}
	subject := wire.UsageSubject("eu", "org-1")
	if _, err := js.Publish(ctx, subject, []byte("batch-1")); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, wire.UsageStream, jetstream.ConsumerConfig{Durable: "ingest", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := msg.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	if info, err := res.Usage.Info(ctx); err != nil || info.State.Msgs != 0 {
		t.Fatalf("after the ack the stream holds %d batches (%v), want 0", info.State.Msgs, err)
	}

	// Fill it: 1 MiB batches until one is refused; none of the kept ones goes.
	batch := bytes.Repeat([]byte("x"), 1<<20)
	kept := uint64(0)
	for {
		_, err := js.Publish(ctx, subject, batch)
		if err != nil {
			var apiErr *jetstream.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("publish to a full stream: %v, want JetStream's refusal", err)
			}
			break
		}
		if kept++; kept > 2*uint64(minUsageMaxBytes>>20) {
			t.Fatalf("%d MiB published into a stream bounded at %d MiB", kept, minUsageMaxBytes>>20)
		}
	}
	info, err := res.Usage.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if kept == 0 || info.State.Msgs != kept || info.State.FirstSeq != 2 {
		t.Fatalf("full stream: %d batches from seq %d, want the %d published from seq 2", info.State.Msgs, info.State.FirstSeq, kept)
	}
}

// TestUsageStreamOfEarlierReleaseIsReplacedOnceDrained: a limits-retention stream
// stays while it holds batches not yet acknowledged, and becomes the work queue once
// they are.
func TestUsageStreamOfEarlierReleaseIsReplacedOnceDrained(t *testing.T) {
	t.Parallel()
	js, ctx := startJS(t, 0), ctxT(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: wire.UsageStream, Subjects: []string{wire.UsageSubjects},
		Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy, MaxAge: 7 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, wire.UsageStream, jetstream.ConsumerConfig{Durable: "ingest", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, wire.UsageSubject("eu", "org-1"), []byte("batch-1")); err != nil {
		t.Fatal(err)
	}
	res, err := Ensure(ctx, js, EnsureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Usage.CachedInfo().Config.Retention; r != jetstream.LimitsPolicy {
		t.Fatalf("a stream with a batch not yet ingested became %v", r)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := msg.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err = Ensure(ctx, js, EnsureOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := res.Usage.CachedInfo().Config
	if cfg.Retention != jetstream.WorkQueuePolicy || cfg.MaxBytes != DefaultUsageMaxBytes || cfg.MaxAge != 0 {
		t.Fatalf("drained stream not replaced: %+v", cfg)
	}
	// Ensure again (every start): the work queue stays as it is.
	if res, err = Ensure(ctx, js, EnsureOptions{}); err != nil || res.Usage.CachedInfo().Config.Retention != jetstream.WorkQueuePolicy {
		t.Fatalf("second ensure: %v", err)
	}
}

// TestUsageStreamBoundFitsTheStorage: when JetStream cannot reserve the bound asked
// for, a smaller one is taken (halved until it fits), not a failure to start.
func TestUsageStreamBoundFitsTheStorage(t *testing.T) {
	t.Parallel()
	js, ctx := startJS(t, 200<<20), ctxT(t)
	var logs bytes.Buffer
	res, err := Ensure(ctx, js, EnsureOptions{UsageMaxBytes: 1 << 30, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Usage.CachedInfo().Config.MaxBytes; got != 128<<20 {
		t.Fatalf("max bytes %d, want %d", got, 128<<20)
	}
	if !bytes.Contains(logs.Bytes(), []byte("usage stream bound lowered")) {
		t.Fatalf("no warning logged: %s", logs.String())
	}
}
