// Package keys mints team API keys. A key is shown once; only its SHA-256 is kept.
//
// A key reads gate_<id>_<secret>: the prefix lets secret scanners find leaked keys,
// the 12-character id names the key in logs, usage and the console without revealing
// it, and the secret carries 190 bits from crypto/rand. Because the secret is random
// and long, a plain SHA-256 is a sufficient verifier (no password-hashing function).
package keys

import (
	"crypto/rand"
	"crypto/sha256"
)

// Prefix starts every team key.
const Prefix = "gate_"

const (
	idLen     = 12
	secretLen = 32
	idChars   = "abcdefghijklmnopqrstuvwxyz0123456789"
	secChars  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// Minted is a freshly generated key. Secret is the whole key string, to be shown to
// the caller exactly once.
type Minted struct {
	ID     string
	Secret string
	SHA256 [32]byte
}

// Mint generates a new key.
func Mint() Minted {
	id := randomString(idLen, idChars)
	secret := Prefix + id + "_" + randomString(secretLen, secChars)
	return Minted{ID: id, Secret: secret, SHA256: sha256.Sum256([]byte(secret))}
}

// Display is the form shown in lists: the prefix and id, never the secret.
func Display(id string) string { return Prefix + id + "_…" }

// randomString draws n characters uniformly from alphabet by rejection sampling.
func randomString(n int, alphabet string) string {
	out := make([]byte, 0, n)
	limit := 256 - 256%len(alphabet)
	buf := make([]byte, n*2)
	for len(out) < n {
		rand.Read(buf) //nolint:errcheck // crypto/rand.Read never fails
		for _, b := range buf {
			if int(b) < limit {
				out = append(out, alphabet[int(b)%len(alphabet)])
				if len(out) == n {
					break
				}
			}
		}
	}
	return string(out)
}
