package wire

import (
	"net/netip"
	"testing"
)

func TestUpstreamAddrRefused(t *testing.T) {
	t.Parallel()
	for addr, refused := range map[string]bool{
		"169.254.169.254":        true, // AWS, GCP, Azure metadata
		"::ffff:169.254.169.254": true,
		"fe80::1":                true,
		"100.100.100.200":        true,
		"fd00:ec2::254":          true,
		"0.0.0.0":                true,
		"::":                     true,
		"224.0.0.1":              true,
		"127.0.0.1":              false, // a model server on the gateway's host
		"10.1.2.3":               false, // vLLM on the private network
		"192.168.1.10":           false,
		"2606:4700:4700::1111":   false,
		"104.18.7.192":           false,
	} {
		if got := UpstreamAddrRefused(netip.MustParseAddr(addr)); got != refused {
			t.Errorf("UpstreamAddrRefused(%s) = %v, want %v", addr, got, refused)
		}
	}
}
