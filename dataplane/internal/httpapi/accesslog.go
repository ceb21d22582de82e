package httpapi

import (
	"strconv"
	"sync"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/llm"
)

// accessLines holds the buffers access log lines are rendered into.
var accessLines = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// logAccess writes the access log line of an LLM request: one JSON object in the
// shape of the gateway's other log lines (time, level, msg, component, then the
// fields). It is rendered by hand, without reflection or slog's call-site capture,
// because it is written for every request. Contents are logged only when the team
// asked for it.
func (s *Server) logAccess(c *call, ev *gatehousev1.UsageEvent) {
	bp := accessLines.Get().(*[]byte)
	b := appendAccessLine((*bp)[:0], time.Now(), c, ev)
	_, _ = s.accessOut.Write(b)
	if cap(b) <= 64<<10 {
		*bp = b
		accessLines.Put(bp)
	}
}

func appendAccessLine(b []byte, now time.Time, c *call, ev *gatehousev1.UsageEvent) []byte {
	b = append(b, `{"time":"`...)
	b = now.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"llm request","component":"http"`...)
	str := func(k, v string) {
		b = append(b, ',', '"')
		b = append(b, k...)
		b = append(b, '"', ':')
		b = llm.AppendJSONString(b, v)
	}
	num := func(k string, v int64) {
		b = append(b, ',', '"')
		b = append(b, k...)
		b = append(b, '"', ':')
		b = strconv.AppendInt(b, v, 10)
	}
	str("request_id", c.requestID)
	str("endpoint", c.endpoint)
	str("org_id", ev.OrgId)
	str("team_id", ev.TeamId)
	str("key_id", ev.KeyId)
	str("model", ev.Model)
	str("provider_id", ev.ProviderId)
	str("deployment_id", ev.DeploymentId)
	num("status", int64(ev.StatusCode))
	str("error_class", ev.ErrorClass)
	b = append(b, `,"streamed":`...)
	b = strconv.AppendBool(b, ev.Streamed)
	num("prompt_tokens", ev.PromptTokens)
	num("completion_tokens", ev.CompletionTokens)
	num("cached_tokens", ev.CachedTokens)
	if ev.CacheWriteTokens > 0 {
		num("cache_write_tokens", ev.CacheWriteTokens)
		num("cache_write_hour_tokens", ev.CacheWriteHourTokens)
	}
	num("cost_micros", ev.CostMicros)
	if ev.ServiceTier != "" {
		str("service_tier", ev.ServiceTier)
	}
	num("latency_ms", ev.LatencyMs)
	num("ttft_ms", ev.TimeToFirstTokenMs)
	num("overhead_us", ev.OverheadUs)
	num("retries", int64(ev.Retries))
	str("fallback_model", ev.FallbackModel)
	if c.key.Team.LogContents {
		str("prompt", truncate(string(c.body), maxLoggedContent))
		if c.result != nil {
			str("completion", truncate(c.result.Text, maxLoggedContent))
		}
	}
	return append(b, '}', '\n')
}
