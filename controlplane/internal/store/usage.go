package store

import (
	"context"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store/dbq"
	"github.com/jackc/pgx/v5/pgtype"
)

// UsageEvent is one ingested request record.
type UsageEvent struct {
	EventID          string    `json:"event_id"`
	RequestID        string    `json:"request_id"`
	StartedAt        time.Time `json:"started_at"`
	TeamID           *string   `json:"team_id,omitempty"`
	KeyID            *string   `json:"key_id,omitempty"`
	Model            string    `json:"model"`
	Endpoint         string    `json:"endpoint"`
	Region           string    `json:"region"`
	GatewayID        string    `json:"gateway_id"`
	StatusCode       int32     `json:"status_code"`
	Streamed         bool      `json:"streamed"`
	LatencyMs        int64     `json:"latency_ms"`
	PromptTokens     int64     `json:"prompt_tokens"`
	CompletionTokens int64     `json:"completion_tokens"`
	// CachedTokens (read from the provider's prompt cache) and CacheWriteTokens
	// (written to it; CacheWriteHourTokens of them kept for an hour) are parts of
	// PromptTokens, each priced differently.
	CachedTokens         int64 `json:"cached_tokens"`
	CacheWriteTokens     int64 `json:"cache_write_tokens"`
	CacheWriteHourTokens int64 `json:"cache_write_hour_tokens"`
	CostMicros           int64 `json:"cost_micros"`
	// ServiceTier is the provider's processing tier as its answer reported it
	// (OpenAI: default, flex, priority, scale; Anthropic: standard, priority), ""
	// when it reported none.
	ServiceTier string `json:"service_tier"`
}

// usageEvent is the API's form of an ingested event.
func usageEvent(r dbq.UsageEvent) UsageEvent {
	return UsageEvent{EventID: r.EventID, RequestID: r.RequestID, StartedAt: r.StartedAt.Time.UTC(), TeamID: r.TeamID,
		KeyID: r.KeyID, Model: r.Model, Endpoint: r.Endpoint, Region: r.Region, GatewayID: r.GatewayID, StatusCode: r.StatusCode,
		Streamed: r.Streamed, LatencyMs: r.LatencyMs, PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens,
		CachedTokens: r.CachedTokens, CacheWriteTokens: r.CacheWriteTokens, CacheWriteHourTokens: r.CacheWriteHourTokens,
		CostMicros: r.CostMicros, ServiceTier: r.ServiceTier}
}

// UsageSummary is an org's usage over the last 24 hours plus its newest events.
type UsageSummary struct {
	Since            time.Time    `json:"since"`
	Requests         int64        `json:"requests"`
	Errors           int64        `json:"errors"`
	PromptTokens     int64        `json:"prompt_tokens"`
	CompletionTokens int64        `json:"completion_tokens"`
	CostMicros       int64        `json:"cost_micros"`
	Recent           []UsageEvent `json:"recent"`
}

// UsageSummary summarises org's last 24 hours of usage.
func (s *Store) UsageSummary(ctx context.Context, orgID string) (UsageSummary, error) {
	q := dbq.New(s.pool)
	since := s.now().Add(-24 * time.Hour).UTC()
	tot, err := q.UsageTotals(ctx, dbq.UsageTotalsParams{OrgID: orgID, StartedAt: pgtype.Timestamptz{Time: since, Valid: true}})
	if err != nil {
		return UsageSummary{}, mapError(err)
	}
	rows, err := q.RecentUsage(ctx, dbq.RecentUsageParams{OrgID: orgID, Limit: 20})
	if err != nil {
		return UsageSummary{}, mapError(err)
	}
	out := UsageSummary{Since: since, Requests: tot.Requests, Errors: tot.Errors, PromptTokens: tot.PromptTokens,
		CompletionTokens: tot.CompletionTokens, CostMicros: tot.CostMicros, Recent: make([]UsageEvent, len(rows))}
	for i, r := range rows {
		out.Recent[i] = usageEvent(r)
	}
	return out, nil
}

// UsageBreakdownRow is usage of one team and model over a range.
type UsageBreakdownRow struct {
	Team             string  `json:"team"`
	Model            string  `json:"model"`
	Requests         int64   `json:"requests"`
	Errors           int64   `json:"errors"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	CachedTokens     int64   `json:"cached_tokens"`
	CacheWriteTokens int64   `json:"cache_write_tokens"`
	CostMicros       int64   `json:"cost_micros"`
	P50LatencyMs     float64 `json:"p50_latency_ms"`
	P95LatencyMs     float64 `json:"p95_latency_ms"`
}

// UsageDetail is an org's usage since a time: per team and model, and the newest
// requests.
type UsageDetail struct {
	Since     time.Time           `json:"since"`
	Breakdown []UsageBreakdownRow `json:"breakdown"`
	Recent    []UsageRecord       `json:"recent"`
}

// UsageRecord is one request as the usage page lists it.
type UsageRecord struct {
	UsageEvent
	Team          string `json:"team"`
	AgentIdentity string `json:"agent_identity,omitempty"`
	DeploymentID  string `json:"deployment_id,omitempty"`
	Retries       int32  `json:"retries"`
	FallbackModel string `json:"fallback_model,omitempty"`
	OverheadUs    int64  `json:"overhead_us"`
}

// UsageDetail returns org's usage since since.
func (s *Store) UsageDetail(ctx context.Context, orgID string, since time.Time) (UsageDetail, error) {
	q := dbq.New(s.pool)
	out := UsageDetail{Since: since.UTC(), Breakdown: []UsageBreakdownRow{}, Recent: []UsageRecord{}}
	rows, err := q.UsageBreakdown(ctx, dbq.UsageBreakdownParams{OrgID: orgID, StartedAt: ts(since)})
	if err != nil {
		return out, mapError(err)
	}
	for _, r := range rows {
		out.Breakdown = append(out.Breakdown, UsageBreakdownRow{Team: r.Team, Model: r.Model, Requests: r.Requests, Errors: r.Errors,
			PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens, CachedTokens: r.CachedTokens, CacheWriteTokens: r.CacheWriteTokens,
			CostMicros: r.CostMicros, P50LatencyMs: r.P50Ms, P95LatencyMs: r.P95Ms})
	}
	recent, err := q.RecentUsageSince(ctx, dbq.RecentUsageSinceParams{OrgID: orgID, StartedAt: ts(since), Limit: 50})
	if err != nil {
		return out, mapError(err)
	}
	for _, r := range recent {
		e := r.UsageEvent
		out.Recent = append(out.Recent, UsageRecord{
			UsageEvent: usageEvent(e),
			Team:       r.TeamName, AgentIdentity: e.AgentIdentity, DeploymentID: e.DeploymentID, Retries: e.Retries, FallbackModel: e.FallbackModel,
			OverheadUs: e.OverheadUs,
		})
	}
	return out, nil
}

// UsageRanges are the windows the usage views offer, by name.
var UsageRanges = map[string]time.Duration{"1h": time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour}
