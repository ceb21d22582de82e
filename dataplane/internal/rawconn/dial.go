package rawconn

import (
	"context"
	"net"
)

// WrapDial returns a dial function that dials with dial and wraps what it returns:
// for transports that only take a DialContext (net/http's, for TLS upstreams, whose
// tls.Conn then reads and writes through the raw connection).
func WrapDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return Wrap(c), nil
	}
}
