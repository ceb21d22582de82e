//go:build linux && race

package rawconn

import "syscall"

// Under the race detector the reads and writes go through package syscall, whose
// annotations make a write on one end of a socket happen before the read of it on
// the other (whichever package reads it) and mark the buffers as read or written:
// raw system calls would hide both from the detector. Speed does not matter there.
func sysRead(fd uintptr, b []byte) (int, syscall.Errno) { return errno(syscall.Read(int(fd), b)) }

func sysWrite(fd uintptr, b []byte) (int, syscall.Errno) { return errno(syscall.Write(int(fd), b)) }

func errno(n int, err error) (int, syscall.Errno) {
	if err != nil {
		return 0, err.(syscall.Errno)
	}
	return n, 0
}
