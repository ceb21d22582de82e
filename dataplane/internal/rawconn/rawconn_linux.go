package rawconn

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// Conn is a TCP connection whose Read and Write call read(2) and write(2) without
// telling the scheduler (RawSyscall); see the package comment. Reads are serialised
// among themselves, as are writes; a read and a write may run at once.
type Conn struct {
	*net.TCPConn
	r, w half
	ctl  func(func(fd uintptr)) error // RawConn.Control: fails once the conn is closed
}

// half is one direction's state, handed to its RawConn callback, which is built
// once so that a call allocates nothing.
type half struct {
	mu    sync.Mutex
	buf   []byte
	n     int
	errno syscall.Errno
	zero  bool                              // a write wrote nothing and said nothing
	wait  func(func(fd uintptr) bool) error // RawConn.Read or RawConn.Write
	fn    func(fd uintptr) bool             // called by wait with the descriptor
	op    string                            // "read" or "write"
}

// Wrap returns c's raw form when c is a TCP connection, else c.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	x := &Conn{TCPConn: tc, ctl: rc.Control}
	x.r = half{wait: rc.Read, op: "read"}
	x.r.fn = x.r.read
	x.w = half{wait: rc.Write, op: "write"}
	x.w.fn = x.w.write
	return x
}

// Read reads like net.TCPConn's Read: what is there, or waits until something is.
func (c *Conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, c.zeroLength("read")
	}
	n, err := c.do(&c.r, b)
	if err == nil && n == 0 {
		return 0, io.EOF
	}
	return n, err
}

// Write writes all of b, waiting for room when the socket buffer is full.
func (c *Conn) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, c.zeroLength("write")
	}
	return c.do(&c.w, b)
}

// zeroLength answers a read or write of nothing as net does: nothing, or that the
// connection is closed.
func (c *Conn) zeroLength(op string) error {
	if err := c.ctl(func(uintptr) {}); err != nil {
		return c.opError(op, err)
	}
	return nil
}

// File is not supported: the descriptor it duplicates would be put in blocking
// mode, and a raw read on a blocking socket would stall the Go scheduler.
func (c *Conn) File() (*os.File, error) {
	return nil, c.opError("file", errors.ErrUnsupported)
}

// ReadFrom copies r into the connection through Write (TCPConn's own would write
// around it).
func (c *Conn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(writerOnly{c}, r) }

// WriteTo copies what the connection reads into w through Read.
func (c *Conn) WriteTo(w io.Writer) (int64, error) { return io.Copy(w, readerOnly{c}) }

type writerOnly struct{ io.Writer }

type readerOnly struct{ io.Reader }

func (c *Conn) do(h *half, b []byte) (int, error) {
	h.mu.Lock()
	h.buf, h.n, h.errno, h.zero = b, 0, 0, false
	err := h.wait(h.fn)
	n, errno, zero := h.n, h.errno, h.zero
	h.buf = nil
	h.mu.Unlock()
	switch {
	case err != nil:
	case errno != 0:
		err = os.NewSyscallError(h.op, errno)
	case zero:
		return n, io.ErrUnexpectedEOF
	default:
		return n, nil
	}
	return n, c.opError(h.op, err)
}

// opError wraps err as net's would for op; RawConn's own OpError (saying "raw-read",
// "raw-write" or "raw-control") gives up its cause.
func (c *Conn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// read is the read callback: false asks the poller to wait for readability.
func (h *half) read(fd uintptr) bool {
	for {
		n, e := sysRead(fd, h.buf)
		switch e {
		case 0:
			h.n = n
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		h.errno = e
		return true
	}
}

// write is the write callback: it writes until all is written, and returns false
// (wait for writability) when the socket buffer is full.
func (h *half) write(fd uintptr) bool {
	for h.n < len(h.buf) {
		n, e := sysWrite(fd, h.buf[h.n:])
		switch {
		case e == 0 && n == 0:
			h.zero = true // as net: io.ErrUnexpectedEOF rather than spinning
			return true
		case e == 0:
			h.n += n
		case e == syscall.EINTR:
		case e == syscall.EAGAIN:
			return false
		default:
			h.errno = e
			return true
		}
	}
	return true
}
