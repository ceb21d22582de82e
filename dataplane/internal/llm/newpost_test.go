package llm

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

type newPostKey struct{}

// TestNewPostMatchesNewRequest: a request built from a parsed URL is the one
// http.NewRequestWithContext builds from the string, and the parsed URL is not shared.
func TestNewPostMatchesNewRequest(t *testing.T) {
	ctx := context.WithValue(context.Background(), newPostKey{}, 1)
	for _, target := range []string{"http://127.0.0.1:8080/v1/chat/completions", "https://api.example.com:443/openai/v1/chat/completions?x=1",
		"http://api.example.com:/v1/chat/completions", "http://[::1]:/v1/chat/completions", "http://[::1]/v1/chat/completions"} {
		for _, body := range [][]byte{[]byte(`{"model":"m"}`), nil} {
			parsed, err := runtime.ParseRequestURL(target)
			if err != nil {
				t.Fatal(err)
			}
			got, err := newPost(ctx, target, parsed, body)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := http.NewRequestWithContext(ctx, http.MethodPost, target, nil)
			if got.Method != want.Method || got.URL.String() != want.URL.String() || got.Host != want.Host || got.Proto != want.Proto ||
				got.ProtoMajor != 1 || got.ProtoMinor != 1 || got.Context() != ctx || got.Header == nil {
				t.Fatalf("%s: request %+v, want like %+v", target, got, want)
			}
			if got.URL == parsed {
				t.Fatal("the parsed URL is shared with the request")
			}
			if got.ContentLength != int64(len(body)) {
				t.Fatalf("content length %d, want %d", got.ContentLength, len(body))
			}
			for i := range 2 { // the body, then its replay
				rc := got.Body
				if i == 1 {
					if rc, err = got.GetBody(); err != nil {
						t.Fatal(err)
					}
				}
				b, _ := io.ReadAll(rc)
				if string(b) != string(body) {
					t.Fatalf("body %q, want %q", b, body)
				}
			}
			if len(body) == 0 && got.Body != http.NoBody {
				t.Fatal("an empty body is not http.NoBody")
			}
		}
	}
}
