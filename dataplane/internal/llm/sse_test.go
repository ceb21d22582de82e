package llm

import (
	"bytes"
	"errors"
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

// failingReader yields its bytes, then err.
type failingReader struct {
	b   []byte
	err error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, r.err
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// TestSSECutByAFailedRead: an event a failed read cut off is dropped, not relayed half
// (callers parse each data line as JSON); one the clean end left without its blank
// line is completed; a byte order mark before the first event is dropped.
func TestSSECutByAFailedRead(t *testing.T) {
	t.Parallel()
	whole := "data: {\"a\":1}\n\n"
	r := getSSEReader(&failingReader{b: []byte(whole + `data: {"choices":[{"delta":{"content":"wor`), err: io.ErrUnexpectedEOF})
	raw, _, _, err := r.next()
	if err != nil || string(raw) != whole {
		t.Fatalf("first event %q, %v", raw, err)
	}
	if raw, _, _, err := r.next(); raw != nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut event %q, %v; want nothing and the read's error", raw, err)
	}
	putSSEReader(r)

	r = getSSEReader(&failingReader{b: []byte("\xef\xbb\xbfdata: {\"b\":2}"), err: io.EOF})
	raw, _, data, err := r.next()
	if err != nil || string(data) != `{"b":2}` || string(raw) != "data: {\"b\":2}\n\n" {
		t.Fatalf("event at the end: %q %q %v", raw, data, err)
	}
	putSSEReader(r)
}
