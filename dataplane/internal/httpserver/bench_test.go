package httpserver

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime/metrics"
	"strconv"
	"testing"
)

// BenchmarkServer compares this server with net/http's on one trivial handler, over
// loopback keep-alive connections (one per parallel client). The client is a raw
// connection with a minimal response parser, so the allocations counted are nearly
// all the server's. goroutines/op counts the goroutines started per request.
func BenchmarkServer(b *testing.B) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "hello, world\n")
	})
	b.Run("httpserver", func(b *testing.B) {
		addr := startServer(b, &Server{Handler: handler})
		benchKeepAlive(b, addr)
	})
	b.Run("net_http", func(b *testing.B) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		s := &http.Server{Handler: handler}
		go s.Serve(l)
		b.Cleanup(func() { s.Close() })
		benchKeepAlive(b, l.Addr().String())
	})
}

func benchKeepAlive(b *testing.B, addr string) {
	req := []byte("GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
	created := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(created)
	before := created[0].Value.Uint64()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for pb.Next() {
			if _, err := c.Write(req); err != nil {
				b.Error(err)
				return
			}
			if err := readAnswer(br); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	metrics.Read(created)
	b.ReportMetric(float64(created[0].Value.Uint64()-before)/float64(b.N), "goroutines/op")
}

// readAnswer reads a response with a Content-Length, without allocating.
func readAnswer(br *bufio.Reader) error {
	length := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			length, err = strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				return err
			}
		}
	}
	if length < 0 {
		return errors.New("no Content-Length")
	}
	_, err := br.Discard(length)
	return err
}
