// Package h1transport is the gateway's HTTP/1.1 client transport for plain-http
// upstreams (vLLM, TGI, Ollama and other providers on the local network, and the
// demo upstream): an http.RoundTripper that writes the request and reads the answer
// on the caller's goroutine, over a pool of keep-alive connections.
//
// net/http's Transport hands every exchange to two goroutines of the connection
// (writeLoop and readLoop) and back, which costs the gateway several wake-ups and
// context switches a request; here the caller does the work itself and a
// connection is only touched by the request that holds it. Cancellation comes from
// the request's context: when it ends, the connection's deadline is set in the past,
// which unblocks any read or write, and the connection is discarded.
//
// It does not speak HTTP/2, TLS or proxies: https upstreams (where HTTP/2 multiplexes
// streams over one connection) and proxied requests go to the Fallback transport.
// It does not follow redirects or decompress. A reused connection is checked before
// use (always for a request that cannot be replayed, else after 100 ms idle), and a
// request that fails on one is tried once more on a fresh connection only when it
// cannot have reached the upstream (not a byte was written) or may safely be sent
// twice (GET, HEAD, OPTIONS, TRACE, or an Idempotency-Key), as in net/http.
package h1transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/h1head"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/rawconn"
)

// Options configure a Transport. Zero values take the defaults.
type Options struct {
	// Fallback carries what this transport does not: https, and every request when
	// an HTTP proxy is configured in the environment. Required.
	Fallback http.RoundTripper
	// DialContext opens connections (default: a net.Dialer with a 10 s timeout and
	// 30 s TCP keep-alive).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxIdlePerHost bounds the idle connections kept per upstream (default 512).
	MaxIdlePerHost int
	// IdleTimeout closes connections idle longer than this (default 90 s).
	IdleTimeout time.Duration
	// ReadBufferSize is each connection's read buffer (default 4 KiB).
	ReadBufferSize int
}

// Transport is an http.RoundTripper for plain-http upstreams. It is safe for
// concurrent use.
type Transport struct {
	fallback http.RoundTripper
	dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle  int
	idleFor  time.Duration
	readBuf  int
	proxied  bool // an HTTP proxy is configured: plain http goes to the fallback too

	mu        sync.Mutex
	idle      map[string][]*conn // per host:port, most recently used last
	lastSweep time.Time
	now       func() time.Time
}

// New returns a Transport.
func New(o Options) (*Transport, error) {
	if o.Fallback == nil {
		return nil, errors.New("h1transport: a fallback transport is required")
	}
	if o.DialContext == nil {
		o.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	if o.MaxIdlePerHost <= 0 {
		o.MaxIdlePerHost = 512
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 90 * time.Second
	}
	if o.ReadBufferSize <= 0 {
		o.ReadBufferSize = 4 << 10
	}
	return &Transport{
		fallback: o.Fallback,
		dial:     o.DialContext,
		maxIdle:  o.MaxIdlePerHost,
		idleFor:  o.IdleTimeout,
		readBuf:  o.ReadBufferSize,
		proxied:  os.Getenv("HTTP_PROXY") != "" || os.Getenv("http_proxy") != "",
		idle:     map[string][]*conn{},
		now:      time.Now,
	}, nil
}

// conn is one upstream connection. It belongs to the pool or to one request.
type conn struct {
	nc       net.Conn
	br       *bufio.Reader
	addr     string
	reused   bool
	idleFrom time.Time
	wrote    int64   // bytes of the current request written to nc
	peek     *peeker // for alive, made on first use
}

// Write writes to the connection, counting what went out: a request that failed
// before its first byte left can be sent again.
func (c *conn) Write(p []byte) (int, error) {
	n, err := c.nc.Write(p)
	c.wrote += int64(n)
	return n, err
}

// ErrHeaderInjection is returned for a request whose method, target, Host, header
// names or values hold bytes that could end the field or line they are in (line
// breaks, other control bytes, or separators where only a token may be).
var ErrHeaderInjection = errors.New("h1transport: invalid byte in the request head")

// errStaleConn marks a reused connection the upstream had closed: the write failed
// with a reset or a broken pipe, or the answer ended before its first byte. Servers
// usually close idle connections before reading from them, but the upstream may
// also have read the request and died before answering: only a request of which
// nothing was written (unsent), or one that may be sent twice, is tried again.
type errStaleConn struct {
	err    error
	unsent bool
}

func (e errStaleConn) Error() string { return e.err.Error() }
func (e errStaleConn) Unwrap() error { return e.err }

func isConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// writeBuffers are shared by all connections: a request is written in one go.
var writeBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}

// RoundTrip sends req and returns the response head; the body is read from the
// connection as the caller reads it. Closing the body before its end discards the
// connection.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil || req.URL.Scheme != "http" || t.proxied {
		return t.fallback.RoundTrip(req)
	}
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	ctx := req.Context()
	body := req.Body
	replay := replayable(req)
	for try := 0; ; try++ {
		c, err := t.get(ctx, addr, !replay)
		if err != nil {
			closeBody(body)
			return nil, err
		}
		resp, err := t.exchange(ctx, c, req, body)
		if err == nil {
			return resp, nil
		}
		var stale errStaleConn
		if try == 0 && c.reused && errors.As(err, &stale) && (stale.unsent || replay) && ctx.Err() == nil {
			if body == nil || body == http.NoBody {
				continue
			}
			if req.GetBody != nil {
				if body, err = req.GetBody(); err == nil {
					continue
				}
			}
		}
		return nil, err
	}
}

// replayable reports whether req may be sent twice, with net/http's rule: an
// idempotent method, or an Idempotency-Key, and a body that can be sent again.
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, ok := req.Header["Idempotency-Key"]
	if !ok {
		_, ok = req.Header["X-Idempotency-Key"]
	}
	return ok
}

func closeBody(body io.ReadCloser) {
	if body != nil {
		_ = body.Close()
	}
}

// exchange writes req on c and reads the response head. On error c is closed.
func (t *Transport) exchange(ctx context.Context, c *conn, req *http.Request, body io.ReadCloser) (*http.Response, error) {
	// Until the response body is done, the end of ctx breaks the connection's I/O.
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		_ = c.nc.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if err := writeRequest(c, req, body); err != nil {
		if isConnReset(err) {
			err = errStaleConn{err: err, unsent: c.wrote == 0}
		}
		return fail(err)
	}
	// The first byte of the answer tells a stale connection from a failed answer.
	if _, err := c.br.Peek(1); err != nil {
		if err == io.EOF || isConnReset(err) {
			err = errStaleConn{err: err}
		}
		return fail(fmt.Errorf("read response: %w", err))
	}
	for n1xx := 0; ; n1xx++ {
		// The head as received, for what http.ReadResponse hides (it drops a
		// Content-Length sent with a Transfer-Encoding); nil if not all buffered.
		head, _ := c.br.Peek(c.br.Buffered())
		if n := h1head.End(head); n >= 0 {
			head = head[:n]
		} else {
			head = nil
		}
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			return fail(fmt.Errorf("read response: %w", err))
		}
		// 1xx answers (100 Continue, 103 Early Hints) precede the real one.
		if resp.StatusCode >= 100 && resp.StatusCode <= 199 && resp.StatusCode != http.StatusSwitchingProtocols {
			if n1xx == max1xx {
				return fail(errors.New("read response: too many 1xx answers"))
			}
			continue
		}
		reuse := !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols && !oddFraming(resp, head)
		resp.Body = &respBody{rc: resp.Body, c: c, t: t, stop: stop, reuse: reuse}
		return resp, nil
	}
}

// max1xx bounds the informational answers skipped before the final one, as in
// net/http.
const max1xx = 5

// oddFraming reports whether the answer's framing is one a server must not send
// (RFC 9112 section 6): a Transfer-Encoding with a Content-Length, or on HTTP/1.0,
// or a body announced on a 204; or a field name with a space. http.ReadResponse picks one reading; the upstream,
// or a proxy on the way, may have meant another, and the bytes after the answer
// would be read as the next one. The connection is not reused.
func oddFraming(resp *http.Response, head []byte) bool {
	for k := range resp.Header {
		if strings.IndexByte(k, ' ') >= 0 {
			// "Transfer-Encoding : chunked" is no field to http.ReadResponse,
			// but may be one to a proxy on the way.
			return true
		}
	}
	is11 := resp.ProtoAtLeast(1, 1)
	if len(resp.TransferEncoding) == 0 && resp.StatusCode != http.StatusNoContent && is11 {
		return false // the common case: no need to look at the head
	}
	if head == nil {
		return true // not seen whole: be safe
	}
	te := h1head.HasField(head, "Transfer-Encoding")
	cl := h1head.HasField(head, "Content-Length")
	return te && (cl || !is11) || resp.StatusCode == http.StatusNoContent && (te || cl)
}

// writeRequest writes req's head and body (req.Body or its replay) through a pooled
// buffer, and closes body.
func writeRequest(c *conn, req *http.Request, body io.ReadCloser) error {
	if body != nil {
		defer body.Close()
	}
	c.wrote = 0
	bw := writeBuffers.Get().(*bufio.Writer)
	bw.Reset(c)
	defer func() {
		bw.Reset(nil)
		writeBuffers.Put(bw)
	}()
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	// The URL's RawQuery and Opaque are written as they are: a space or a line
	// break there would end the request line early.
	target := req.URL.RequestURI()
	if !isToken(method) || !isVisible(host) || !isVisible(target) {
		return ErrHeaderInjection
	}
	bw.WriteString(method)
	bw.WriteByte(' ')
	bw.WriteString(target)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	for k, vs := range req.Header {
		if ownField(k) {
			continue // written from the request's fields
		}
		if !isToken(k) {
			return ErrHeaderInjection
		}
		for _, v := range vs {
			if !isFieldValue(v) {
				return ErrHeaderInjection
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		bw.WriteString("User-Agent: gatehouse\r\n")
	}
	if req.Close {
		bw.WriteString("Connection: close\r\n")
	}
	chunked := false
	switch {
	case body == nil || body == http.NoBody:
		if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
			bw.WriteString("Content-Length: 0\r\n")
		}
	case req.ContentLength > 0:
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(req.ContentLength, 10))
		bw.WriteString("\r\n")
	default:
		chunked = true
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	bw.WriteString("\r\n")
	if body != nil && body != http.NoBody {
		var err error
		if chunked {
			err = writeChunked(bw, body)
		} else {
			var n int64
			n, err = io.Copy(bw, io.LimitReader(body, req.ContentLength))
			if err == nil && n != req.ContentLength {
				err = fmt.Errorf("h1transport: request body is %d bytes, Content-Length %d", n, req.ContentLength)
			}
		}
		if err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ownField reports whether k names a field written from the request's fields, in
// any case: a "content-length" set straight into the map must not frame the body a
// second way.
func ownField(k string) bool {
	switch len(k) {
	case len("Host"):
		return strings.EqualFold(k, "Host")
	case len("Connection"):
		return strings.EqualFold(k, "Connection")
	case len("Content-Length"):
		return strings.EqualFold(k, "Content-Length")
	case len("Transfer-Encoding"):
		return strings.EqualFold(k, "Transfer-Encoding")
	}
	return false
}

// isToken reports whether s is an RFC 9110 token (a method or a field name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' {
			continue
		}
		if strings.IndexByte("!#$%&'*+-.^_`|~", b) < 0 {
			return false
		}
	}
	return true
}

// isVisible reports whether s is non-empty and has neither spaces nor control bytes.
func isVisible(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; b <= ' ' || b == 0x7f {
			return false
		}
	}
	return true
}

// isFieldValue reports whether s may be a field value: no control bytes but tab.
func isFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}

func writeChunked(bw *bufio.Writer, r io.Reader) error {
	buf := make([]byte, 8<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			bw.WriteString(strconv.FormatInt(int64(n), 16))
			bw.WriteString("\r\n")
			bw.Write(buf[:n])
			bw.WriteString("\r\n")
		}
		if err == io.EOF {
			_, werr := bw.WriteString("0\r\n\r\n")
			return werr
		}
		if err != nil {
			return err
		}
	}
}

// get returns an idle connection to addr that still looks alive, or dials one. With
// check, a reused connection is always peeked at: the request cannot be retried
// once written, so a connection the upstream just closed must not be taken.
func (t *Transport) get(ctx context.Context, addr string, check bool) (*conn, error) {
	now := t.now()
	for {
		t.mu.Lock()
		list := t.idle[addr]
		if len(list) == 0 {
			t.mu.Unlock()
			break
		}
		c := list[len(list)-1]
		list[len(list)-1] = nil
		t.idle[addr] = list[:len(list)-1]
		t.mu.Unlock()
		idle := now.Sub(c.idleFrom)
		if idle > t.idleFor {
			_ = c.nc.Close()
			continue
		}
		// Under load a connection comes back within milliseconds; one that sat
		// longer may have been closed by the upstream meanwhile.
		if (check || idle > 100*time.Millisecond) && !alive(c) {
			_ = c.nc.Close()
			continue
		}
		c.reused = true
		return c, nil
	}
	nc, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	nc = rawconn.Wrap(nc)
	return &conn{nc: nc, br: bufio.NewReaderSize(nc, t.readBuf), addr: addr}, nil
}

// put returns a connection whose exchange ended cleanly to the pool.
func (t *Transport) put(c *conn) {
	if c.br.Buffered() > 0 {
		// The upstream sent more than the answer: the connection is out of step.
		_ = c.nc.Close()
		return
	}
	now := t.now()
	c.idleFrom = now
	var stale []*conn
	t.mu.Lock()
	list := t.idle[c.addr]
	if len(list) >= t.maxIdle {
		t.mu.Unlock()
		_ = c.nc.Close()
		return
	}
	t.idle[c.addr] = append(list, c)
	if now.Sub(t.lastSweep) > t.idleFor {
		t.lastSweep = now
		stale = t.sweepLocked(now)
	}
	t.mu.Unlock()
	for _, s := range stale {
		_ = s.nc.Close()
	}
}

// sweepLocked removes connections idle for too long (oldest first in each list).
func (t *Transport) sweepLocked(now time.Time) []*conn {
	var stale []*conn
	for addr, list := range t.idle {
		n := 0
		for n < len(list) && now.Sub(list[n].idleFrom) > t.idleFor {
			n++
		}
		if n == 0 {
			continue
		}
		stale = append(stale, list[:n]...)
		if n == len(list) {
			delete(t.idle, addr)
			continue
		}
		t.idle[addr] = append(list[:0:0], list[n:]...)
	}
	return stale
}

// CloseIdleConnections closes every idle connection, the fallback's included.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*conn{}
	t.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			_ = c.nc.Close()
		}
	}
	if ci, ok := t.fallback.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// respBody is a response body read straight from the connection; at its end the
// connection goes back to the pool.
type respBody struct {
	rc    io.ReadCloser
	c     *conn
	t     *Transport
	stop  func() bool
	reuse bool
	mu    sync.Mutex
	done  bool
}

func (b *respBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil {
		b.finish(err == io.EOF)
	}
	return n, err
}

func (b *respBody) Close() error {
	b.finish(b.rc == http.NoBody)
	return nil
}

// finish releases the connection once: back to the pool when the body was read to
// its end and the connection may be reused, else closed.
func (b *respBody) finish(complete bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.done = true
	// stop reports false when ctx already ended: the deadline may be set.
	if b.stop() && complete && b.reuse {
		b.t.put(b.c)
		return
	}
	_ = b.c.nc.Close()
}
