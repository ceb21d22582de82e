//go:build !linux

package h1transport

// alive cannot peek without blocking on this platform: a stale connection shows as
// a failed first read, which RoundTrip retries on a fresh connection when that is
// safe.
func alive(*conn) bool { return true }

type peeker struct{}
