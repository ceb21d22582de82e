//go:build linux && 386

package h1transport

import "syscall"

// peekRecv is a non-blocking MSG_PEEK recvfrom; 386 has no recvfrom system call of
// its own to make raw (it goes through socketcall).
func peekRecv(fd uintptr, buf []byte) error {
	_, _, err := syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err
}
