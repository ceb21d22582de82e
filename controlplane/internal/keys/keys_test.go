package keys

import (
	"crypto/sha256"
	"regexp"
	"testing"
)

func TestMint(t *testing.T) {
	t.Parallel()
	shape := regexp.MustCompile(`^gate_([a-z0-9]{12})_[A-Za-z0-9]{32}$`)
	seen := map[string]bool{}
	for range 1000 {
		k := Mint()
		m := shape.FindStringSubmatch(k.Secret)
		if m == nil {
			t.Fatalf("key %q does not match %v", k.Secret, shape)
		}
		if m[1] != k.ID {
			t.Fatalf("id %q not embedded in %q", k.ID, k.Secret)
		}
		if k.SHA256 != sha256.Sum256([]byte(k.Secret)) {
			t.Fatal("SHA256 is not the hash of the whole key")
		}
		if seen[k.ID] {
			t.Fatalf("duplicate id %q in 1000 keys", k.ID)
		}
		seen[k.ID] = true
	}
}
