package h1head

import "testing"

func TestEnd(t *testing.T) {
	t.Parallel()
	for head, want := range map[string]int{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody": 27,
		"GET / HTTP/1.1\nHost: a\n\nbody":       24,
		"GET / HTTP/1.1\r\nHost: a\n\r\nbody":   26,
		"GET / HTTP/1.1\r\nHost: a\r\n":         -1,
		"":                                      -1,
	} {
		if got := End([]byte(head)); got != want {
			t.Errorf("End(%q) = %d, want %d", head, got, want)
		}
	}
}

func TestHasField(t *testing.T) {
	t.Parallel()
	head := []byte("POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\nContent-Length : 3\r\nX-Content-Length-Extra: 1\r\n\r\n")
	for name, want := range map[string]bool{
		"Transfer-Encoding": true, // any case
		"Content-Length":    true, // white space before the colon
		"Host":              true,
		"Connection":        false,
		"X-Content":         false, // a prefix of another field is not the field
	} {
		if got := HasField(head, name); got != want {
			t.Errorf("HasField(%s) = %v, want %v", name, got, want)
		}
	}
}
