package demoupstream

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseTriggers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want triggers
	}{
		{"plain text", triggers{}},
		{"[[status:429]]", triggers{status: 429}},
		{"before [[status:503]] after", triggers{status: 503}},
		{"[[status:200]]", triggers{status: 200}},
		{"[[status:199]]", triggers{}},
		{"[[status:600]]", triggers{}},
		{"[[status:4a9]]", triggers{}},
		{"[[status:]]", triggers{}},
		{"[[status:500]] [[status:429]]", triggers{status: 429}},
		{"[[sleep:250ms]]", triggers{sleep: 250 * time.Millisecond}},
		{"[[sleep:1h]]", triggers{sleep: maxSleep}},
		{"[[sleep:-1s]]", triggers{}},
		{"[[sleep:soon]]", triggers{}},
		{"[[drop]]", triggers{drop: true}},
		{"[[drop:now]]", triggers{}},
		{"[[DROP]]", triggers{}},
		{"[[drop]][[sleep:2s]][[status:429]]", triggers{status: 429, sleep: 2 * time.Second, drop: true}},
		{"[[drop", triggers{}},
		{"[[[drop]]", triggers{}},
		{"[[x]] [[drop]]", triggers{drop: true}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if got := parseTriggers(tt.in); got != tt.want {
				t.Errorf("parseTriggers(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestCutPieces(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s     string
		limit int
		want  []string
	}{
		{"Hello from the demo", 0, []string{"Hello", " from", " the", " demo"}},
		{"Hello from the demo", 2, []string{"Hello", " from"}},
		{"a\n\nb\tc  d", 0, []string{"a", "\n\nb", "\tc", "  d"}},
		{"ünï cødé 🙂", 0, []string{"ünï", " cødé", " 🙂"}},
		{"one", 5, []string{"one"}},
		{"", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.s, func(t *testing.T) {
			t.Parallel()
			var got []string
			for i := 0; i < len(tt.s) && (tt.limit == 0 || len(got) < tt.limit); {
				j := nextPiece(tt.s, i)
				got = append(got, tt.s[i:j])
				i = j
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("pieces = %q, want %q", got, tt.want)
			}
			end, n := cutPieces(tt.s, tt.limit)
			if n != len(tt.want) || tt.s[:end] != strings.Join(tt.want, "") {
				t.Errorf("cutPieces = %d, %d; want %q in %d pieces", end, n, strings.Join(tt.want, ""), len(tt.want))
			}
		})
	}
}

func TestAppendString(t *testing.T) {
	t.Parallel()
	tests := []string{
		"",
		"plain",
		`quote " and backslash \`,
		"newline\n tab\t cr\r",
		"controls \x00 \x01 \x08 \x0c \x1f \x7f",
		"<html> & </html>",
		"ünïcødé 🙂 日本語",
		"line sep \u2028 para sep \u2029",
		"invalid \xff\xfe utf8 \xe2\x82",
	}
	for _, s := range tests {
		t.Run(s, func(t *testing.T) {
			t.Parallel()
			b := appendString(nil, s)
			if !json.Valid(b) {
				t.Fatalf("invalid JSON: %s", b)
			}
			var got string
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			std, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			var want string
			if err := json.Unmarshal(std, &want); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("decodes to %q, encoding/json round-trips to %q", got, want)
			}
			if strings.ContainsAny(string(b), "\u2028\u2029") {
				t.Errorf("U+2028/U+2029 left unescaped: %s", b)
			}
		})
	}
}
