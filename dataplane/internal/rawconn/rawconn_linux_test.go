package rawconn_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/rawconn"
)

// pair returns a loopback TCP connection's two ends: ours wrapped by wrap, and the peer's.
func pair(t testing.TB, wrap func(net.Conn) net.Conn) (ours net.Conn, peer *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p := <-accepted
	if p == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); p.Close() })
	return wrap(c), p.(*net.TCPConn)
}

// both runs f against a raw connection and, to hold it to the same behaviour,
// against the plain TCPConn.
func both(t *testing.T, f func(t *testing.T, wrap func(net.Conn) net.Conn)) {
	t.Run("raw", func(t *testing.T) {
		f(t, func(c net.Conn) net.Conn {
			w := rawconn.Wrap(c)
			if _, ok := w.(*rawconn.Conn); !ok {
				t.Fatalf("Wrap(%T) = %T, want *rawconn.Conn", c, w)
			}
			return w
		})
	})
	t.Run("net", func(t *testing.T) { f(t, func(c net.Conn) net.Conn { return c }) })
}

func TestLargeExchangeBothWays(t *testing.T) {
	both(t, func(t *testing.T, wrap func(net.Conn) net.Conn) {
		c, p := pair(t, wrap)
		// 8 MiB each way, far beyond the socket buffers: writes must wait for room.
		out := make([]byte, 8<<20)
		in := make([]byte, 8<<20)
		r := rand.New(rand.NewPCG(1, 2))
		for i := range out {
			out[i] = byte(r.Uint32())
			in[i] = byte(r.Uint32())
		}
		var wg sync.WaitGroup
		var gotByPeer, gotByUs []byte
		var errs [4]error
		wg.Add(4)
		go func() { defer wg.Done(); _, errs[0] = c.Write(out) }()
		go func() { defer wg.Done(); gotByPeer, errs[1] = readN(p, len(out), 1000) }()
		go func() { defer wg.Done(); _, errs[2] = p.Write(in) }()
		go func() { defer wg.Done(); gotByUs, errs[3] = readN(c, len(in), 3000) }()
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
		if !bytes.Equal(gotByPeer, out) || !bytes.Equal(gotByUs, in) {
			t.Fatal("bytes differ after the exchange")
		}
	})
}

// readN reads n bytes in reads of at most chunk bytes (a slow, small reader).
func readN(c net.Conn, n, chunk int) ([]byte, error) {
	got := make([]byte, 0, n)
	buf := make([]byte, chunk)
	for len(got) < n {
		k, err := c.Read(buf)
		got = append(got, buf[:k]...)
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

func TestReadDeadline(t *testing.T) {
	both(t, func(t *testing.T, wrap func(net.Conn) net.Conn) {
		c, _ := pair(t, wrap)
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		start := time.Now()
		n, err := c.Read(make([]byte, 10))
		if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read = %d, %v; want a deadline error", n, err)
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("%v is not a timeout net.Error", err)
		}
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "read" {
			t.Fatalf("%#v: want an OpError with Op read", err)
		}
		if time.Since(start) < 15*time.Millisecond {
			t.Fatal("the read returned before its deadline")
		}
		// The deadline lifted, the connection reads again.
		c.SetReadDeadline(time.Time{})
	})
}

func TestWriteDeadline(t *testing.T) {
	both(t, func(t *testing.T, wrap func(net.Conn) net.Conn) {
		c, _ := pair(t, wrap) // the peer never reads
		c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := c.Write(make([]byte, 64<<20))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Write = %d, %v; want a deadline error", n, err)
		}
		if n <= 0 || n >= 64<<20 {
			t.Fatalf("Write reported %d bytes written; want the part that fit", n)
		}
	})
}

func TestPeerCloseIsEOF(t *testing.T) {
	both(t, func(t *testing.T, wrap func(net.Conn) net.Conn) {
		c, p := pair(t, wrap)
		p.Write([]byte("bye"))
		p.Close()
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "bye" {
			t.Fatalf("ReadAll = %q, %v", got, err)
		}
		if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("Read after EOF = %d, %v", n, err)
		}
	})
}

func TestPeerResetIsReadError(t *testing.T) {
	both(t, func(t *testing.T, wrap func(net.Conn) net.Conn) {
		c, p := pair(t, wrap)
		p.SetLinger(0) // close sends RST
		p.Close()
		// The read waits for the RST (bounded, should it never come).
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 1))
		var oe *net.OpError
		if !errors.Is(err, syscall.ECONNRESET) || !errors.As(err, &oe) || oe.Op != "read" {
			t.Fatalf("Read = %#v; want ECONNRESET in an OpError with Op read", err)
		}
		// Writing to the reset connection fails instead of killing the process (SIGPIPE).
		var werr error
		for range 3 {
			if _, werr = c.Write([]byte("x")); werr != nil {
				break
			}
		}
		if !errors.As(werr, &oe) || oe.Op != "write" {
			t.Fatalf("Write after reset = %#v; want an OpError with Op write", werr)
		}
	})
}

func TestCloseUnblocksRead(t *testing.T) {
	both(t, func(t *testing.T, wrap func(net.Conn) net.Conn) {
		c, _ := pair(t, wrap)
		done := make(chan error, 1)
		go func() { _, err := c.Read(make([]byte, 1)); done <- err }()
		// Give the Read time to start waiting. Were Close first, the Read would fail
		// with net.ErrClosed all the same: the pause only makes the case the one meant.
		time.Sleep(10 * time.Millisecond)
		c.Close()
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Read after Close = %v; want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not unblock the Read")
		}
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Write after Close = %v; want net.ErrClosed", err)
		}
	})
}

func TestConcurrentReadersAndWriters(t *testing.T) {
	c, p := pair(t, rawconn.Wrap)
	// Four writers of 1,000 8-byte records each; the peer echoes; four readers
	// take 8 bytes at a time. Under -race this holds Read/Write state to one caller each.
	const writers, records = 4, 1000
	go io.Copy(p, p)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := []byte{byte(w), 1, 2, 3, 4, 5, 6, 7}
			for range records {
				if _, err := c.Write(rec); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var mu sync.Mutex
	total := 0
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 8)
			for {
				mu.Lock()
				if total >= writers*records*8 {
					mu.Unlock()
					return
				}
				mu.Unlock()
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, err := c.Read(buf)
				if err != nil {
					if errors.Is(err, os.ErrDeadlineExceeded) {
						return
					}
					t.Error(err)
					return
				}
				mu.Lock()
				total += n
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if total != writers*records*8 {
		t.Fatalf("read %d bytes, want %d", total, writers*records*8)
	}
}

func TestWrapLeavesOtherConnsAlone(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := rawconn.Wrap(a); got != a {
		t.Fatalf("Wrap(pipe) = %T, want the pipe itself", got)
	}
}

func TestTCPMethodsStillThere(t *testing.T) {
	c, p := pair(t, rawconn.Wrap)
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		t.Fatal("the raw conn lost CloseWrite")
	}
	if _, ok := c.(syscall.Conn); !ok {
		t.Fatal("the raw conn lost SyscallConn")
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(p); err != nil || len(got) != 0 {
		t.Fatalf("peer after CloseWrite: %q, %v", got, err)
	}
}

// BenchmarkPingPong: one byte back and forth over loopback, raw against net.
func BenchmarkPingPong(b *testing.B) {
	for _, bc := range []struct {
		name string
		wrap func(net.Conn) net.Conn
	}{{"raw", rawconn.Wrap}, {"net", func(c net.Conn) net.Conn { return c }}} {
		b.Run(bc.name, func(b *testing.B) {
			c, p := pair(b, bc.wrap)
			go io.Copy(p, p)
			buf := []byte{1}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestZeroLengthReadAndWrite(t *testing.T) {
	both(t, func(t *testing.T, wrap func(net.Conn) net.Conn) {
		c, _ := pair(t, wrap)
		if n, err := c.Read(nil); n != 0 || err != nil {
			t.Fatalf("Read(nil) on an open conn = %d, %v; want 0, nil", n, err)
		}
		if n, err := c.Write(nil); n != 0 || err != nil {
			t.Fatalf("Write(nil) on an open conn = %d, %v; want 0, nil", n, err)
		}
		c.Close()
		if _, err := c.Read(nil); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read(nil) after Close = %v; want net.ErrClosed", err)
		}
		if _, err := c.Write(nil); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Write(nil) after Close = %v; want net.ErrClosed", err)
		}
	})
}

func TestCopyBothWays(t *testing.T) {
	both(t, func(t *testing.T, wrap func(net.Conn) net.Conn) {
		c, p := pair(t, wrap)
		body := bytes.Repeat([]byte("0123456789"), 100_000)
		// Into the conn: from a reader with WriteTo, and one without (a LimitReader).
		go func() {
			io.Copy(c, bytes.NewReader(body))                                   // ReadFrom
			io.Copy(c, io.LimitReader(bytes.NewReader(body), int64(len(body)))) // ReadFrom
			c.(interface{ CloseWrite() error }).CloseWrite()
		}()
		got, err := io.ReadAll(p)
		if err != nil || !bytes.Equal(got, append(append([]byte(nil), body...), body...)) {
			t.Fatalf("peer read %d bytes, %v; want %d", len(got), err, 2*len(body))
		}
		// Out of the conn into a writer (WriteTo).
		go func() { p.Write(body); p.Close() }()
		var buf bytes.Buffer
		if n, err := io.Copy(&buf, c); err != nil || n != int64(len(body)) || !bytes.Equal(buf.Bytes(), body) {
			t.Fatalf("copied %d bytes out, %v; want %d", n, err, len(body))
		}
	})
}

func TestFileRefused(t *testing.T) {
	c, _ := pair(t, rawconn.Wrap)
	f, err := c.(interface{ File() (*os.File, error) }).File()
	if f != nil || !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("File() = %v, %v; want an unsupported error (it would make the socket blocking)", f, err)
	}
	// The connection still works.
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
}

// TestWriteHappensBeforePeerRead: what a goroutine did before writing to the raw
// conn is visible to the goroutine that read it on the other end (through net). Under
// -race this fails if the raw calls hide the write and the read from the detector.
func TestWriteHappensBeforePeerRead(t *testing.T) {
	c, p := pair(t, rawconn.Wrap)
	shared := 0
	go func() {
		shared = 42
		c.Write([]byte{1})
	}()
	if _, err := io.ReadFull(p, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if shared != 42 {
		t.Fatalf("shared = %d after the read", shared)
	}
	// And the other way: the peer writes through net, the raw conn reads.
	go func() {
		shared = 43
		p.Write([]byte{2})
	}()
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if shared != 43 {
		t.Fatalf("shared = %d after the read", shared)
	}
}
