// Package logwriter buffers the gateway's log lines and writes them in batches, so
// that logging a line per request (the access log) costs no system call on the
// request's path. Every write it makes holds whole lines, so other writers of the
// same file (another logger, the Go runtime) never split one.
//
// It does not make lines survive a crash of the process: up to one flush interval
// of lines (100 ms by default) is lost when the process dies without Close.
package logwriter

import (
	"io"
	"sync"
	"time"
)

// maxBuffered makes a write flush right away once this much is waiting.
const maxBuffered = 64 << 10

// Writer is an io.Writer for line-oriented loggers (slog handlers write one record,
// ending in a newline, per call).
type Writer struct {
	out      io.Writer
	interval time.Duration

	mu     sync.Mutex
	buf    []byte
	err    error
	closed bool

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// New returns a Writer that writes to out every interval (and whenever 64 KiB are
// waiting). Close flushes and stops it.
func New(out io.Writer, interval time.Duration) *Writer {
	w := &Writer{out: out, interval: interval, buf: make([]byte, 0, maxBuffered),
		stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	return w
}

// Write keeps p for the next flush. It never fails: the error of a flush is
// reported by the next Flush or Close.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	if len(w.buf)+len(p) > maxBuffered && len(w.buf) > 0 {
		w.flushLocked()
	}
	w.buf = append(w.buf, p...)
	if w.closed {
		w.flushLocked()
	}
	w.mu.Unlock()
	return len(p), nil
}

// Flush writes what is waiting.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
	err := w.err
	w.err = nil
	return err
}

// flushLocked writes the buffer. Holding the lock across the write keeps lines in
// order; writes are rare (every interval) and short.
func (w *Writer) flushLocked() {
	if len(w.buf) == 0 {
		return
	}
	if _, err := w.out.Write(w.buf); err != nil && w.err == nil {
		w.err = err
	}
	w.buf = w.buf[:0]
	if cap(w.buf) > 4*maxBuffered {
		w.buf = make([]byte, 0, maxBuffered) // one huge line must not pin its buffer
	}
}

func (w *Writer) loop() {
	defer close(w.done)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = w.Flush()
		case <-w.stop:
			return
		}
	}
}

// Close flushes and stops the periodic flushes. Writes after Close are written at
// once.
func (w *Writer) Close() error {
	w.once.Do(func() {
		close(w.stop)
		<-w.done
	})
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	return w.Flush()
}
