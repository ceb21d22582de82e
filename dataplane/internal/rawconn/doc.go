// Package rawconn makes a TCP connection's reads and writes invisible to the Go
// scheduler's monitor thread.
//
// Every blocking-capable system call the runtime makes for a goroutine goes
// through entersyscall. When the whole process has been idle, the runtime's
// monitor thread (sysmon) sleeps, and the first such call wakes it with a futex —
// a wake-up on the other CPU — after which it polls every 20 µs for the next
// millisecond or more before it backs off again. A gateway at a few hundred
// requests a second goes idle between requests, so every request paid that: on a
// 2-core machine it was a third of the floor proxy's CPU per streamed request and
// ~50 µs of its first byte (perf: runtime.sysmon 26 %; see docs/benchmarks.md).
//
// A socket's descriptor is non-blocking (the runtime's network poller waits for
// it), so read(2) and write(2) on it return at once; Conn makes them with
// RawSyscall, which skips entersyscall, and waits through the poller
// (syscall.RawConn) exactly as net does. Deadlines, Close and every other method
// are the TCPConn's own, except File, which is refused: the descriptor it
// duplicates would turn blocking, and a raw read on a blocking socket would stall
// the scheduler. Under the race detector the calls go through package syscall, whose
// annotations the detector needs. Elsewhere than Linux, Wrap returns the connection
// as is.
package rawconn
