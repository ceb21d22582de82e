package console

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestHomeRenders(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	v := HomeView{Version: "v1.2.3", NATSOK: true, DatabaseOK: false, Regions: []string{"eu", "us"}, APIDocsPath: "/api/v1/openapi.json"}
	if err := Home(v).Render(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for _, want := range []string{`data-testid="version">v1.2.3<`, `<code>us</code>`, `status-bad`, `status-ok`, `href="/api/v1/openapi.json"`} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	buf.Reset()
	if err := Home(HomeView{Version: "<script>alert(1)</script>"}).Render(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "<script>alert") {
		t.Error("version not escaped")
	}
}
