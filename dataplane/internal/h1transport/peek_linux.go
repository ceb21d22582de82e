//go:build linux && !386

package h1transport

import (
	"syscall"
	"unsafe"
)

// peekRecv is a non-blocking MSG_PEEK recvfrom made raw: it need not tell the
// scheduler, which would wake its monitor thread when the process was idle (see
// package rawconn).
func peekRecv(fd uintptr, buf []byte) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)),
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
