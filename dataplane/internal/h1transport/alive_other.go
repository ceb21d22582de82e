//go:build !linux

package h1transport

import "net"

// alive cannot peek without blocking on this platform: a stale connection shows as
// a failed first read, which RoundTrip retries once on a fresh connection.
func alive(net.Conn) bool { return true }
