package logwriter

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder records each write the Writer makes.
type recorder struct {
	mu     sync.Mutex
	writes []string
	fail   error
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, string(p))
	return len(p), r.fail
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.writes...)
}

func TestLinesArriveWholeInOrderAndInBatches(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	w := New(rec, time.Hour) // only size and Close flush here
	log := slog.New(slog.NewJSONHandler(w, nil))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				log.Info("llm request", "worker", g, "i", i, "pad", strings.Repeat("x", 40))
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	writes := rec.snapshot()
	if len(writes) < 2 || len(writes) > 100 {
		t.Fatalf("%d writes for 8000 lines: want a few batches", len(writes))
	}
	last := map[string]int{}
	lines := 0
	for _, wr := range writes {
		if !strings.HasSuffix(wr, "\n") || len(wr) > maxBuffered {
			t.Fatalf("a write of %d bytes split a line or overflowed", len(wr))
		}
		for _, line := range strings.Split(strings.TrimSuffix(wr, "\n"), "\n") {
			lines++
			var worker, i int
			if _, err := fmt.Sscanf(line[strings.Index(line, `"worker":`):], `"worker":%d,"i":%d`, &worker, &i); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			k := fmt.Sprint(worker)
			if prev, ok := last[k]; ok && i != prev+1 {
				t.Fatalf("worker %d: line %d after %d", worker, i, prev)
			}
			last[k] = i
		}
	}
	if lines != 8000 {
		t.Fatalf("%d lines, want 8000", lines)
	}
}

func TestPeriodicFlush(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	w := New(rec, 10*time.Millisecond)
	defer w.Close()
	fmt.Fprintln(w, "hello")
	deadline := time.Now().Add(5 * time.Second)
	for len(rec.snapshot()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the line was never flushed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := rec.snapshot(); got[0] != "hello\n" {
		t.Fatalf("got %q", got)
	}
}

func TestWritesAfterCloseAreImmediateAndErrorsReported(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	w := New(rec, time.Hour)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(w, "late")
	if got := rec.snapshot(); len(got) != 1 || got[0] != "late\n" {
		t.Fatalf("got %q", got)
	}
	rec.fail = errors.New("disk full")
	fmt.Fprintln(w, "lost")
	if err := w.Flush(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Flush = %v, want the failed write's error", err)
	}
	w2 := New(rec, time.Hour)
	fmt.Fprintln(w2, "x")
	if err := w2.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Close = %v, want the write error", err)
	}
}

func BenchmarkAccessLogLine(b *testing.B) {
	w := New(&bytes.Buffer{}, 100*time.Millisecond)
	defer w.Close()
	log := slog.New(slog.NewJSONHandler(w, nil))
	b.ReportAllocs()
	for b.Loop() {
		log.Info("llm request", "request_id", "abc", "status", 200)
	}
}
