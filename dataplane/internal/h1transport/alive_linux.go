package h1transport

import (
	"syscall"
)

// alive peeks at an idle connection without blocking: an upstream that closed it
// (or, out of step, sent bytes) makes it unusable. One recvfrom syscall, and no
// allocation after the first call on a connection.
func alive(c *conn) bool {
	if c.peek == nil {
		sc, ok := c.nc.(syscall.Conn)
		if !ok {
			return true
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return false
		}
		c.peek = &peeker{rc: rc}
		c.peek.fn = c.peek.recv
	}
	p := c.peek
	p.ok = false
	err := p.rc.Read(p.fn)
	return err == nil && p.ok
}

// peeker is a connection's liveness peek, built once.
type peeker struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool
	buf [1]byte
	ok  bool
}

func (p *peeker) recv(fd uintptr) bool {
	err := peekRecv(fd, p.buf[:])
	p.ok = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
	return true // never wait for readiness
}
