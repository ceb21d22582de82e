package llm

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"sync"
)

// sseReader splits a text/event-stream into events, keeping each event's bytes as they
// came (so relays can forward them unchanged) and its joined data.
type sseReader struct {
	br    *bufio.Reader
	event []byte
	data  []byte
	name  []byte
	// begun: the stream's first line was read (a byte order mark before it is dropped).
	begun bool
}

// maxSSEEvent bounds one event (or line) of a stream: a stream is no way around the
// bound on a whole answer's body.
const maxSSEEvent = 64 << 20

// errSSEEventTooLarge ends a stream whose event passed maxSSEEvent.
var errSSEEventTooLarge = fmt.Errorf("%w: a stream event over %d bytes", ErrUpstreamBadResponse, maxSSEEvent)

// sseBufSize is a stream reader's buffer: what a relay holds for each open stream
// (times 5,000 streams). An event or line larger than it is still read whole, into
// the event buffer; it only caps how much one read takes in.
const sseBufSize = 4 << 10

func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{br: bufio.NewReaderSize(r, sseBufSize), event: make([]byte, 0, 1<<10)}
}

// sseReaders keeps the readers (5 KiB of buffers each) of streams that ended.
var sseReaders = sync.Pool{New: func() any { return newSSEReader(nil) }}

// getSSEReader returns a pooled reader of r; putSSEReader gives it back once
// nothing it returned is used any more.
func getSSEReader(r io.Reader) *sseReader {
	s := sseReaders.Get().(*sseReader)
	s.br.Reset(r)
	s.begun = false
	return s
}

func putSSEReader(s *sseReader) {
	s.br.Reset(nil)
	if cap(s.event) > 64<<10 {
		return // one huge event must not pin its buffer
	}
	s.event, s.data, s.name = s.event[:0], nil, nil
	sseReaders.Put(s)
}

// next returns the next non-empty event: its raw bytes (ending in a blank line), its
// event name and its data (nil when it has no data line). The slices are valid until
// the next call. At the end of the stream it returns io.EOF; an event the end left
// without its blank line is completed and returned first. An event a failed read cut
// off (a reset connection, a broken chunked body) is dropped, never relayed half: the
// error is returned.
func (s *sseReader) next() (raw, name, data []byte, err error) {
	s.event = s.event[:0]
	for {
		line, err := readLine(s.br)
		if err != nil && err != io.EOF {
			s.event = s.event[:0]
			return nil, nil, nil, err
		}
		if !s.begun && len(line) > 0 {
			s.begun = true
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
		}
		if len(line) > 0 {
			s.event = append(s.event, line...)
		}
		if len(s.event) > maxSSEEvent {
			s.event = s.event[:0]
			return nil, nil, nil, errSSEEventTooLarge
		}
		end := isBlankLine(line) || (err != nil && len(s.event) > 0)
		if end && len(bytes.TrimSpace(s.event)) > 0 {
			if err != nil && !isBlankLine(line) {
				// The upstream ended without the final blank line; terminate the event
				// so the caller's parser sees it.
				if !bytes.HasSuffix(s.event, []byte("\n")) {
					s.event = append(s.event, '\n')
				}
				s.event = append(s.event, '\n')
			}
			s.parse()
			return s.event, s.name, s.data, nil
		} else if end {
			s.event = s.event[:0]
		}
		if err != nil {
			return nil, nil, nil, err
		}
	}
}

// ready reports whether a whole event is already buffered, so that the next call to
// next will not wait for the upstream. Blank lines alone are no event: next skips
// them and reads on.
func (s *sseReader) ready() bool {
	b, _ := s.br.Peek(s.br.Buffered())
	b = bytes.TrimLeft(b, "\r\n")
	return bytes.Contains(b, []byte("\n\n")) || bytes.Contains(b, []byte("\r\n\r\n"))
}

func (s *sseReader) parse() {
	s.data, s.name = nil, nil
	multi := false
	for line := range bytes.Lines(s.event) {
		line = bytes.TrimRight(line, "\r\n")
		if rest, ok := bytes.CutPrefix(line, dataPrefix); ok {
			rest = bytes.TrimPrefix(rest, []byte(" "))
			switch {
			case s.data == nil:
				s.data = rest
			case !multi:
				// Copy: data aliases event, which must stay unchanged.
				s.data = append(append(append(make([]byte, 0, len(s.data)+len(rest)+1), s.data...), '\n'), rest...)
				multi = true
			default:
				s.data = append(append(s.data, '\n'), rest...)
			}
		} else if rest, ok := bytes.CutPrefix(line, []byte("event:")); ok {
			s.name = bytes.TrimPrefix(rest, []byte(" "))
		}
	}
}

// appendEvent appends an SSE event with an optional name and one data line.
func appendEvent(buf []byte, name string, data []byte) []byte {
	if name != "" {
		buf = append(buf, "event: "...)
		buf = append(buf, name...)
		buf = append(buf, '\n')
	}
	buf = append(buf, "data: "...)
	buf = append(buf, data...)
	return append(buf, '\n', '\n')
}
