// Command floorproxy is a benchmark reference, not a product: a reverse proxy built
// from the gateway's own HTTP server (internal/httpserver), upstream transport
// (internal/h1transport) and garbage-collector pacing (internal/gcpace), doing none of
// the gateway's work — no key, no parsing, no limits, no usage, no logs. It forwards
// every request to one upstream and relays the answer as it arrives, as nginx does
// with proxy_buffering off.
//
// scripts/bench.sh measures it next to nginx and the gateway: the distance from nginx
// to it is what the Go runtime and these two components cost on the machine, the
// distance from it to the gateway what the gateway's own work costs.
//
//	floorproxy --listen 127.0.0.1:0 --upstream http://127.0.0.1:8081
//
// It prints its listening address on standard output.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/gcpace"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/h1transport"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/httpserver"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	upstream := flag.String("upstream", "", "base URL of the upstream (http only)")
	gcFloor := flag.Int("gc-floor-mib", 20, "as the gateway's --gc-floor-mib (0: leave GOGC alone)")
	flag.Parse()
	if err := run(*listen, *upstream, *gcFloor); err != nil {
		fmt.Fprintln(os.Stderr, "floorproxy:", err)
		os.Exit(1)
	}
}

func run(listen, upstream string, gcFloorMiB int) error {
	target, err := url.Parse(upstream)
	if err != nil || target.Scheme != "http" || target.Host == "" {
		return fmt.Errorf("--upstream must be an http:// URL, got %q", upstream)
	}
	if gcFloorMiB > 0 {
		defer gcpace.Start(uint64(gcFloorMiB) << 20).Stop()
	}
	rt, err := h1transport.New(h1transport.Options{Fallback: http.DefaultTransport})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	srv := &httpserver.Server{
		Handler:           &proxy{rt: rt, target: target, log: log},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		Logger:            log,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type proxy struct {
	rt     http.RoundTripper
	target *url.URL
	log    *slog.Logger
}

// hopByHop are the headers that describe one connection, not the message.
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true,
	"Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Content-Length": true,
}

var bufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u := *p.target
	u.Path = p.target.Path + r.URL.Path
	u.RawPath = ""
	u.RawQuery = r.URL.RawQuery
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), r.Body)
	if err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	out.ContentLength = r.ContentLength
	if r.ContentLength == 0 {
		out.Body = nil
	}
	for k, v := range r.Header {
		if !hopByHop[k] {
			out.Header[k] = v
		}
	}
	resp, err := p.rt.RoundTrip(out)
	if err != nil {
		p.log.Warn("upstream failed", "err", err)
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	h := w.Header()
	for k, v := range resp.Header {
		if !hopByHop[k] {
			h[k] = v
		}
	}
	if resp.ContentLength >= 0 {
		h["Content-Length"] = []string{strconv.FormatInt(resp.ContentLength, 10)}
	}
	w.WriteHeader(resp.StatusCode)
	// Relay what arrives as it arrives (an SSE stream event by event).
	rc := http.NewResponseController(w)
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	for {
		n, err := resp.Body.Read(*bp)
		if n > 0 {
			if _, werr := w.Write((*bp)[:n]); werr != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			panic(http.ErrAbortHandler) // cut the caller's answer: it is incomplete
		}
	}
}
