package rawconn

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Conn is a TCP connection whose Read and Write call read(2) and write(2) without
// telling the scheduler (RawSyscall); see the package comment. Reads are serialised
// among themselves, as are writes; a read and a write may run at once.
type Conn struct {
	*net.TCPConn
	r, w half
}

// half is one direction's state, handed to its RawConn callback, which is built
// once so that a call allocates nothing.
type half struct {
	mu    sync.Mutex
	buf   []byte
	n     int
	errno syscall.Errno
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
	x := &Conn{TCPConn: tc}
	x.r = half{wait: rc.Read, op: "read"}
	x.r.fn = x.r.read
	x.w = half{wait: rc.Write, op: "write"}
	x.w.fn = x.w.write
	return x
}

// Read reads like net.TCPConn's Read: what is there, or waits until something is.
func (c *Conn) Read(b []byte) (int, error) {
	n, err := c.do(&c.r, b)
	if err == nil && n == 0 {
		return 0, io.EOF
	}
	return n, err
}

// Write writes all of b, waiting for room when the socket buffer is full.
func (c *Conn) Write(b []byte) (int, error) { return c.do(&c.w, b) }

func (c *Conn) do(h *half, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	h.mu.Lock()
	h.buf, h.n, h.errno = b, 0, 0
	err := h.wait(h.fn)
	n, errno := h.n, h.errno
	h.buf = nil
	h.mu.Unlock()
	switch {
	case err != nil:
		// RawConn's OpError says "raw-read"/"raw-write"; ours says what net's would.
		if oe, ok := err.(*net.OpError); ok {
			err = oe.Err
		}
	case errno != 0:
		err = os.NewSyscallError(h.op, errno)
	default:
		return n, nil
	}
	return n, &net.OpError{Op: h.op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// read is the read callback: false asks the poller to wait for readability.
func (h *half) read(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&h.buf[0])), uintptr(len(h.buf)))
		switch e {
		case 0:
			h.n = int(n)
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
		rest := h.buf[h.n:]
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)))
		switch e {
		case 0:
			h.n += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			h.errno = e
			return true
		}
	}
	return true
}
