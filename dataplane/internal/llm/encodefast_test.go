package llm

import (
	"bytes"
	"encoding/json"
	"testing"
)

var encodeFastSeeds = []string{"", "model", "gpt-4o", "a<b", "a&b", "x>y", "q\"q", "b\\s", "t\tt", "\x7f", "é", "\xff", "\u2028", "hello world"}

func checkAppendJSONString(t *testing.T, s string) {
	t.Helper()
	want, _ := json.Marshal(s)
	if got := AppendJSONString([]byte("pre"), s); !bytes.Equal(got, append([]byte("pre"), want...)) {
		t.Fatalf("AppendJSONString(%q) = %s, want %s", s, got[3:], want)
	}
}

func checkContentTextLen(t *testing.T, raw []byte) {
	t.Helper()
	if !json.Valid(raw) {
		return // content comes from a decoded request: always valid JSON
	}
	if got, want := contentTextLen(raw), len(contentText(raw)); got != want {
		t.Fatalf("contentTextLen(%q) = %d, want %d", raw, got, want)
	}
}

func TestEncodeFastPaths(t *testing.T) {
	for _, s := range encodeFastSeeds {
		checkAppendJSONString(t, s)
		raw, _ := json.Marshal(s)
		checkContentTextLen(t, raw)
		checkContentTextLen(t, []byte("\""+s+"\""))
		checkContentTextLen(t, []byte(" \""+s+"\" "))
	}
	for _, raw := range []string{`null`, ` null `, `[{"type":"text","text":"ab"}]`, `"a\u00e9"`, `"a\"b"`, `"\ud800"`, `""`, `5`} {
		checkContentTextLen(t, []byte(raw))
	}
}

func FuzzEncodeFastPaths(f *testing.F) {
	for _, s := range encodeFastSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkAppendJSONString(t, s)
		checkContentTextLen(t, []byte(s))
		checkContentTextLen(t, []byte("\""+s+"\""))
	})
}
