package llm

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestSSEReaderLongEvents: events and lines far larger than the reader's buffer,
// delivered a byte at a time or all at once, come out whole, with their raw bytes as
// sent and their data joined, and a pooled reader reused afterwards starts clean.
func TestSSEReaderLongEvents(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 40<<10) // ten times the buffer
	stream := "event: big\ndata: " + long + "\n\n" +
		"data: a\ndata: " + long[:9000] + "\n\n" +
		": comment\n\n" +
		"data: [DONE]\n\n"
	// A comment is an event without data: relayed, nothing to read in it.
	want := []struct{ name, data string }{{"big", long}, {"", "a\n" + long[:9000]}, {"", ""}, {"", "[DONE]"}}
	for _, src := range []struct {
		name string
		r    func() io.Reader
	}{
		{"whole", func() io.Reader { return strings.NewReader(stream) }},
		{"byte by byte", func() io.Reader { return iotest.OneByteReader(strings.NewReader(stream)) }},
	} {
		for round := range 2 { // the second round reuses the pooled reader
			rd := getSSEReader(src.r())
			var raws bytes.Buffer
			for i, w := range want {
				raw, name, data, err := rd.next()
				if err != nil {
					t.Fatalf("%s, round %d, event %d: %v", src.name, round, i, err)
				}
				if string(name) != w.name || string(data) != w.data {
					t.Fatalf("%s, round %d, event %d: name %q, data of %d bytes; want %q and %d bytes",
						src.name, round, i, name, len(data), w.name, len(w.data))
				}
				raws.Write(raw)
			}
			if _, _, _, err := rd.next(); err != io.EOF {
				t.Fatalf("%s: after the last event: %v, want EOF", src.name, err)
			}
			if raws.String() != stream {
				t.Fatalf("%s: raw bytes differ from what was sent (%d vs %d bytes)", src.name, raws.Len(), len(stream))
			}
			putSSEReader(rd)
		}
	}
}
