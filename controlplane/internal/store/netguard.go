package store

import (
	"context"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/proto/wire"
)

// metadataHosts are cloud metadata endpoints by name.
var metadataHosts = []string{"metadata.google.internal", "metadata", "metadata.azure.com", "instance-data"}

// Resolver looks up host addresses; net.DefaultResolver in production.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// checkUpstreamURL validates an upstream URL (http or https, a host, no credentials,
// query or fragment) and refuses hosts that are, or resolve to, link-local or cloud
// metadata addresses — the classic SSRF targets — unless the platform allows them.
// A host that does not resolve now is accepted: the gateway resolves at dial time.
func (s *Store) checkUpstreamURL(ctx context.Context, field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalid(field, "must be an absolute http or https URL")
	}
	if u.User != nil {
		return invalid(field, "must not carry credentials; use the credential field")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return invalid(field, "must not have a query or fragment")
	}
	if s.allowLinkLocal {
		return nil
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	for _, h := range metadataHosts {
		if host == h {
			return invalid(field, "points at a cloud metadata service; refused")
		}
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		addrs, _ = s.resolver.LookupNetIP(ctx, "ip", host)
	}
	for _, a := range addrs {
		if wire.UpstreamAddrRefused(a) {
			return invalid(field, "resolves to a link-local, cloud metadata or unroutable address; refused")
		}
	}
	return nil
}

var _ Resolver = net.DefaultResolver
