// Package httpserver serves an http.Handler over HTTP/1.1 with as few goroutine
// wake-ups per request as it can: one goroutine per connection reads a request, runs
// the handler and writes the answer. A request whose handler returns within
// slowRequest (5 ms) starts no other goroutine and sets one read deadline (the idle
// one, while the connection waits for it), plus one to lift it if the body has to be
// read off the connection.
//
// Requests are parsed by net/http's http.ReadRequest, so the standard parser's checks
// (bad chunking, duplicate Content-Length, invalid header bytes) apply; this package
// adds those that net/http's server makes after parsing (Host, field names with
// spaces, 505 for other versions) and refuses a Transfer-Encoding sent with a
// Content-Length. Answers follow net/http's framing rules: a body that fits the 4 KiB
// buffer when the handler returns gets a Content-Length, a larger or flushed one is
// chunked (HTTP/1.1) or ends with the connection (HTTP/1.0); Date and a sniffed
// Content-Type are added; HEAD, 1xx, 204 and 304 answers carry no body. A test
// compares the answers with net/http's byte for byte, but for Date.
//
// A client that goes away cancels the request's context. A background read of the
// connection notices it; it starts once the request body has been read to its end
// and the handler has run for slowRequest (streams included: starting it at the
// first flush would wake another thread just as the first bytes go out). A handler
// quicker than that is not told the client left, and nor is one that never reads
// the body to its end; a failed write cancels the context too.
//
// Differences from net/http's server, besides what it does not do (TLS, HTTP/2,
// Hijack, response trailers, ReadTimeout and WriteTimeout, ConnState and context
// hooks; http.ServerContextKey is not set, http.LocalAddrContextKey is):
//   - Handlers may always read the body while writing (full duplex). An unread body
//     is dealt with after the handler returns: up to 256 KiB is read and dropped,
//     past that the connection closes. Request.Body.Close reads nothing.
//   - Answers up to 4 KiB get a Content-Length (net/http: up to 2 KiB).
//   - Transfer-Encoding with Content-Length is refused (net/http drops the length),
//     and so is Transfer-Encoding on HTTP/1.0 (net/http ignores it); so is an empty
//     Host on HTTP/1.1; an absolute URL without a Host header is
//     accepted. "PRI * HTTP/2.0" gets 505. A head with a line ending in a bare LF
//     or a folded line (obs-fold) is refused; net/http accepts both.
//   - 1xx answers are not sent to HTTP/1.0 clients.
//   - Error answers carry only the status text, with a Content-Length.
//   - A request read while Shutdown starts is answered (with Connection: close).
//   - http.MaxBytesReader cannot make the connection close; the unread rest of the
//     body follows the 256 KiB rule.
package httpserver

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/rawconn"
)

// Server serves HTTP/1.1 on the listeners given to Serve. Set its fields before the
// first Serve; the zero value serves http.DefaultServeMux without timeouts.
type Server struct {
	// Handler answers every request (http.DefaultServeMux if nil).
	Handler http.Handler
	// ReadHeaderTimeout bounds how long a request head may take to arrive, from
	// the connection's start (first request) or from the head's first byte (later
	// ones). Zero or negative: no limit.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds how long a keep-alive connection waits for its next
	// request. Zero or negative: no limit.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request head (http.DefaultMaxHeaderBytes if zero
	// or negative); a larger head is answered with 431.
	MaxHeaderBytes int
	// Logger receives handler panics and accept errors (slog.Default if nil).
	// Nothing logged is ever shown to a client.
	Logger *slog.Logger

	inShutdown atomic.Bool

	mu        sync.Mutex
	listeners map[*net.Listener]struct{}
	conns     map[*conn]struct{}
	// connGone is signalled (without blocking) whenever a connection ends during a
	// shutdown, so Shutdown can notice the last one without polling for it.
	connGone chan struct{}

	bufs sync.Pool // *connBufs
	wd   watchdog
}

// Serve accepts connections on l and serves each on its own goroutine. It closes l
// when it returns, and returns http.ErrServerClosed after Shutdown or Close.
func (s *Server) Serve(l net.Listener) error {
	defer l.Close()
	if !s.trackListener(&l, true) {
		return http.ErrServerClosed
	}
	defer s.trackListener(&l, false)

	var delay time.Duration
	for {
		rwc, err := l.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return http.ErrServerClosed
			}
			// EMFILE and the like pass; anything else ends Serve, as in net/http.
			var temp interface{ Temporary() bool }
			if !errors.As(err, &temp) || !temp.Temporary() {
				return err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.logger().Warn("http accept failed, retrying", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		c := newConn(s, rawconn.Wrap(rwc))
		if !s.trackConn(c, true) {
			rwc.Close()
			return http.ErrServerClosed
		}
		go c.serve()
	}
}

// Shutdown stops accepting, closes idle connections and waits until every active
// request has been answered (their connections close after the answer) or ctx is
// done, which it then returns. A connection that has not sent its first request
// counts as idle once it is five seconds old, as in net/http.
func (s *Server) Shutdown(ctx context.Context) error {
	s.inShutdown.Store(true)
	s.mu.Lock()
	err := s.closeListenersLocked()
	if s.connGone == nil {
		s.connGone = make(chan struct{}, 1)
	}
	gone := s.connGone
	s.mu.Unlock()

	poll := time.Millisecond
	timer := time.NewTimer(poll)
	defer timer.Stop()
	for {
		if s.closeIdleConns() {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-gone:
		case <-timer.C:
			poll = min(2*poll, 500*time.Millisecond)
			timer.Reset(poll)
		}
	}
}

// Close closes the listeners and every connection at once, active or not, without
// waiting for handlers to return.
func (s *Server) Close() error {
	s.inShutdown.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.closeListenersLocked()
	for c := range s.conns {
		c.state.Store(stateClosed)
		c.rwc.Close()
	}
	return err
}

func (s *Server) handler() http.Handler {
	if s.Handler == nil {
		return http.DefaultServeMux
	}
	return s.Handler
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

func (s *Server) maxHeaderBytes() int64 {
	if s.MaxHeaderBytes > 0 {
		return int64(s.MaxHeaderBytes)
	}
	return http.DefaultMaxHeaderBytes
}

func (s *Server) trackListener(l *net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.listeners, l)
		return true
	}
	if s.inShutdown.Load() {
		return false
	}
	if s.listeners == nil {
		s.listeners = map[*net.Listener]struct{}{}
	}
	s.listeners[l] = struct{}{}
	return true
}

func (s *Server) closeListenersLocked() error {
	var err error
	for l := range s.listeners {
		if cerr := (*l).Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// trackConn adds or removes c; adding fails once the server is shutting down.
func (s *Server) trackConn(c *conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, c)
		if s.connGone != nil {
			select {
			case s.connGone <- struct{}{}:
			default:
			}
		}
		return true
	}
	if s.inShutdown.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = map[*conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	return true
}

// closeIdleConns closes the idle connections and reports whether none is left.
func (s *Server) closeIdleConns() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	stale := time.Now().Add(-newConnGrace)
	for c := range s.conns {
		// The CAS decides the race with the connection's own goroutine, which
		// moves idle (or new) to active when the next request's first byte arrives.
		if c.state.CompareAndSwap(stateIdle, stateClosed) ||
			c.accepted.Before(stale) && c.state.CompareAndSwap(stateNew, stateClosed) {
			c.rwc.Close()
		}
	}
	// Closed connections leave the map when their goroutine ends.
	return len(s.conns) == 0
}

// newConnGrace is how long Shutdown lets a new connection send its first request.
const newConnGrace = 5 * time.Second
