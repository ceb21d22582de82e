package llm

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	protowire "github.com/gatehouse-dev/gatehouse/proto/wire"
)

func testResponseIDs(t *testing.T, spec string) *ResponseIDs {
	t.Helper()
	kr, err := protowire.ParseKeyring(spec)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := NewResponseIDs(kr)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestResponseIDsSealOpen(t *testing.T) {
	key := func(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }
	ids := testResponseIDs(t, "k1:"+key(1))
	sealed, ok := ids.seal("org/team-a", "prov-1", "resp_abc")
	if !ok || !strings.HasPrefix(sealed, sealedPrefix) || strings.Contains(sealed, "resp_abc") {
		t.Fatalf("seal = %q, %v", sealed, ok)
	}
	if p, u, ok := ids.open("org/team-a", sealed); !ok || p != "prov-1" || u != "resp_abc" {
		t.Fatalf("open = %q %q %v", p, u, ok)
	}
	if again, _ := ids.seal("org/team-a", "prov-1", "resp_abc"); again != sealed {
		t.Fatalf("sealed twice: %q and %q", sealed, again)
	}
	if other, _ := ids.seal("org/team-b", "prov-1", "resp_abc"); other == sealed {
		t.Fatal("two teams got the same id")
	}
	if _, _, ok := ids.open("org/team-b", sealed); ok {
		t.Fatal("another team opened it")
	}
	// After a rotation (a new active key first) the old id still opens; a gateway
	// without the old key does not.
	rotated := testResponseIDs(t, "k2:"+key(2)+",k1:"+key(1))
	if _, u, ok := rotated.open("org/team-a", sealed); !ok || u != "resp_abc" {
		t.Fatal("the rotated keyring does not open an id sealed before")
	}
	if _, _, ok := testResponseIDs(t, "k2:"+key(2)).open("org/team-a", sealed); ok {
		t.Fatal("a keyring without the key opened it")
	}
	for _, bad := range []string{"", sealedPrefix, sealedPrefix + "AA", sealedPrefix + "_w", sealedPrefix + "!!", "resp_abc",
		sealedPrefix + base64.RawURLEncoding.EncodeToString([]byte{200, 1, 2}), sealed[:len(sealed)-2], sealed + "A",
		sealedPrefix + strings.Repeat("A", 5000),
		// A key id length of 255 with enough bytes after it: 1+255 must not wrap.
		sealedPrefix + base64.RawURLEncoding.EncodeToString(append([]byte{255}, bytes.Repeat([]byte{1}, 300)...))} {
		if _, _, ok := ids.open("org/team-a", bad); ok {
			t.Errorf("open(%q) succeeded", bad)
		}
	}
}

func TestIDSealerReplacesBothIDs(t *testing.T) {
	ids := testResponseIDs(t, "k1:"+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	r := &ResponsesRequest{body: &responsesBody{PreviousResponseID: "resp_gh1PREV"}, upstreamPrevious: "resp_old"}
	s := newIDSealer(ids, "org/team", "prov", r)
	body := []byte(`{"id":"resp_new","previous_response_id":"resp_old","output":[{"id":"msg_1","text":"resp_new is my id"}]}`)
	s.learn(body)
	out := string(s.apply(body))
	if strings.Contains(out, `"resp_new"`) || strings.Contains(out, `"resp_old"`) || !strings.Contains(out, `"previous_response_id":"resp_gh1PREV"`) ||
		!strings.Contains(out, "resp_new is my id") || !strings.Contains(out, `"msg_1"`) {
		t.Fatalf("sealed body = %s", out)
	}
	var sealed string
	if v, ok := members([]byte(out), "id"); !ok || !decodeString(v[0], &sealed) {
		t.Fatal("no id")
	}
	if p, u, ok := ids.open("org/team", sealed); !ok || p != "prov" || u != "resp_new" {
		t.Fatalf("sealed id opens to %q %q %v", p, u, ok)
	}
	// A long id is replaced inside texts too (an error message names it); a short one
	// only as a whole string.
	long := newIDSealer(ids, "org/team", "prov", &ResponsesRequest{body: &responsesBody{}})
	ev := []byte(`{"type":"response.failed","response":{"id":"resp_0123456789abcdef","error":{"message":"response resp_0123456789abcdef failed"}}}`)
	long.learn([]byte(`{"id":"resp_0123456789abcdef"}`))
	if out := string(long.apply(ev)); strings.Contains(out, "resp_0123456789abcdef") {
		t.Fatalf("the long id survived: %s", out)
	}
	// Without sealing everything is relayed as it came.
	var none *idSealer
	none.learn(body)
	if string(none.apply(body)) != string(body) {
		t.Fatal("a nil sealer changed the body")
	}
}
