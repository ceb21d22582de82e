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

// TestUsageStreamIsBounded: the usage stream keeps batches without an age limit
// (the ingester purges what it acknowledged), and a full stream refuses new batches
// (the gateway spools them) instead of dropping old ones.
func TestUsageStreamIsBounded(t *testing.T) {
	t.Parallel()
	js, ctx := startJS(t, 0), ctxT(t)
	res, err := Ensure(ctx, js, EnsureOptions{UsageMaxBytes: minUsageMaxBytes})
	if err != nil {
		t.Fatal(err)
	}
	cfg := res.Usage.CachedInfo().Config
	if cfg.MaxBytes != minUsageMaxBytes || cfg.Discard != jetstream.DiscardNew || cfg.MaxAge != 0 || cfg.Duplicates != 2*time.Minute {
		t.Fatalf("usage stream config %+v", cfg)
	}
	subject := wire.UsageSubject("eu", "org-1")
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
	if kept == 0 || info.State.Msgs != kept || info.State.FirstSeq != 1 {
		t.Fatalf("full stream: %d batches from seq %d, want the %d published from seq 1", info.State.Msgs, info.State.FirstSeq, kept)
	}
}

// TestUsageStreamOfEarlierReleaseIsUpdated: the 7-day stream of an earlier release
// loses its age limit and gains the bound in place, every batch in it kept.
func TestUsageStreamOfEarlierReleaseIsUpdated(t *testing.T) {
	t.Parallel()
	js, ctx := startJS(t, 0), ctxT(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: wire.UsageStream, Subjects: []string{wire.UsageSubjects},
		Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy, MaxAge: 7 * 24 * time.Hour, Duplicates: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := js.Publish(ctx, wire.UsageSubject("eu", "org-1"), []byte("batch")); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Ensure(ctx, js, EnsureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := res.Usage.CachedInfo().Config
	if cfg.MaxAge != 0 || cfg.MaxBytes != DefaultUsageMaxBytes || cfg.Discard != jetstream.DiscardNew {
		t.Fatalf("earlier release's stream not updated: %+v", cfg)
	}
	if n := res.Usage.CachedInfo().State.Msgs; n != 3 {
		t.Fatalf("the stream holds %d batches after the update, want 3", n)
	}
}

// TestWorkQueueUsageStreamIsKept: a usage stream already made a work queue keeps
// that retention (JetStream refuses to change it) and gets the bound.
func TestWorkQueueUsageStreamIsKept(t *testing.T) {
	t.Parallel()
	js, ctx := startJS(t, 0), ctxT(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: wire.UsageStream, Subjects: []string{wire.UsageSubjects},
		Storage: jetstream.FileStorage, Retention: jetstream.WorkQueuePolicy}); err != nil {
		t.Fatal(err)
	}
	res, err := Ensure(ctx, js, EnsureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg := res.Usage.CachedInfo().Config; cfg.Retention != jetstream.WorkQueuePolicy || cfg.MaxBytes != DefaultUsageMaxBytes {
		t.Fatalf("work-queue stream: %+v", cfg)
	}
}

// TestNoStorage: the refusals that lower the bound, and only those.
func TestNoStorage(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&jetstream.APIError{ErrorCode: 10047, Description: "insufficient storage resources available"}, true},
		{&jetstream.APIError{ErrorCode: 10023, Description: "insufficient resources"}, true},
		{&jetstream.APIError{ErrorCode: 10005, Description: "insufficient storage resources for the stream"}, true},
		{&jetstream.APIError{ErrorCode: 10005, Description: "no suitable peers for placement"}, false},
		{&jetstream.APIError{ErrorCode: 10058, Description: "stream name already in use with a different configuration"}, false},
		{errors.New("insufficient storage"), false},
	} {
		if got := noStorage(c.err); got != c.want {
			t.Errorf("noStorage(%v) = %v, want %v", c.err, got, c.want)
		}
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
