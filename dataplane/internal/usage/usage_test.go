package usage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/fakecp"
)

type recorder struct {
	*Recorder
	stop func()
}

func newRecorder(t *testing.T, cp *fakecp.CP, dir string, mutate func(*Config)) *recorder {
	t.Helper()
	nc, err := nats.Connect(cp.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.RetryOnFailedConnect(true), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	cfg := Config{
		Conn: nc, Region: "eu-test", GatewayID: "gw-1", SpoolDir: dir,
		FlushInterval: 20 * time.Millisecond, PublishTimeout: time.Second,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer: prometheus.NewRegistry(),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = r.Run(ctx) })
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return &recorder{Recorder: r, stop: stop}
}

func emit(r *Recorder, org string, n int) []string {
	ids := make([]string, n)
	for i := range n {
		ev := &gatehousev1.UsageEvent{OrgId: org, Endpoint: "chat.completions", StatusCode: 200, PromptTokens: int64(i)}
		r.Emit(ev)
		ids[i] = ev.EventId
	}
	return ids
}

// delivered waits until the stream holds exactly the wanted events, each once, in
// batches of at most max events with distinct batch ids.
func delivered(t *testing.T, cp *fakecp.CP, want []string, max int) {
	t.Helper()
	fakecp.Eventually(t, 10*time.Second, func() error {
		batches, err := cp.UsageBatches()
		if err != nil {
			return err
		}
		seenBatch := map[string]bool{}
		seen := map[string]int{}
		total := 0
		for _, b := range batches {
			if seenBatch[b.BatchId] {
				return fmt.Errorf("batch %s stored twice", b.BatchId)
			}
			seenBatch[b.BatchId] = true
			if len(b.Events) > max {
				return fmt.Errorf("batch of %d events, max %d", len(b.Events), max)
			}
			if b.GatewayId != "gw-1" || b.Region != "eu-test" {
				return fmt.Errorf("batch from %s/%s", b.GatewayId, b.Region)
			}
			for _, ev := range b.Events {
				if ev.OrgId != b.OrgId {
					return fmt.Errorf("event of org %s in batch of %s", ev.OrgId, b.OrgId)
				}
				if ev.GatewayId != "gw-1" || ev.Region != "eu-test" {
					return fmt.Errorf("event not stamped: %v", ev)
				}
				seen[ev.EventId]++
				total++
			}
		}
		for _, id := range want {
			if seen[id] != 1 {
				return fmt.Errorf("event %s delivered %d times (%d events in %d batches)", id, seen[id], total, len(batches))
			}
		}
		if total != len(want) {
			return fmt.Errorf("%d events in stream, want %d", total, len(want))
		}
		return nil
	})
}

func spoolFiles(t *testing.T, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+spoolExt))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func TestBatchesArrive(t *testing.T) {
	t.Parallel()
	cp := fakecp.Start(t)
	r := newRecorder(t, cp, t.TempDir(), func(c *Config) { c.MaxBatch = 50 })
	want := append(emit(r.Recorder, "org-a", 120), emit(r.Recorder, "org-b", 7)...)
	delivered(t, cp, want, 50)
	// The stream holds a batch a moment before its publisher has the ack and counts it.
	fakecp.Eventually(t, 5*time.Second, func() error {
		if got := testutil.ToFloat64(r.metrics.published); got != float64(len(want)) {
			return fmt.Errorf("published metric = %v, want %d", got, len(want))
		}
		return nil
	})
}

// One event with strings that are not valid UTF-8 (protobuf refuses to encode them)
// must not cost the other events of its batch: the strings are repaired and counted,
// and every event arrives — published directly, and through the spool.
func TestInvalidUTF8DoesNotLoseTheBatch(t *testing.T) {
	t.Parallel()
	for _, viaSpool := range []bool{false, true} {
		t.Run(fmt.Sprintf("spool=%v", viaSpool), func(t *testing.T) {
			t.Parallel()
			cp := fakecp.Start(t)
			dir := t.TempDir()
			if viaSpool {
				cp.Stop()
			}
			r := newRecorder(t, cp, dir, nil)
			want := emit(r.Recorder, "org-a", 3)
			bad := &gatehousev1.UsageEvent{OrgId: "org-a", Model: "gpt\xff\xfe", Endpoint: "chat.completions",
				GuardrailEvents: []*gatehousev1.GuardrailEvent{{RuleId: "r\xc3", Texts: []string{"content", "x\x80y"}}}}
			r.Emit(bad)
			want = append(want, bad.EventId)
			want = append(want, emit(r.Recorder, "org-a", 2)...)
			if viaSpool {
				fakecp.Eventually(t, 5*time.Second, func() error {
					if spoolFiles(t, dir) == 0 {
						return errors.New("nothing spooled yet")
					}
					return nil
				})
				cp.Restart()
			}
			delivered(t, cp, want, 256)
			batches, err := cp.UsageBatches()
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range batches {
				for _, ev := range b.Events {
					if ev.EventId != bad.EventId {
						continue
					}
					g := ev.GuardrailEvents[0]
					if ev.Model != "gpt\uFFFD" || g.RuleId != "r\uFFFD" || g.Texts[0] != "content" || g.Texts[1] != "x\uFFFDy" {
						t.Errorf("repaired event = model %q, rule %q, texts %q", ev.Model, g.RuleId, g.Texts)
					}
				}
			}
			if got := testutil.ToFloat64(r.metrics.repaired); got < 3 {
				t.Errorf("repaired metric = %v, want at least 3", got)
			}
			if got := testutil.ToFloat64(r.metrics.dropped.WithLabelValues("spool_error")); got != 0 {
				t.Errorf("dropped metric = %v", got)
			}
		})
	}
}

// A batch over the server's message size limit (1 MiB here) is split until its
// parts fit, and an event too large to send even alone is dropped and counted:
// neither may be refused on every try, which from the spool would hold back every
// later batch. Published directly, and through the spool.
func TestOversizedBatchesAreSplit(t *testing.T) {
	t.Parallel()
	for _, viaSpool := range []bool{false, true} {
		t.Run(fmt.Sprintf("spool=%v", viaSpool), func(t *testing.T) {
			t.Parallel()
			cp := fakecp.Start(t)
			dir := t.TempDir()
			if viaSpool {
				cp.Stop()
			}
			r := newRecorder(t, cp, dir, func(c *Config) { c.FlushInterval = time.Hour })
			var want []string
			for i := range 5 {
				ev := &gatehousev1.UsageEvent{OrgId: "org-a", Model: strings.Repeat("m", 300<<10), Endpoint: "chat.completions", PromptTokens: int64(i)}
				r.Emit(ev)
				want = append(want, ev.EventId)
			}
			r.Emit(&gatehousev1.UsageEvent{OrgId: "org-a", Model: strings.Repeat("x", 2<<20), Endpoint: "chat.completions"})
			want = append(want, emit(r.Recorder, "org-a", 3)...)
			flush := func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				r.flush(ctx)
			}
			if viaSpool {
				flush()
				if n := spoolFiles(t, dir); n != 1 {
					t.Fatalf("spooled %d files, want 1", n)
				}
				cp.Restart()
				fakecp.Eventually(t, 5*time.Second, func() error {
					if !r.nc.IsConnected() {
						return errors.New("not reconnected")
					}
					return nil
				})
			}
			flush()
			delivered(t, cp, want, 256)
			if got := testutil.ToFloat64(r.metrics.dropped.WithLabelValues("too_large")); got != 1 {
				t.Errorf("dropped too_large = %v, want 1", got)
			}
			if n := spoolFiles(t, dir); n != 0 {
				t.Errorf("%d files left in the spool", n)
			}
		})
	}
}

func TestSpoolWhileNATSDown(t *testing.T) {
	t.Parallel()
	cp := fakecp.Start(t)
	dir := t.TempDir()
	r := newRecorder(t, cp, dir, nil)
	want := emit(r.Recorder, "org-a", 10)
	delivered(t, cp, want, 256)

	cp.Stop()
	// Emit must not wait for NATS: a thousand events queue at memory speed.
	done := make(chan struct{})
	var down []string
	go func() {
		defer close(done)
		down = append(emit(r.Recorder, "org-a", 500), emit(r.Recorder, "org-b", 500)...)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Emit blocked while NATS is down")
	}
	fakecp.Eventually(t, 5*time.Second, func() error {
		if got := testutil.ToFloat64(r.metrics.spooled); got != float64(len(down)) {
			return fmt.Errorf("%v events spooled, want %d", got, len(down))
		}
		return nil
	})
	if spoolFiles(t, dir) == 0 {
		t.Fatal("nothing in the spool directory")
	}

	cp.Restart()
	more := emit(r.Recorder, "org-b", 5)
	delivered(t, cp, append(append(want, down...), more...), 256)
	fakecp.Eventually(t, 5*time.Second, func() error {
		if n := spoolFiles(t, dir); n != 0 {
			return fmt.Errorf("%d files left in spool", n)
		}
		return nil
	})
}

func TestSpoolReplayedAfterRestart(t *testing.T) {
	t.Parallel()
	cp := fakecp.Start(t)
	dir := t.TempDir()

	// A gateway that shuts down while NATS is away spools its last events.
	cp.Stop()
	first := newRecorder(t, cp, dir, nil)
	want := emit(first.Recorder, "org-a", 300)
	first.stop()
	if spoolFiles(t, dir) == 0 {
		t.Fatal("shutdown did not spool pending events")
	}
	cp.Restart()

	// A batch that was published and also left in the spool (a crash between ack and
	// removal) is re-sent with the same id and stored once.
	sp, err := openSpool(dir, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	dup := &gatehousev1.UsageBatch{BatchId: NewUUID(), GatewayId: "gw-1", Region: "eu-test", OrgId: "org-c",
		Events: []*gatehousev1.UsageEvent{{EventId: NewUUID(), OrgId: "org-c", GatewayId: "gw-1", Region: "eu-test"}}}
	pub := newRecorder(t, cp, t.TempDir(), nil)
	if err := pub.publish(context.Background(), dup); err != nil {
		t.Fatal(err)
	}
	data, _, err := marshalBatch(dup)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.put(dup.BatchId, data); err != nil {
		t.Fatal(err)
	}

	second := newRecorder(t, cp, dir, nil)
	want = append(want, dup.Events[0].EventId)
	want = append(want, emit(second.Recorder, "org-a", 3)...)
	delivered(t, cp, want, 256)
}

func TestSpoolCapDropsAndCounts(t *testing.T) {
	t.Parallel()
	cp := fakecp.Start(t)
	cp.Stop()
	dir := t.TempDir()
	r := newRecorder(t, cp, dir, func(c *Config) { c.SpoolMaxBytes = 2000; c.MaxBatch = 10 })
	emit(r.Recorder, "org-a", 200)
	fakecp.Eventually(t, 5*time.Second, func() error {
		spooled := testutil.ToFloat64(r.metrics.spooled)
		dropped := testutil.ToFloat64(r.metrics.dropped.WithLabelValues("spool_full"))
		if spooled+dropped != 200 {
			return fmt.Errorf("spooled %v + dropped %v, want 200", spooled, dropped)
		}
		if dropped == 0 {
			return errors.New("nothing dropped beyond the cap")
		}
		return nil
	})
	var size int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		info, _ := e.Info()
		size += info.Size()
	}
	if size > 2000 {
		t.Errorf("spool holds %d bytes, cap 2000", size)
	}
}

func TestQueueBound(t *testing.T) {
	t.Parallel()
	cp := fakecp.Start(t)
	nc, err := nats.Connect(cp.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	// Not running: nothing drains the queue.
	r, err := New(Config{Conn: nc, Region: "eu-test", GatewayID: "gw-1", SpoolDir: t.TempDir(), MaxPending: 10,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	emit(r, "org-a", 15)
	if got := testutil.ToFloat64(r.metrics.dropped.WithLabelValues("queue_full")); got != 5 {
		t.Errorf("dropped = %v, want 5", got)
	}
}

func TestNewUUIDIsTimeOrderedVersion7(t *testing.T) {
	base := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	prev := ""
	for i := range 2000 {
		at := base.Add(time.Duration(i) * 300 * time.Microsecond)
		id := newUUIDAt(at)
		if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
			t.Fatalf("malformed uuid %q", id)
		}
		if id[14] != '7' {
			t.Fatalf("uuid %q is not version 7", id)
		}
		if v := id[19]; v != '8' && v != '9' && v != 'a' && v != 'b' {
			t.Fatalf("uuid %q has variant nibble %q, want RFC 9562", id, v)
		}
		hexMS := strings.ReplaceAll(id[:13], "-", "")
		ms, err := strconv.ParseUint(hexMS, 16, 64)
		if err != nil || int64(ms) != at.UnixMilli() {
			t.Fatalf("uuid %q carries ms %d (%v), want %d", id, ms, err, at.UnixMilli())
		}
		// 300 µs apart: the sub-millisecond bits order them even within one millisecond.
		if prev != "" && id <= prev {
			t.Fatalf("uuid %q made after %q sorts before it", id, prev)
		}
		if seen[id] {
			t.Fatalf("duplicate uuid %q", id)
		}
		seen[id], prev = true, id
	}
	// Ids made in the same instant still differ (62 random bits).
	if a, b := newUUIDAt(base), newUUIDAt(base); a == b {
		t.Fatalf("two ids at one instant are equal: %q", a)
	}
}

// TestSpoolWhileStreamFull: when the usage stream is full (the control plane bounds it
// and refuses new batches rather than dropping old ones), refused batches go to the
// spool and arrive, each event once, when the stream has room again.
func TestSpoolWhileStreamFull(t *testing.T) {
	t.Parallel()
	cp := fakecp.Start(t)
	ctx := context.Background()
	resize := func(maxBytes int64) {
		t.Helper()
		s, err := cp.JS.Stream(ctx, wire.UsageStream)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		cfg.MaxBytes, cfg.Discard = maxBytes, jetstream.DiscardNew
		if _, err := cp.JS.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	resize(4 << 10)
	dir := t.TempDir()
	r := newRecorder(t, cp, dir, nil)
	var want []string
	fakecp.Eventually(t, 10*time.Second, func() error {
		want = append(want, emit(r.Recorder, "org-a", 20)...)
		if testutil.ToFloat64(r.metrics.spooled) == 0 {
			return fmt.Errorf("nothing spooled yet after %d events", len(want))
		}
		return nil
	})
	if spoolFiles(t, dir) == 0 {
		t.Fatal("refused batches are not in the spool directory")
	}
	resize(-1)
	delivered(t, cp, want, 256)
	fakecp.Eventually(t, 5*time.Second, func() error {
		if n := spoolFiles(t, dir); n != 0 {
			return fmt.Errorf("%d files left in spool", n)
		}
		return nil
	})
}
