package httpserver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/h1head"
)

const (
	// bufSize is the size of each connection's read buffer, write buffer and
	// response body buffer.
	bufSize = 4 << 10
	// headSlack is read past MaxHeaderBytes before a head counts as too large, as
	// in net/http: the buffered reader reads ahead.
	headSlack = 4 << 10
	// maxDiscard is how much of an unread request body is read and dropped after
	// the handler returns to keep the connection; a larger rest closes it.
	maxDiscard = 256 << 10
	// slowRequest is how long a handler runs before a background read starts
	// watching for the client going away.
	slowRequest = 5 * time.Millisecond
	// lingerTime bounds how long a closing connection drains what the client still
	// sends, so that the kernel does not answer it with a reset that could destroy
	// the answer before the client has read it.
	lingerTime = 500 * time.Millisecond
)

// Connection states, for Shutdown.
const (
	stateNew    int32 = iota // accepted, first request not started
	stateActive              // reading or answering a request
	stateIdle                // between requests
	stateClosed              // closed by Shutdown or Close
)

// What the connection's read deadline is, so a deadline is set or cleared only when
// something is going to read the connection.
type readDeadline uint8

const (
	rdNone    readDeadline = iota // no deadline
	rdOurs                        // idle, head or abort deadline: clear before reading a body
	rdHandler                     // set by the handler through http.ResponseController
)

// Background read states, per request.
type bgState uint8

const (
	bgIdle    bgState = iota // not wanted yet
	bgWanted                 // wanted, waiting for the request body to be read
	bgRunning                // a goroutine reads the connection
	bgClosed                 // the handler returned
)

// aLongTimeAgo is a deadline in the past: setting it wakes a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

var (
	errHeadTooLarge = errors.New("request head too large")
	errHTTPVersion  = errors.New("unsupported HTTP version")
	errBadRequest   = errors.New("bad request")
)

type connBufs struct {
	br   *bufio.Reader
	bw   *bufio.Writer
	body [bufSize]byte
}

// conn is one client connection; serve runs its requests one after another.
type conn struct {
	srv        *Server
	rwc        net.Conn
	ctx        context.Context
	remoteAddr string
	accepted   time.Time
	state      atomic.Int32

	bufs *connBufs
	cr   connReader
	br   *bufio.Reader
	bw   *bufio.Writer
	werr error // first write error; the connection is done

	lastPOST bool
	rd       readDeadline // guarded by mu while a handler runs
	wdSet    bool         // the handler set a write deadline
	linger   bool         // close with lingerClose: the client may still be sending

	dateSec int64
	date    []byte
	dateBuf [len(http.TimeFormat)]byte
	scratch [24]byte

	bgDone chan struct{} // the background read ended

	mu       sync.Mutex
	bg       bgState
	bodyRead bool               // the request body has been read to its end
	cancel   context.CancelFunc // the request's context
}

func newConn(s *Server, rwc net.Conn) *conn {
	c := &conn{srv: s, rwc: rwc, accepted: time.Now()}
	c.remoteAddr = rwc.RemoteAddr().String()
	c.ctx = context.WithValue(context.Background(), http.LocalAddrContextKey, rwc.LocalAddr())
	return c
}

func (c *conn) serve() {
	s := c.srv
	defer c.close()
	c.bufs, _ = s.bufs.Get().(*connBufs)
	if c.bufs == nil {
		c.bufs = &connBufs{br: bufio.NewReaderSize(nil, bufSize), bw: bufio.NewWriterSize(nil, bufSize)}
	}
	c.cr.rwc = c.rwc
	c.br, c.bw = c.bufs.br, c.bufs.bw
	c.br.Reset(&c.cr)
	c.bw.Reset(connWriter{c})
	if d := s.ReadHeaderTimeout; d > 0 {
		c.setReadDeadline(c.accepted.Add(d))
	}
	for first := true; ; first = false {
		if !c.awaitRequest(first) {
			return
		}
		req, err := c.readRequest(first)
		if err != nil {
			c.replyError(err)
			return
		}
		if !c.serveRequest(req) {
			return
		}
	}
}

func (c *conn) close() {
	if c.linger {
		c.lingerClose()
	}
	c.rwc.Close()
	c.srv.trackConn(c, false)
	if c.bufs != nil {
		c.br.Reset(nil)
		c.bw.Reset(nil)
		c.srv.bufs.Put(c.bufs)
		c.bufs, c.br, c.bw = nil, nil, nil
	}
}

// lingerClose half-closes the connection and drains what the client still sends
// for a while, so the client reads our answer before it sees the connection close.
func (c *conn) lingerClose() {
	type closeWriter interface{ CloseWrite() error }
	cw, ok := c.rwc.(closeWriter)
	if !ok || cw.CloseWrite() != nil {
		return
	}
	c.rwc.SetReadDeadline(time.Now().Add(lingerTime))
	for {
		if _, err := c.rwc.Read(c.bufs.body[:]); err != nil {
			return
		}
	}
}

// setReadDeadline sets t (zero: none) unless nothing would change.
func (c *conn) setReadDeadline(t time.Time) {
	if t.IsZero() {
		if c.rd == rdNone {
			return
		}
		c.rd = rdNone
	} else {
		c.rd = rdOurs
	}
	c.rwc.SetReadDeadline(t)
}

// awaitRequest waits for the first byte of the next request, under the idle
// timeout (or, for the first request, the head timeout from the connection's start).
func (c *conn) awaitRequest(first bool) bool {
	s := c.srv
	c.cr.remain = s.maxHeaderBytes() + headSlack
	c.cr.hitLimit = false
	if c.br.Buffered() > 0 || c.cr.pending() {
		return true // pipelined: the next request is here already
	}
	from := stateNew
	if !first {
		from = stateIdle
		c.state.Store(stateIdle)
		// Shutdown sets inShutdown before it looks for idle connections, and we
		// went idle before looking at inShutdown: one of the two sees the other.
		if s.inShutdown.Load() && c.state.CompareAndSwap(stateIdle, stateClosed) {
			return false
		}
		var t time.Time
		if d := s.IdleTimeout; d > 0 {
			t = time.Now().Add(d)
		}
		c.setReadDeadline(t)
	}
	if _, err := c.br.Peek(1); err != nil {
		return false
	}
	return c.state.CompareAndSwap(from, stateActive) // or closed by Shutdown
}

func (c *conn) readRequest(first bool) (*http.Request, error) {
	if c.lastPOST {
		// RFC 9112 section 2.2: tolerate the CRLF some old clients send after a
		// POST body.
		peek, _ := c.br.Peek(4)
		n := 0
		for n < len(peek) && (peek[n] == '\r' || peek[n] == '\n') {
			n++
		}
		c.br.Discard(n)
	}
	// Usually the whole head is in the buffer: it is parsed without reading the
	// connection, so the idle deadline can stay, and its bytes stay in place for
	// the checks below. Otherwise the head gets ReadHeaderTimeout from its first
	// byte, and its bytes are recorded as they are read.
	head, _ := c.br.Peek(c.br.Buffered())
	complete := true
	if n := h1head.End(head); n >= 0 {
		head = head[:n]
	} else {
		complete = false
		if !first {
			var t time.Time
			if d := c.srv.ReadHeaderTimeout; d > 0 {
				t = time.Now().Add(d)
			}
			c.setReadDeadline(t)
		}
		c.cr.rec = append(c.cr.rec[:0], head...)
		c.cr.recording = true
	}
	req, err := http.ReadRequest(c.br)
	if !complete {
		c.cr.recording = false
		head = c.cr.rec
		if n := h1head.End(head); n >= 0 {
			head = head[:n] // not the body bytes read with it
		}
		if cap(c.cr.rec) > bufSize {
			c.cr.rec = nil // a large head: do not keep its memory
		}
	}
	if err != nil {
		if c.cr.hitLimit {
			return nil, errHeadTooLarge
		}
		return nil, err
	}
	c.cr.remain = math.MaxInt64
	c.lastPOST = req.Method == http.MethodPost
	if req.ProtoMajor != 1 {
		return nil, errHTTPVersion
	}
	// http.ReadRequest moved the Host header to req.Host (a URL in absolute form
	// overrides it).
	if req.Host == "" && req.ProtoAtLeast(1, 1) && req.Method != http.MethodConnect {
		return nil, errBadRequest
	}
	if !validHost(req.Host) {
		return nil, errBadRequest
	}
	// http.ReadRequest accepts a space in a field name (net/http's server then
	// refuses it), and a Transfer-Encoding with a Content-Length (it drops the
	// length): both are request smuggling attempts.
	for k := range req.Header {
		if strings.IndexByte(k, ' ') >= 0 {
			return nil, errBadRequest
		}
	}
	if len(req.TransferEncoding) > 0 && h1head.HasField(head, "Content-Length") {
		return nil, errBadRequest
	}
	// http.ReadRequest ignores a Transfer-Encoding on HTTP/1.0 and frames the body
	// by its Content-Length (or takes none), where a proxy in front may have read a
	// chunked body: RFC 9112 section 6.1 calls the framing faulty.
	if !req.ProtoAtLeast(1, 1) && h1head.HasField(head, "Transfer-Encoding") {
		return nil, errBadRequest
	}
	if !strictLines(head) {
		return nil, errBadRequest
	}
	req.RemoteAddr = c.remoteAddr
	return req, nil
}

// replyError answers a request that could not be read and leaves the connection to
// be closed. Read errors (timeouts, the client leaving) get no answer.
func (c *conn) replyError(err error) {
	code := http.StatusBadRequest
	switch {
	case errors.Is(err, errHeadTooLarge):
		code = http.StatusRequestHeaderFieldsTooLarge
	case errors.Is(err, errHTTPVersion):
		code = http.StatusHTTPVersionNotSupported
	case strings.HasPrefix(err.Error(), "unsupported transfer encoding") ||
		strings.HasPrefix(err.Error(), "too many transfer encodings"):
		// http.ReadRequest's error type for these is unexported.
		code = http.StatusNotImplemented
	case isReadError(err):
		return
	}
	c.writeError(code)
}

// writeError writes a plain answer with code and marks the connection to close.
func (c *conn) writeError(code int) {
	text := strconv.Itoa(code) + " " + http.StatusText(code)
	c.bw.WriteString("HTTP/1.1 " + text + "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ")
	c.bw.WriteString(strconv.Itoa(len(text)))
	c.bw.WriteString("\r\nConnection: close\r\n\r\n" + text)
	c.bw.Flush()
	c.linger = true
}

// isReadError reports the errors that reading a head from a client that left or
// stalled returns; they are not worth an answer.
func isReadError(err error) bool {
	if err == io.EOF {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "read"
}

// serveRequest runs the handler for req and answers; it reports whether the
// connection can carry another request.
func (c *conn) serveRequest(req *http.Request) bool {
	expect := req.Header.Get("Expect")
	wantsContinue := expect != "" && hasToken(expect, "100-continue")
	if expect != "" && !wantsContinue {
		c.writeError(http.StatusExpectationFailed)
		return false
	}

	ctx, cancel := context.WithCancel(c.ctx)
	req = req.WithContext(ctx)
	w := &response{
		c:           c,
		req:         req,
		header:      make(http.Header),
		declared:    -1,
		buf:         c.bufs.body[:0],
		is11:        req.ProtoAtLeast(1, 1),
		reqClose:    req.Close,
		keepAlive10: !req.ProtoAtLeast(1, 1) && !req.Close,
		isHEAD:      req.Method == http.MethodHead,
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	if hasBody {
		w.body.init(w, req.Body, req.ContentLength)
		w.expect = wantsContinue && w.is11
		w.canContinue = w.expect
		req.Body = &w.body
	}

	c.mu.Lock()
	c.bg = bgIdle
	c.bodyRead = !hasBody
	c.cancel = cancel
	c.mu.Unlock()
	if c.bgDone == nil {
		c.bgDone = make(chan struct{}, 1)
	}
	c.srv.watchStart(c, time.Now())

	panicked := c.runHandler(w, req)

	c.srv.watchEnd(c)
	c.mu.Lock()
	bg := c.bg
	c.bg = bgClosed
	c.cancel = nil
	c.mu.Unlock()
	if bg == bgRunning {
		c.stopBackgroundRead()
	}
	cancel()
	if c.rd == rdHandler {
		c.rd = rdOurs // whatever the handler set does not apply to the next request
	}
	if panicked {
		w.done = true
		w.body.close()
		return false
	}

	w.finish()
	if c.wdSet {
		c.rwc.SetWriteDeadline(time.Time{})
		c.wdSet = false
	}
	return !w.closeAfter && c.werr == nil
}

// runHandler calls the handler and reports whether it panicked; panics other than
// http.ErrAbortHandler are logged.
func (c *conn) runHandler(w *response, req *http.Request) (panicked bool) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		panicked = true
		if v == http.ErrAbortHandler {
			return
		}
		buf := make([]byte, 64<<10)
		buf = buf[:runtime.Stack(buf, false)]
		c.srv.logger().Error("http handler panicked",
			"remote_addr", c.remoteAddr, "method", req.Method, "path", req.URL.Path,
			"panic", v, "stack", string(buf))
	}()
	h := c.srv.handler()
	if req.RequestURI == "*" && req.Method == http.MethodOptions {
		h = http.HandlerFunc(serveGlobalOptions)
	}
	h.ServeHTTP(w, req)
	return false
}

// serveGlobalOptions answers "OPTIONS *" as net/http does.
func serveGlobalOptions(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "0")
	if r.ContentLength != 0 {
		io.Copy(io.Discard, io.LimitReader(r.Body, 4<<10))
	}
}

// onSlowRequest runs when a handler has run for slowRequest (on the watchdog's
// goroutine): the background read starts if it can.
func (c *conn) onSlowRequest() {
	c.mu.Lock()
	start := false
	if c.bg == bgIdle {
		start = c.wantBackgroundReadLocked()
	}
	c.mu.Unlock()
	if start {
		go c.backgroundRead()
	}
}

// bodyDone records that the request body has been read to its end.
func (c *conn) bodyDone() {
	c.mu.Lock()
	c.bodyRead = true
	start := false
	if c.bg == bgWanted {
		start = c.beginBackgroundReadLocked()
	}
	c.mu.Unlock()
	if start {
		go c.backgroundRead()
	}
}

func (c *conn) wantBackgroundReadLocked() bool {
	if !c.bodyRead {
		// The body's bytes are still on the connection, for the handler.
		c.bg = bgWanted
		return false
	}
	return c.beginBackgroundReadLocked()
}

// beginBackgroundReadLocked prepares the background read; the caller runs it.
func (c *conn) beginBackgroundReadLocked() bool {
	c.bg = bgRunning
	if c.rd == rdOurs {
		c.rwc.SetReadDeadline(time.Time{})
		c.rd = rdNone
	}
	if c.cr.pend == nil {
		c.cr.pend = make([]byte, bufSize)
	}
	return true
}

// backgroundRead reads the connection while the handler runs: an error or EOF means
// the client left, and cancels the request's context. Bytes that arrive belong to
// the next (pipelined) request and are kept for it.
func (c *conn) backgroundRead() {
	defer func() { c.bgDone <- struct{}{} }()
	cr := &c.cr
	for cr.pw < len(cr.pend) {
		n, err := c.rwc.Read(cr.pend[cr.pw:])
		cr.pw += n
		if err == nil {
			continue
		}
		c.mu.Lock()
		aborted := c.bg == bgClosed
		cancel := c.cancel
		c.mu.Unlock()
		var ne net.Error
		if aborted && errors.As(err, &ne) && ne.Timeout() {
			return // stopBackgroundRead
		}
		cr.err = err
		// A pipelining client that half-closes after its last request has not
		// left (net/http does not cancel on pipelined bytes either).
		if err != io.EOF || !cr.pendingRequest() {
			if cancel != nil {
				cancel()
			}
		}
		return
	}
}

// stopBackgroundRead wakes the background read and waits for it to end.
func (c *conn) stopBackgroundRead() {
	c.rwc.SetReadDeadline(aLongTimeAgo)
	c.rd = rdOurs
	<-c.bgDone
}

// connReader is what c.br reads: first what the background read took off the
// connection, then the connection, limited while a head is read.
type connReader struct {
	rwc    net.Conn
	pend   []byte // filled by the background read; pend[pr:pw] is unread
	pr, pw int
	err    error // what ended the background read, returned after pend
	// remain is how much more may be read before the head counts as too large.
	remain   int64
	hitLimit bool
	// While recording, what is read is also appended to rec.
	recording bool
	rec       []byte
}

func (cr *connReader) Read(p []byte) (int, error) {
	if cr.remain <= 0 {
		cr.hitLimit = true
		return 0, io.EOF
	}
	if int64(len(p)) > cr.remain {
		p = p[:cr.remain]
	}
	var n int
	var err error
	switch {
	case cr.pr < cr.pw:
		n = copy(p, cr.pend[cr.pr:cr.pw])
		cr.pr += n
		if cr.pr == cr.pw {
			cr.pr, cr.pw = 0, 0
		}
	case cr.err != nil:
		err = cr.err
	default:
		n, err = cr.rwc.Read(p)
	}
	cr.remain -= int64(n)
	if cr.recording {
		cr.rec = append(cr.rec, p[:n]...)
	}
	return n, err
}

func (cr *connReader) pending() bool { return cr.pr < cr.pw }

// pendingRequest reports whether the pending bytes hold more than line breaks.
func (cr *connReader) pendingRequest() bool {
	for _, b := range cr.pend[cr.pr:cr.pw] {
		if b != '\r' && b != '\n' {
			return true
		}
	}
	return false
}

// connWriter is what c.bw writes to; a failed write cancels the request's context.
type connWriter struct{ c *conn }

func (cw connWriter) Write(p []byte) (int, error) {
	c := cw.c
	n, err := c.rwc.Write(p)
	if err != nil && c.werr == nil {
		c.werr = err
		c.mu.Lock()
		cancel := c.cancel
		c.mu.Unlock()
		if cancel != nil {
			cancel()
		}
	}
	return n, err
}

// strictLines reports whether every line of the request head ends with CRLF and
// none continues the one before (obs-fold). http.ReadRequest accepts a bare LF as a
// line end and unfolds folded lines; a proxy in front that does neither would see
// other fields than we do (a Transfer-Encoding hidden in another field's value),
// so both are refused, as RFC 9112 sections 2.2 and 5.2 allow.
func strictLines(head []byte) bool {
	for i := 0; ; {
		j := bytes.IndexByte(head[i:], '\n')
		if j < 0 {
			return true
		}
		i += j
		if i == 0 || head[i-1] != '\r' {
			return false
		}
		if i++; i < len(head) && (head[i] == ' ' || head[i] == '\t') {
			return false
		}
	}
}

// hasToken reports whether the comma-separated header value v lists token.
func hasToken(v, token string) bool {
	for part := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(strings.Trim(part, " \t"), token) {
			return true
		}
	}
	return false
}

// validHost reports whether h has only bytes that may appear in a Host header (the
// check net/http makes).
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		b := h[i]
		if 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' {
			continue
		}
		if strings.IndexByte("!$%&'()*+,-.:;=[]_~", b) < 0 {
			return false
		}
	}
	return true
}
