package guardrail

import (
	"encoding/base64"
	"strings"
	"testing"
)

// Text files in base64 reach providers that read them (Gemini takes any as inline
// data): their text is checked whatever the alphabet, padded or not, for every textual
// media type.
func TestCheckRequestJSONTextFilesInBase64(t *testing.T) {
	t.Parallel()
	text := "contact bob@example.com ??? ~~~ >>>"
	std := base64.StdEncoding.EncodeToString([]byte(text))
	url := base64.URLEncoding.EncodeToString([]byte(text))
	rawURL := base64.RawURLEncoding.EncodeToString([]byte(text))
	block := mustCompile(t, newRule("email", detEmail, modeBlock, dirRequest))
	redact := mustCompile(t, newRule("email", detEmail, modeRedact, dirRequest))
	file := func(fd string) string {
		return `{"messages":[{"role":"user","content":[{"type":"file","file":{"filename":"a","file_data":"` + fd + `"}}]}]}`
	}
	doc := func(mediaType, data string) string {
		return `{"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"` + mediaType + `","data":"` + data + `"}}]}]}`
	}
	for _, tc := range []struct{ name, body string }{
		{"url-safe data url", file("data:text/plain;base64," + url)},
		{"url-safe unpadded", file("data:text/csv;base64," + rawURL)},
		{"json", file("data:application/json;base64," + std)},
		{"xml suffix", file("data:application/atom+xml;base64," + std)},
		{"json suffix, case", file("data:Application/LD+JSON;charset=utf-8;base64," + std)},
		{"messages base64 text document", doc("text/plain", std)},
		{"messages base64 json document, url-safe", doc("application/json", url)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if o, err := block.CheckRequestJSON([]byte(tc.body)); err != nil || o.Blocked == nil {
				t.Errorf("block: blocked=%v err=%v, want blocked", o.Blocked != nil, err)
			}
			o, err := redact.CheckRequestJSON([]byte(tc.body))
			if err != nil || !o.Changed || strings.Contains(string(o.Body), std[:20]) || strings.Contains(string(o.Body), url[:20]) {
				t.Errorf("redact: changed=%v err=%v body %s", o.Changed, err, o.Body)
			}
		})
	}
	// Binary files are not read.
	for _, body := range []string{file("data:image/png;base64," + std), doc("application/pdf", std)} {
		if o, err := block.CheckRequestJSON([]byte(body)); err != nil || o.Blocked != nil {
			t.Errorf("binary file read: %s", body)
		}
	}
}
