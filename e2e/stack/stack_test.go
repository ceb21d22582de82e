package stack

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestFreeAddrIsDistinctAndBelowEphemeral: the ports handed to children are never
// handed out twice and lie below the kernel's ephemeral range (which any outgoing
// connection may take as its source port).
func TestFreeAddrIsDistinctAndBelowEphemeral(t *testing.T) {
	first := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			first, _ = strconv.Atoi(f[0])
		}
	}
	seen := map[string]bool{}
	for range 300 {
		addr, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		if seen[addr] {
			t.Fatalf("%s handed out twice", addr)
		}
		seen[addr] = true
		_, port, _ := net.SplitHostPort(addr)
		if p, _ := strconv.Atoi(port); first-12000 >= 10240 && (p >= first || p < 10240 || p == 5432 || p == 4222) {
			t.Fatalf("port %d: outside [10240, %d) or a well-known service's", p, first)
		}
	}
}
