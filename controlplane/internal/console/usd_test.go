package console

import "testing"

func TestParseUSD(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"": 0, "0": 0, "2.50": 2_500_000, "$0.15": 150_000, ".5": 500_000, "10": 10_000_000, " 0.000001 ": 1} {
		if got, ok := parseUSD(in); !ok || got != want {
			t.Errorf("parseUSD(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{".-5", "1.-5", "-1", "+1", "1.+5", "1.0000001", "abc", ".", "1e3", "1,5"} {
		if got, ok := parseUSD(in); ok {
			t.Errorf("parseUSD(%q) = %d, accepted", in, got)
		}
	}
}
