package wire

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"google.golang.org/protobuf/proto"
)

func testKeyring(t *testing.T, spec string) *Keyring {
	t.Helper()
	kr, err := ParseKeyring(spec)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func key(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }

func TestSealOpen(t *testing.T) {
	t.Parallel()
	kr := testKeyring(t, "k1:"+key(1))
	snap := &gatehousev1.Snapshot{Org: &gatehousev1.Organization{Id: "o1"}, Providers: []*gatehousev1.Provider{{Id: "p", ApiKey: "sk-secret"}}}
	body, sum, err := MarshalSnapshot(snap)
	if err != nil {
		t.Fatal(err)
	}
	meta := &gatehousev1.SnapshotMeta{OrgId: "o1", Region: "eu", Version: 3, Sha256: sum}
	value, err := kr.Seal(meta, body)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(value, []byte("sk-secret")) {
		t.Fatal("credential in clear in the sealed value")
	}
	gotMeta, gotSnap, err := kr.Open(value)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(gotMeta, meta) || !proto.Equal(gotSnap, snap) {
		t.Fatal("round trip changed the snapshot")
	}

	// A rotated keyring (new key first) still opens old values and seals with the new key.
	rotated := testKeyring(t, "k2:"+key(2)+",k1:"+key(1))
	if _, _, err := rotated.Open(value); err != nil {
		t.Fatalf("rotated keyring cannot open old value: %v", err)
	}
	if rotated.ActiveKeyID() != "k2" {
		t.Fatalf("active = %s", rotated.ActiveKeyID())
	}

	tamper := func(f func(*gatehousev1.Envelope)) []byte {
		var env gatehousev1.Envelope
		if err := proto.Unmarshal(value, &env); err != nil {
			t.Fatal(err)
		}
		f(&env)
		b, _ := proto.Marshal(&env)
		return b
	}
	tests := []struct {
		name  string
		kr    *Keyring
		value []byte
		want  error
	}{
		{"other key", testKeyring(t, "k1:"+key(9)), value, ErrTampered},
		{"unknown key id", testKeyring(t, "k9:"+key(1)), value, ErrUnknownKey},
		{"meta changed", kr, tamper(func(e *gatehousev1.Envelope) { e.Meta.Version = 99 }), ErrTampered},
		{"ciphertext flipped", kr, tamper(func(e *gatehousev1.Envelope) { e.Ciphertext[0] ^= 1 }), ErrTampered},
		{"short nonce", kr, tamper(func(e *gatehousev1.Envelope) { e.Nonce = e.Nonce[:4] }), ErrTampered},
		{"no meta", kr, tamper(func(e *gatehousev1.Envelope) { e.Meta = nil }), ErrTampered},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := tc.kr.Open(tc.value); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if _, _, err := kr.Open([]byte("\xff\xffgarbage")); err == nil {
		t.Fatal("garbage opened")
	}
}

func TestSealBytesBindsAAD(t *testing.T) {
	t.Parallel()
	kr := testKeyring(t, "m1:"+key(3))
	kid, sealed, err := kr.SealBytes([]byte("hunter2"), []byte("org-a"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := kr.OpenBytes(kid, sealed, []byte("org-a")); err != nil || string(got) != "hunter2" {
		t.Fatalf("open = %q, %v", got, err)
	}
	if _, err := kr.OpenBytes(kid, sealed, []byte("org-b")); !errors.Is(err, ErrTampered) {
		t.Fatalf("opened under another org: %v", err)
	}
}

func TestParseKeyring(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "k1", "k1:notbase64!", "k1:" + base64.StdEncoding.EncodeToString([]byte("short")), "k1:" + key(1) + ",k1:" + key(2), ":" + key(1)} {
		if _, err := ParseKeyring(bad); err == nil {
			t.Errorf("ParseKeyring(%q) accepted", bad)
		}
	}
}

func TestConfigKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key, org string
		ok       bool
	}{
		{ConfigKey("eu", "o1"), "o1", true},
		{"cfg.us.o1", "", false},
		{"cfg.eu.", "", false},
		{"cfg.eu.a.b", "", false},
		{ConfigKey("eu", GlobalConfigID), GlobalConfigID, true},
	}
	for _, tc := range tests {
		org, ok := OrgFromConfigKey("eu", tc.key)
		if org != tc.org || ok != tc.ok {
			t.Errorf("OrgFromConfigKey(%q) = %q, %v", tc.key, org, ok)
		}
	}
	for _, r := range []string{"", "EU", "eu.west", "eu west", "a-very-long-region-name-beyond-32-chars"} {
		if ValidRegion(r) == nil {
			t.Errorf("ValidRegion(%q) accepted", r)
		}
	}
}

func TestDeriveSeparatesPurposes(t *testing.T) {
	t.Parallel()
	kr := testKeyring(t, "k2:"+key(2)+",k1:"+key(1))
	ids, err := kr.Derive("gatehouse response ids v1")
	if err != nil {
		t.Fatal(err)
	}
	if ids.ActiveKeyID() != "k2" {
		t.Fatalf("derived active key %q, want k2", ids.ActiveKeyID())
	}
	kid, sealed, err := ids.SealBytes([]byte("resp_1"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ids.OpenBytes(kid, sealed, []byte("aad")); err != nil || string(got) != "resp_1" {
		t.Fatalf("derived open = %q, %v", got, err)
	}
	if _, err := kr.OpenBytes(kid, sealed, []byte("aad")); !errors.Is(err, ErrTampered) {
		t.Fatalf("the config key opened what the derived key sealed: %v", err)
	}
	other, err := kr.Derive("another purpose")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.OpenBytes(kid, sealed, []byte("aad")); !errors.Is(err, ErrTampered) {
		t.Fatalf("another label's key opened it: %v", err)
	}
	// The same keys derive the same keyring (every gateway agrees), and a rotated-out
	// key still opens what it sealed.
	again, _ := testKeyring(t, "k1:"+key(1)+",k2:"+key(2)).Derive("gatehouse response ids v1")
	if got, err := again.OpenBytes(kid, sealed, []byte("aad")); err != nil || string(got) != "resp_1" {
		t.Fatalf("re-derived open = %q, %v", got, err)
	}
}

func TestSealBytesFixedIsDeterministic(t *testing.T) {
	t.Parallel()
	kr := testKeyring(t, "k1:"+key(4))
	kid, a := kr.SealBytesFixed([]byte("resp_1"), []byte("org/team"))
	_, b := kr.SealBytesFixed([]byte("resp_1"), []byte("org/team"))
	if !bytes.Equal(a, b) {
		t.Fatal("the same input sealed twice differs")
	}
	if got, err := kr.OpenBytes(kid, a, []byte("org/team")); err != nil || string(got) != "resp_1" {
		t.Fatalf("open = %q, %v", got, err)
	}
	_, c := kr.SealBytesFixed([]byte("resp_2"), []byte("org/team"))
	_, d := kr.SealBytesFixed([]byte("resp_1"), []byte("org/other"))
	if bytes.Equal(a[:12], c[:12]) || bytes.Equal(a[:12], d[:12]) {
		t.Fatal("another plaintext or aad got the same nonce")
	}
	if _, err := kr.OpenBytes(kid, a, []byte("org/other")); !errors.Is(err, ErrTampered) {
		t.Fatalf("opened under another aad: %v", err)
	}
}
