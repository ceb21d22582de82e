package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/llm"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

// TestAccessLineMatchesSlog checks the hand-rendered access log line against what
// slog's JSON handler writes for the same fields: same keys, order and values.
func TestAccessLineMatchesSlog(t *testing.T) {
	t.Parallel()
	ev := &gatehousev1.UsageEvent{OrgId: "org-1", TeamId: "team \"a\"", KeyId: "k1", Model: "gpt<4>", ProviderId: "p1",
		DeploymentId: "d1", StatusCode: 200, ErrorClass: "", Streamed: true, PromptTokens: 12, CompletionTokens: 34,
		CachedTokens: 5, CostMicros: 678, LatencyMs: 9, TimeToFirstTokenMs: 3, OverheadUs: 120, Retries: 1, FallbackModel: "b"}
	for _, contents := range []bool{false, true} {
		c := &call{requestID: "req-1", endpoint: "chat.completions", key: &runtime.Key{Team: &runtime.Team{LogContents: contents}},
			body: []byte("prompt é \n\t and \xff cut"), result: &llm.Result{Text: "answer ✓"}}
		now := time.Date(2026, 11, 21, 16, 30, 1, 123456789, time.UTC)
		got := appendAccessLine(nil, now, c, ev)

		var want bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&want, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Time(slog.TimeKey, now)
			}
			return a
		}})).With("component", "http")
		attrs := []slog.Attr{
			slog.String("request_id", c.requestID), slog.String("endpoint", c.endpoint),
			slog.String("org_id", ev.OrgId), slog.String("team_id", ev.TeamId), slog.String("key_id", ev.KeyId),
			slog.String("model", ev.Model), slog.String("provider_id", ev.ProviderId), slog.String("deployment_id", ev.DeploymentId),
			slog.Int("status", int(ev.StatusCode)), slog.String("error_class", ev.ErrorClass), slog.Bool("streamed", ev.Streamed),
			slog.Int64("prompt_tokens", ev.PromptTokens), slog.Int64("completion_tokens", ev.CompletionTokens),
			slog.Int64("cached_tokens", ev.CachedTokens), slog.Int64("cost_micros", ev.CostMicros),
			slog.Int64("latency_ms", ev.LatencyMs), slog.Int64("ttft_ms", ev.TimeToFirstTokenMs), slog.Int64("overhead_us", ev.OverheadUs),
			slog.Int("retries", int(ev.Retries)), slog.String("fallback_model", ev.FallbackModel),
		}
		if contents {
			attrs = append(attrs, slog.String("prompt", string(c.body)), slog.String("completion", c.result.Text))
		}
		log.LogAttrs(context.Background(), slog.LevelInfo, "llm request", attrs...)

		if !bytes.HasSuffix(got, []byte("\n")) || bytes.Count(got, []byte("\n")) != 1 {
			t.Fatalf("not one line: %q", got)
		}
		// Byte equality is not the point (escaping of HTML characters differs);
		// the decoded objects and the key order are.
		var g, w map[string]any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("invalid JSON %q: %v", got, err)
		}
		if err := json.Unmarshal(want.Bytes(), &w); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(w, g); diff != "" {
			t.Errorf("contents=%v (-slog +ours):\n%s", contents, diff)
		}
		if keys(t, got) != keys(t, want.Bytes()) {
			t.Errorf("key order:\n ours %s\n slog %s", keys(t, got), keys(t, want.Bytes()))
		}
	}
}

func keys(t *testing.T, line []byte) string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(line))
	var out []string
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, k.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	return strings.Join(out, ",")
}

func BenchmarkAccessLine(b *testing.B) {
	ev := &gatehousev1.UsageEvent{OrgId: "org-1", TeamId: "team-a", KeyId: "k1", Model: "demo-chat", ProviderId: "p1",
		DeploymentId: "d1", StatusCode: 200, PromptTokens: 12, CompletionTokens: 34, CostMicros: 678}
	c := &call{requestID: "req-1", endpoint: "chat.completions", key: &runtime.Key{Team: &runtime.Team{}}}
	s := &Server{accessOut: &bytes.Buffer{}}
	b.ReportAllocs()
	for b.Loop() {
		s.accessOut.(*bytes.Buffer).Reset()
		s.logAccess(c, ev)
	}
}
