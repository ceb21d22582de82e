// Package cptest builds control plane pieces for tests: a store on a fresh cloned
// database, an embedded NATS server with the JetStream resources, and keyrings.
package cptest

import (
	"context"
	"crypto/rand"
	"log/slog"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/natsbus"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	"github.com/gatehouse-dev/gatehouse/controlplane/pgtest"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Keyring returns a keyring with one random key named id.
func Keyring(t testing.TB, id string) *wire.Keyring {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key) //nolint:errcheck // never fails
	kr, err := wire.NewKeyring(id, key)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// Store returns a store on a fresh database, with a random master key.
func Store(t testing.TB) *store.Store {
	t.Helper()
	return store.New(pgtest.New(t), Keyring(t, "master-1"))
}

// NATS is an embedded NATS server with the control plane's JetStream resources.
type NATS struct {
	Server *server.Server
	URL    string
	Conn   *nats.Conn
	JS     jetstream.JetStream
	natsbus.Resources
}

// StartNATS starts an embedded server with a temp store; it stops when t ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	srv, url, err := natsbus.StartEmbedded(natsbus.EmbeddedOptions{Listen: "127.0.0.1:0", StoreDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := natsbus.Ensure(ctx, js, natsbus.EnsureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &NATS{Server: srv, URL: url, Conn: nc, JS: js, Resources: res}
}

// Eventually polls fn until it returns nil or the deadline passes.
func Eventually(t testing.TB, d time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %v: %v", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
