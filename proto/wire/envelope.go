package wire

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"google.golang.org/protobuf/proto"
)

// ErrUnknownKey means an envelope names a key id the keyring does not hold.
var ErrUnknownKey = errors.New("unknown config key id")

// ErrTampered means an envelope failed authentication or its hash does not match.
var ErrTampered = errors.New("config envelope failed verification")

// Keyring holds the AES-256 keys that seal config envelopes. The first key seals; all
// keys open, so keys can rotate without a flag day.
type Keyring struct {
	active string
	aeads  map[string]cipher.AEAD
	raw    map[string][]byte // for Derive
	// nonceKeys derive SealBytesFixed's nonces, one per key.
	nonceKeys map[string][]byte
}

// ParseKeyring parses "id:base64key[,id:base64key...]"; every key must be 32 bytes.
func ParseKeyring(s string) (*Keyring, error) {
	kr := &Keyring{aeads: map[string]cipher.AEAD{}, raw: map[string][]byte{}, nonceKeys: map[string][]byte{}}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, b64, ok := strings.Cut(part, ":")
		if !ok || id == "" {
			return nil, errors.New("parse keyring: want id:base64key")
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("parse keyring: key %q: not base64", id)
		}
		if err := kr.add(id, raw); err != nil {
			return nil, fmt.Errorf("parse keyring: %w", err)
		}
	}
	if kr.active == "" {
		return nil, errors.New("parse keyring: no keys")
	}
	return kr, nil
}

// NewKeyring returns a keyring with one key.
func NewKeyring(id string, key []byte) (*Keyring, error) {
	kr := &Keyring{aeads: map[string]cipher.AEAD{}, raw: map[string][]byte{}, nonceKeys: map[string][]byte{}}
	if err := kr.add(id, key); err != nil {
		return nil, err
	}
	return kr, nil
}

func (kr *Keyring) add(id string, key []byte) error {
	if len(key) != 32 {
		return fmt.Errorf("key %q: want 32 bytes, got %d", id, len(key))
	}
	if _, dup := kr.aeads[id]; dup {
		return fmt.Errorf("key %q: duplicate id", id)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return fmt.Errorf("key %q: %w", id, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("key %q: %w", id, err)
	}
	nk, err := hkdf.Key(sha256.New, key, nil, "gatehouse fixed nonce", 32)
	if err != nil {
		return fmt.Errorf("key %q: %w", id, err)
	}
	kr.aeads[id] = aead
	kr.raw[id] = append([]byte(nil), key...)
	kr.nonceKeys[id] = nk
	if kr.active == "" {
		kr.active = id
	}
	return nil
}

// ActiveKeyID is the id of the key that seals new envelopes.
func (kr *Keyring) ActiveKeyID() string { return kr.active }

// Derive returns a keyring for another purpose, named by label: each key is
// HKDF-SHA256 of the same key with label as its info, under the same id, and the
// same key is active. What one keyring seals the other cannot open.
func (kr *Keyring) Derive(label string) (*Keyring, error) {
	out := &Keyring{aeads: map[string]cipher.AEAD{}, raw: map[string][]byte{}, nonceKeys: map[string][]byte{}}
	add := func(id string) error {
		key, err := hkdf.Key(sha256.New, kr.raw[id], nil, label, 32)
		if err != nil {
			return fmt.Errorf("derive %q: %w", label, err)
		}
		return out.add(id, key)
	}
	if err := add(kr.active); err != nil { // first: it stays the active one
		return nil, err
	}
	for id := range kr.raw {
		if id != kr.active {
			if err := add(id); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

var deterministic = proto.MarshalOptions{Deterministic: true}

// MarshalSnapshot encodes a snapshot deterministically and returns the bytes and their
// hex SHA-256, the content hash carried in SnapshotMeta.
func MarshalSnapshot(s *gatehousev1.Snapshot) ([]byte, string, error) {
	body, err := deterministic.Marshal(s)
	if err != nil {
		return nil, "", fmt.Errorf("marshal snapshot: %w", err)
	}
	sum := sha256.Sum256(body)
	return body, hex.EncodeToString(sum[:]), nil
}

// SealBytes encrypts plaintext under the active key, binding aad, and returns the key id
// and nonce||ciphertext. The control plane uses it for credentials at rest.
func (kr *Keyring) SealBytes(plaintext, aad []byte) (string, []byte, error) {
	aead := kr.aeads[kr.active]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return kr.active, aead.Seal(nonce, nonce, plaintext, aad), nil
}

// SealBytesFixed is SealBytes with the nonce derived from aad and plaintext (HMAC-
// SHA256 under a key derived from the sealing key): the same input always seals to the
// same output. Only for values whose equality may show, such as ids a caller compares;
// OpenBytes opens it.
func (kr *Keyring) SealBytesFixed(plaintext, aad []byte) (string, []byte) {
	aead := kr.aeads[kr.active]
	mac := hmac.New(sha256.New, kr.nonceKeys[kr.active])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(aad)))
	mac.Write(n[:])
	mac.Write(aad)
	mac.Write(plaintext)
	nonce := mac.Sum(make([]byte, 0, sha256.Size+len(plaintext)+aead.Overhead()))[:aead.NonceSize()]
	return kr.active, aead.Seal(nonce, nonce, plaintext, aad)
}

// OpenBytes reverses SealBytes and SealBytesFixed.
func (kr *Keyring) OpenBytes(keyID string, sealed, aad []byte) ([]byte, error) {
	aead, ok := kr.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("open: %w %q", ErrUnknownKey, keyID)
	}
	if len(sealed) < aead.NonceSize() {
		return nil, fmt.Errorf("open: %w: too short", ErrTampered)
	}
	nonce, ct := sealed[:aead.NonceSize()], sealed[aead.NonceSize():]
	out, err := aead.Open(nil, nonce, ct, aad)
	if err != nil {
		return nil, fmt.Errorf("open: %w", ErrTampered)
	}
	return out, nil
}

// Seal encrypts a snapshot body (from MarshalSnapshot) under the active key and returns
// the encoded Envelope ready for the KV bucket. meta.Sha256 must describe body.
func (kr *Keyring) Seal(meta *gatehousev1.SnapshotMeta, body []byte) ([]byte, error) {
	aad, err := deterministic.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("seal: marshal meta: %w", err)
	}
	aead := kr.aeads[kr.active]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	env := &gatehousev1.Envelope{
		Meta:       meta,
		KeyId:      kr.active,
		Nonce:      nonce,
		Ciphertext: aead.Seal(nil, nonce, body, aad),
	}
	out, err := deterministic.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("seal: marshal envelope: %w", err)
	}
	return out, nil
}

// Open decodes and decrypts a KV value, verifies the content hash and returns the
// meta and the snapshot.
func (kr *Keyring) Open(value []byte) (*gatehousev1.SnapshotMeta, *gatehousev1.Snapshot, error) {
	var env gatehousev1.Envelope
	if err := proto.Unmarshal(value, &env); err != nil {
		return nil, nil, fmt.Errorf("open envelope: %w", err)
	}
	if env.Meta == nil {
		return nil, nil, fmt.Errorf("open envelope: %w: no meta", ErrTampered)
	}
	aead, ok := kr.aeads[env.KeyId]
	if !ok {
		return env.Meta, nil, fmt.Errorf("open envelope: %w %q", ErrUnknownKey, env.KeyId)
	}
	if len(env.Nonce) != aead.NonceSize() {
		return env.Meta, nil, fmt.Errorf("open envelope: %w: bad nonce", ErrTampered)
	}
	aad, err := deterministic.Marshal(env.Meta)
	if err != nil {
		return env.Meta, nil, fmt.Errorf("open envelope: marshal meta: %w", err)
	}
	body, err := aead.Open(nil, env.Nonce, env.Ciphertext, aad)
	if err != nil {
		return env.Meta, nil, fmt.Errorf("open envelope: %w", ErrTampered)
	}
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != env.Meta.Sha256 {
		return env.Meta, nil, fmt.Errorf("open envelope: %w: sha256 mismatch", ErrTampered)
	}
	var snap gatehousev1.Snapshot
	if err := proto.Unmarshal(body, &snap); err != nil {
		return env.Meta, nil, fmt.Errorf("open envelope: unmarshal snapshot: %w", err)
	}
	return env.Meta, &snap, nil
}
