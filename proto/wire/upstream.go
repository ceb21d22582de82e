package wire

import "net/netip"

// metadataAddrs are cloud metadata endpoints outside the link-local ranges.
var metadataAddrs = [...]netip.Addr{
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	netip.MustParseAddr("fd00:ec2::254"),   // AWS IMDS over IPv6
}

// UpstreamAddrRefused reports whether no tenant's upstream may live at a: link-local
// addresses (where cloud metadata services answer), unspecified and multicast
// addresses, and the known metadata addresses elsewhere. Both planes apply it: the
// control plane refuses such upstream URLs when they are registered, and gateways
// refuse to connect to such an address at dial time, after DNS, because a name can
// resolve differently by then. An operator may allow them on both planes.
func UpstreamAddrRefused(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsUnspecified() || a.IsMulticast() {
		return true
	}
	for _, m := range metadataAddrs {
		if a == m {
			return true
		}
	}
	return false
}
