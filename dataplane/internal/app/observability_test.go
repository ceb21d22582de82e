package app_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/fakecp"
)

// fakeCollector is an OTLP/HTTP trace receiver.
type fakeCollector struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans map[string]string // span name → trace id (hex)
}

func newFakeCollector(t *testing.T) *fakeCollector {
	c := &fakeCollector{spans: map[string]string{}}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					c.spans[sp.Name] = hex.EncodeToString(sp.TraceId)
				}
			}
		}
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(nil)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func TestTracesExportedOverOTLP(t *testing.T) {
	t.Parallel()
	col := newFakeCollector(t)
	h := startHarness(t, harnessOptions{otlpEndpoint: col.srv.URL})
	resp, body := h.do(t, "POST", "/v1/chat/completions", bearer(h.fx.key), `{"model":"claude","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	call, _ := h.upstream.lastCall()
	traceparent := call.Header.Get("traceparent")
	fakecp.Eventually(t, 5*time.Second, func() error {
		col.mu.Lock()
		defer col.mu.Unlock()
		server, upstream := col.spans["gatehouse chat.completions"], col.spans["llm.upstream"]
		if server == "" || upstream == "" {
			return fmt.Errorf("spans so far: %v", col.spans)
		}
		if server != upstream || !strings.Contains(traceparent, server) {
			return fmt.Errorf("request span trace %s, upstream span trace %s, traceparent sent upstream %q", server, upstream, traceparent)
		}
		return nil
	})
}

// TestAccessLog checks the JSON log line of LLM requests: ids and numbers always, the
// prompt and completion only for a team with log_contents.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	h := startHarness(t, harnessOptions{accessLog: true, accessLogOut: &buf, logger: slog.New(slog.NewJSONHandler(&buf, nil)), extra: func(s *gatehousev1.Snapshot) {
		s.Teams[2].LogContents = true // team-c
		s.Teams[2].Regions = nil
	}})
	for _, key := range []string{h.fx.key, h.fx.teamC} {
		resp, body := h.do(t, "POST", "/v1/chat/completions", bearer(key), `{"model":"echo","messages":[{"role":"user","content":"my secret prompt"}]}`)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	fakecp.Eventually(t, 5*time.Second, func() error {
		lines := map[string]map[string]any{}
		for _, line := range bytes.Split(buf.Bytes(), []byte("\n")) {
			var rec map[string]any
			if json.Unmarshal(line, &rec) == nil && rec["msg"] == "llm request" {
				lines[rec["team_id"].(string)] = rec
			}
		}
		a, c := lines["team-a"], lines["team-c"]
		if a == nil || c == nil {
			return errors.New("access log lines missing")
		}
		if _, ok := a["prompt"]; ok {
			return fmt.Errorf("team-a line has the prompt: %v", a)
		}
		if p, _ := c["prompt"].(string); !strings.Contains(p, "my secret prompt") || c["completion"] != "Hello" {
			return fmt.Errorf("team-c line lacks the contents: %v", c)
		}
		if a["deployment_id"] != "m-echo" || a["cost_micros"] != float64(74) || a["status"] != float64(200) {
			return fmt.Errorf("team-a line %v", a)
		}
		return nil
	})
	if strings.Count(buf.String(), "my secret prompt") != 1 {
		t.Error("the prompt of a team without log_contents was logged")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

func (s *syncBuffer) String() string { return string(s.Bytes()) }

// TestOverheadHeader checks x-gatehouse-overhead-ms on answers of every kind.
func TestOverheadHeader(t *testing.T) {
	t.Parallel()
	h := startHarness(t, harnessOptions{})
	for _, c := range []struct{ method, path, key, body string }{
		{"POST", "/v1/chat/completions", h.fx.key, `{"model":"echo","messages":[]}`},
		{"POST", "/v1/chat/completions", h.fx.key, `{"model":"echo","stream":true,"messages":[]}`},
		{"POST", "/v1/messages", h.fx.key, `{"model":"claude","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`},
		{"POST", "/v1/chat/completions", h.fx.key, `{"model":"gpt-9","messages":[]}`},
		{"GET", "/v1/models", h.fx.key, ""},
		{"POST", "/v1/chat/completions", "", `{}`},
	} {
		resp, _ := h.do(t, c.method, c.path, bearer(c.key), c.body)
		v := resp.Header.Get("x-gatehouse-overhead-ms")
		ms, err := strconv.ParseFloat(v, 64)
		if err != nil || ms < 0 || !strings.Contains(v, ".") || len(v[strings.Index(v, ".")+1:]) != 3 {
			t.Errorf("%s %s: overhead header %q", c.method, c.path, v)
		}
	}
	resp, body := h.do(t, "GET", "/metrics", nil, "")
	for _, want := range []string{"gatehouse_gateway_overhead_seconds_count", "gatehouse_gateway_cost_micros_total",
		`gatehouse_gateway_errors_total{class="model_not_found"}`, `gatehouse_gateway_upstream_attempts_total{outcome="ok",provider_type="anthropic"}`} {
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
