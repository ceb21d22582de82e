// Package h1head scans the raw head of an HTTP/1 message — a request the gateway
// serves or an answer from an upstream — for what net/http's parsers tolerate or
// hide: where the head ends, and whether a field is present at all (a
// Transfer-Encoding next to a Content-Length, which the parsers resolve quietly).
// It parses nothing else.
package h1head

import (
	"bytes"
	"strings"
)

// End returns the length of the message head at the start of buf, or -1 if buf does
// not hold all of it. A head ends with an empty line, CRLF or bare LF.
func End(buf []byte) int {
	if i := bytes.Index(buf, []byte("\n\r\n")); i >= 0 {
		if j := bytes.Index(buf[:i+1], []byte("\n\n")); j >= 0 {
			return j + 2
		}
		return i + 3
	}
	if j := bytes.Index(buf, []byte("\n\n")); j >= 0 {
		return j + 2
	}
	return -1
}

// HasField reports whether head has a field called name, in any case, also written
// with white space before its colon.
func HasField(head []byte, name string) bool {
	for len(head) > 0 {
		i := bytes.IndexByte(head, '\n')
		if i < 0 {
			i = len(head) - 1
		}
		line := head[:i+1]
		head = head[i+1:]
		if len(line) > len(name) && (line[len(name)] == ':' || line[len(name)] == ' ' || line[len(name)] == '\t') &&
			strings.EqualFold(string(line[:len(name)]), name) {
			return true
		}
	}
	return false
}
