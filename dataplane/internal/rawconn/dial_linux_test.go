package rawconn_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/rawconn"
)

// TestWrapDialUnderTLS: net/http's transport over WrapDial speaks TLS (HTTP/2 and
// HTTP/1.1) to a real server through raw connections, large bodies both ways.
func TestWrapDialUnderTLS(t *testing.T) {
	for _, h2 := range []bool{true, false} {
		name := "http1.1"
		if h2 {
			name = "h2"
		}
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				w.Header().Set("X-Proto", r.Proto)
				w.Write([]byte(strings.ToUpper(string(b))))
			}))
			srv.EnableHTTP2 = h2
			srv.StartTLS()
			defer srv.Close()

			var raw atomic.Int32
			d := &net.Dialer{}
			wrapped := rawconn.WrapDial(d.DialContext)
			tr := srv.Client().Transport.(*http.Transport).Clone()
			tr.ForceAttemptHTTP2 = h2
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := wrapped(ctx, network, addr)
				if _, ok := c.(*rawconn.Conn); ok {
					raw.Add(1)
				}
				return c, err
			}
			tr.TLSClientConfig = &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
			client := &http.Client{Transport: tr}
			defer tr.CloseIdleConnections()

			body := strings.Repeat("abc", 200_000) // 600 KB each way
			for range 3 {
				resp, err := client.Post(srv.URL, "text/plain", strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(got) != strings.ToUpper(body) {
					t.Fatalf("answer of %d bytes, %v", len(got), err)
				}
				if want := map[bool]string{true: "HTTP/2.0", false: "HTTP/1.1"}[h2]; resp.Header.Get("X-Proto") != want {
					t.Fatalf("spoke %s, want %s", resp.Header.Get("X-Proto"), want)
				}
			}
			if raw.Load() != 1 {
				t.Fatalf("%d raw connections dialed, want 1 (kept alive)", raw.Load())
			}
		})
	}
}

func TestWrapDialPassesErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c, err := rawconn.WrapDial((&net.Dialer{}).DialContext)(context.Background(), "tcp", addr)
	if err == nil || c != nil {
		t.Fatalf("dial of a closed port = %v, %v; want an error and no conn", c, err)
	}
}
