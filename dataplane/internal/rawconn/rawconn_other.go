//go:build !linux

package rawconn

import "net"

// Wrap returns c: only Linux has the raw reads and writes.
func Wrap(c net.Conn) net.Conn { return c }
