package httpserver

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// errResponseDone is returned by writes after the handler returned.
var errResponseDone = errors.New("httpserver: response used after the handler returned")

// Headers left out of the handler's header block: the server writes Connection and
// Transfer-Encoding itself, and some statuses must not carry some fields (RFC 9110
// sections 8.6, 15.3.5 and 15.4.5).
var (
	excludeOwn      = map[string]bool{"Connection": true, "Transfer-Encoding": true}
	excludeNoLength = map[string]bool{"Connection": true, "Transfer-Encoding": true, "Content-Length": true}
	exclude304      = map[string]bool{"Connection": true, "Transfer-Encoding": true, "Content-Length": true, "Content-Type": true}
)

// response is the http.ResponseWriter of one request. Body bytes collect in buf
// (bufSize); the framing (Content-Length, chunked, or until close) is chosen when buf
// overflows, the handler flushes or the handler returns, whichever comes first.
//
// WriteHeader writes the status line and the handler's header block into the
// connection's write buffer at once, so later changes to Header() are ignored, as in
// net/http. Informational 1xx statuses (but 101) are sent at once to HTTP/1.1
// clients and dropped for HTTP/1.0 ones; 101 counts as final and closes the
// connection after it, since there is no Hijack.
type response struct {
	c      *conn
	req    *http.Request
	header http.Header
	body   requestBody // req.Body, when the request has one

	status   int   // final status; 0 until WriteHeader
	declared int64 // Content-Length of the answer, -1 while unknown
	written  int64 // body bytes the handler wrote
	buf      []byte
	framed   bool // the header block is complete
	chunked  bool
	noBody   bool // HEAD, or a status without body: body bytes are not sent
	forbid   bool // a status without body: writes fail
	done     bool

	is11, isHEAD          bool
	reqClose, keepAlive10 bool
	closeAfter            bool

	// Taken from the handler's header at WriteHeader.
	haveType, haveDate, haveCE bool
	hasTE, teIdentity          bool
	connHeader                 string // the handler's Connection value, if not close
	handlerClose               bool   // the handler's Connection says close

	// Expect: 100-continue.
	expect      bool
	continueMu  sync.Mutex
	canContinue bool
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.status != 0 || w.done {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.expect {
		w.continueMu.Lock()
		defer w.continueMu.Unlock()
		if code < 102 || code > 199 {
			// A 100 sent by the handler, or the final status.
			w.canContinue = false
		}
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		if w.is11 {
			w.c.writeStatusLine(true, code)
			w.header.WriteSubset(w.c.bw, excludeNoLength)
			w.c.bw.WriteString("\r\n")
			w.c.bw.Flush()
		}
		return
	}
	w.status = code
	h := w.header
	if cl := h.Get("Content-Length"); cl != "" {
		if v, err := strconv.ParseInt(cl, 10, 64); err == nil && v >= 0 {
			w.declared = v
		} else {
			h.Del("Content-Length")
		}
	}
	te := h.Get("Transfer-Encoding")
	w.hasTE, w.teIdentity = te != "", te == "identity"
	exclude := excludeOwn
	if w.declared >= 0 && w.hasTE && !w.teIdentity {
		// Both set: chunk, as net/http does.
		w.declared = -1
		exclude = excludeNoLength
	}
	switch {
	case code == http.StatusNotModified:
		exclude = exclude304
	case code < 200 || code == http.StatusNoContent:
		exclude = excludeNoLength
	}
	if code == http.StatusNotModified || code < 200 || code == http.StatusNoContent {
		w.forbid, w.noBody = true, true
		w.declared = -1
	}
	if w.isHEAD {
		w.noBody = true
	}
	if code == http.StatusSwitchingProtocols {
		w.closeAfter = true
	}
	for _, v := range h["Connection"] {
		if hasToken(v, "close") {
			w.closeAfter, w.handlerClose = true, true
		} else if w.connHeader == "" {
			w.connHeader = v
		}
	}
	_, w.haveType = h["Content-Type"]
	_, w.haveDate = h["Date"]
	w.haveCE = h.Get("Content-Encoding") != ""
	w.c.writeStatusLine(w.is11, code)
	h.WriteSubset(w.c.bw, exclude)
}

func (w *response) Write(p []byte) (int, error) {
	if err := w.startWrite(len(p)); err != nil {
		return 0, err
	}
	n := len(p)
	for len(p) > 0 {
		if len(w.buf) == cap(w.buf) {
			w.flushBuffer()
		}
		if len(w.buf) == 0 && w.framed && len(p) >= cap(w.buf) {
			w.emit(p) // no point copying it
			break
		}
		k := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
	}
	return n, w.c.werr
}

// WriteString is Write without converting s to a byte slice.
func (w *response) WriteString(s string) (int, error) {
	if err := w.startWrite(len(s)); err != nil {
		return 0, err
	}
	n := len(s)
	for len(s) > 0 {
		if len(w.buf) == cap(w.buf) {
			w.flushBuffer()
		}
		k := copy(w.buf[len(w.buf):cap(w.buf)], s)
		w.buf = w.buf[:len(w.buf)+k]
		s = s[k:]
	}
	return n, w.c.werr
}

func (w *response) startWrite(n int) error {
	if w.done {
		return errResponseDone
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.forbid {
		return http.ErrBodyNotAllowed
	}
	if w.c.werr != nil {
		return w.c.werr
	}
	if w.declared >= 0 && w.written+int64(n) > w.declared {
		return http.ErrContentLength
	}
	w.written += int64(n)
	return nil
}

// Flush sends what the handler wrote so far.
func (w *response) Flush() { _ = w.FlushError() }

// FlushError sends what the handler wrote so far (http.ResponseController uses it).
func (w *response) FlushError() error {
	if w.done {
		return errResponseDone
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if len(w.buf) > 0 || !w.framed {
		w.flushBuffer()
	}
	if err := w.c.bw.Flush(); err != nil {
		return err
	}
	// A streaming answer is watched for the client leaving from slowRequest on, by
	// the watchdog: starting the background read here, at the first flush, would
	// wake another thread right when the first bytes go out.
	return nil
}

// EnableFullDuplex reports success: handlers may always read the request body while
// they write the answer (http.ResponseController uses it).
func (w *response) EnableFullDuplex() error { return nil }

// SetReadDeadline sets the connection's read deadline, for reading the request body
// (http.ResponseController uses it). It does not outlive the request.
func (w *response) SetReadDeadline(t time.Time) error {
	if w.done {
		return errResponseDone
	}
	c := w.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rd = rdHandler
	return c.rwc.SetReadDeadline(t)
}

// SetWriteDeadline sets the connection's write deadline (http.ResponseController
// uses it). It does not outlive the request.
func (w *response) SetWriteDeadline(t time.Time) error {
	if w.done {
		return errResponseDone
	}
	w.c.wdSet = true
	return w.c.rwc.SetWriteDeadline(t)
}

// flushBuffer completes the header block if needed, then sends buf.
func (w *response) flushBuffer() {
	if !w.framed {
		w.frame(false)
	}
	w.emit(w.buf)
	w.buf = w.buf[:0]
}

// emit writes body bytes with the answer's framing.
func (w *response) emit(p []byte) {
	if w.noBody || len(p) == 0 {
		return
	}
	bw := w.c.bw
	if w.chunked {
		bw.Write(strconv.AppendInt(w.c.scratch[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
		bw.Write(p)
		bw.WriteString("\r\n")
		return
	}
	bw.Write(p)
}

// frame chooses the answer's framing and ends its header block, with net/http's
// rules. final means the handler returned and buf holds the whole body.
func (w *response) frame(final bool) {
	w.framed = true
	c := w.c
	bw := c.bw
	bodyAllowed := !w.forbid
	autoLength := false
	if final && !w.hasTE && bodyAllowed && w.declared < 0 && (!w.isHEAD || len(w.buf) > 0) {
		// For HEAD, no bytes may mean the handler just did not write them.
		w.declared = int64(len(w.buf))
		autoLength = true
	}
	hasLength := w.declared >= 0
	sayKeepAlive := false
	if w.keepAlive10 && (w.isHEAD || hasLength || !bodyAllowed) {
		sayKeepAlive = w.connHeader == ""
	} else if !w.is11 || w.reqClose {
		w.closeAfter = true
	}
	if c.srv.inShutdown.Load() {
		w.closeAfter = true
	}
	switch {
	case w.noBody, hasLength:
	case w.is11 && !w.teIdentity:
		w.chunked = true
	default:
		w.closeAfter = true // the body ends with the connection
	}

	if bodyAllowed && !w.haveType && !w.haveCE && !w.hasTE && len(w.buf) > 0 {
		bw.WriteString("Content-Type: ")
		bw.WriteString(http.DetectContentType(w.buf))
		bw.WriteString("\r\n")
	}
	if autoLength {
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(c.scratch[:0], w.declared, 10))
		bw.WriteString("\r\n")
	}
	if !w.haveDate {
		bw.WriteString("Date: ")
		bw.Write(c.now())
		bw.WriteString("\r\n")
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case w.closeAfter && w.status != http.StatusSwitchingProtocols:
		if w.is11 || w.handlerClose {
			bw.WriteString("Connection: close\r\n")
		}
	case sayKeepAlive:
		bw.WriteString("Connection: keep-alive\r\n")
	case w.connHeader != "":
		bw.WriteString("Connection: ")
		bw.WriteString(sanitizeValue(w.connHeader))
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
}

// finish completes the answer after the handler returned.
func (w *response) finish() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	w.consumeBody()
	if !w.framed {
		w.frame(true)
	}
	w.emit(w.buf)
	w.buf = w.buf[:0]
	if w.chunked {
		w.c.bw.WriteString("0\r\n\r\n")
	}
	if w.declared >= 0 && !w.noBody && w.written != w.declared {
		// The handler wrote less than it announced: the client would wait.
		w.closeAfter = true
	}
	w.c.bw.Flush()
	w.done = true
}

// consumeBody reads what is left of the request body, up to maxDiscard, so the
// connection can carry the next request; otherwise it marks it to close.
func (w *response) consumeBody() {
	b := &w.body
	if b.src == nil {
		return
	}
	defer b.close()
	b.mu.Lock()
	eof, remaining := b.sawEOF, b.remaining
	b.mu.Unlock()
	switch {
	case eof:
		return
	case w.closeAfter, w.reqClose, !w.is11 && !w.keepAlive10, w.expect, remaining > maxDiscard:
		// Closing anyway; or the client may be waiting for a 100 Continue that
		// never came; or too much to read.
		w.closeAfter = true
		w.c.linger = true
		return
	}
	if _, err := io.CopyN(io.Discard, b, maxDiscard+1); err != io.EOF {
		w.closeAfter = true
		w.c.linger = true
	}
}

// requestBody is the request's Body: it sends 100 Continue on the first read when
// the client expects it, tells the connection when the body has been read (so the
// background read may start), and stops working when the handler returns.
type requestBody struct {
	w         *response
	src       io.ReadCloser
	remaining int64 // bytes of a Content-Length body still unread; -1 if chunked

	mu      sync.Mutex
	started bool
	sawEOF  bool
	closed  bool
}

func (b *requestBody) init(w *response, src io.ReadCloser, contentLength int64) {
	b.w, b.src, b.remaining = w, src, contentLength
}

func (b *requestBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return 0, http.ErrBodyReadAfterClose
	case b.sawEOF:
		return 0, io.EOF
	}
	if !b.started {
		b.started = true
		b.start()
	}
	n, err := b.src.Read(p)
	if b.remaining > 0 {
		b.remaining -= int64(n)
	}
	if err == io.EOF {
		b.sawEOF = true
		b.w.c.bodyDone()
	}
	return n, err
}

// Close stops further reads. What the handler left unread is dealt with after it
// returns (http.ReadRequest's own Close would read all of it).
func (b *requestBody) Close() error {
	b.close()
	return nil
}

func (b *requestBody) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
}

// start runs before the first read of the body.
func (b *requestBody) start() {
	w, c := b.w, b.w.c
	if w.expect {
		w.continueMu.Lock()
		if w.canContinue {
			w.canContinue = false
			c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			c.bw.Flush()
		}
		w.continueMu.Unlock()
	}
	// The idle or head deadline may still be set; it must not cut the body, unless
	// all of the body is buffered already and the connection will not be read.
	c.mu.Lock()
	if c.rd == rdOurs && (b.remaining < 0 || int64(c.br.Buffered()) < b.remaining) {
		c.rwc.SetReadDeadline(time.Time{})
		c.rd = rdNone
	}
	c.mu.Unlock()
}

// writeStatusLine writes "HTTP/1.x code text", inventing a text for codes without
// one as net/http does.
func (c *conn) writeStatusLine(is11 bool, code int) {
	bw := c.bw
	if is11 {
		bw.WriteString("HTTP/1.1 ")
	} else {
		bw.WriteString("HTTP/1.0 ")
	}
	num := strconv.AppendInt(c.scratch[:0], int64(code), 10)
	bw.Write(num)
	bw.WriteByte(' ')
	if text := http.StatusText(code); text != "" {
		bw.WriteString(text)
	} else {
		bw.WriteString("status code ")
		bw.Write(num)
	}
	bw.WriteString("\r\n")
}

// now returns the Date header value, formatted at most once a second.
func (c *conn) now() []byte {
	t := time.Now()
	if sec := t.Unix(); sec != c.dateSec || c.date == nil {
		c.dateSec = sec
		c.date = t.UTC().AppendFormat(c.dateBuf[:0], http.TimeFormat)
	}
	return c.date
}

// sanitizeValue replaces the line breaks a header value must not carry.
func sanitizeValue(v string) string {
	for i := 0; i < len(v); i++ {
		if v[i] == '\r' || v[i] == '\n' {
			b := []byte(v)
			for j := i; j < len(b); j++ {
				if b[j] == '\r' || b[j] == '\n' {
					b[j] = ' '
				}
			}
			return string(b)
		}
	}
	return v
}
