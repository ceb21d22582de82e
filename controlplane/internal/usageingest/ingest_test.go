package usageingest_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/cptest"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/usageingest"
	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

func uuid() string {
	b := make([]byte, 16)
	rand.Read(b) //nolint:errcheck // never fails
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func TestIngestExactlyOnce(t *testing.T) {
	t.Parallel()
	st := cptest.Store(t)
	ns := cptest.StartNATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	org, err := st.CreateOrg(ctx, "test", "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	ing := usageingest.New(st.Pool(), ns.JS, slog.New(slog.DiscardHandler))
	go ing.Run(ctx) //nolint:errcheck // ends with ctx

	// Events in two different months exercise partition creation.
	jan := time.Date(2026, 1, 31, 23, 59, 0, 0, time.UTC)
	feb := time.Date(2026, 2, 1, 0, 1, 0, 0, time.UTC)
	var events []*gatehousev1.UsageEvent
	for i := range 10 {
		at := jan
		// Where the rule matched: half the events say, as from an older gateway the
		// others do not.
		guard := []*gatehousev1.GuardrailEvent{{RuleId: "r1", Detector: "email", Mode: "redact", Direction: "response", Matches: 2,
			Texts: []string{"arguments", "reasoning"}}}
		if i%2 == 1 {
			at = feb
			guard[0].Texts = nil
		}
		events = append(events, &gatehousev1.UsageEvent{
			EventId: uuid(), RequestId: fmt.Sprintf("req-%d", i), OrgId: org.ID, Model: "m", Endpoint: "chat.completions",
			StartedAtUnixMs: at.UnixMilli(), StatusCode: 200, PromptTokens: 10, CompletionTokens: 5, CostMicros: 3, Region: "local", GatewayId: "gw",
			AgentIdentity: "bot", DeploymentId: "d1", Retries: 1, OverheadUs: 120, GuardrailEvents: guard,
		})
	}
	batch := &gatehousev1.UsageBatch{BatchId: uuid(), GatewayId: "gw", Region: "local", OrgId: org.ID, Events: events}
	data, err := proto.Marshal(batch)
	if err != nil {
		t.Fatal(err)
	}
	subj := wire.UsageSubject("local", org.ID)
	// The same batch three times: twice with the same message id (dropped by the
	// stream's duplicate window) and once with another (as after the window expired).
	for _, id := range []string{batch.BatchId, batch.BatchId, "late-" + batch.BatchId} {
		if _, err := ns.JS.Publish(ctx, subj, data, jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
	}
	// A poison message must not block the stream.
	if _, err := ns.JS.Publish(ctx, subj, []byte("\xff\xff not protobuf")); err != nil {
		t.Fatal(err)
	}
	// A later batch still gets through.
	late := &gatehousev1.UsageEvent{EventId: uuid(), RequestId: "late", OrgId: org.ID, Endpoint: "models",
		StartedAtUnixMs: feb.UnixMilli(), StatusCode: 200, Region: "local", GatewayId: "gw"}
	data2, _ := proto.Marshal(&gatehousev1.UsageBatch{BatchId: uuid(), OrgId: org.ID, Events: []*gatehousev1.UsageEvent{late}})
	if _, err := ns.JS.Publish(ctx, subj, data2); err != nil {
		t.Fatal(err)
	}

	cptest.Eventually(t, 10*time.Second, func() error {
		var n, tokens int64
		if err := st.Pool().QueryRow(ctx, "select count(*), coalesce(sum(prompt_tokens),0) from usage_events where org_id = $1", org.ID).Scan(&n, &tokens); err != nil {
			return err
		}
		if n != 11 || tokens != 100 {
			return fmt.Errorf("rows = %d tokens = %d, want 11 and 100", n, tokens)
		}
		return nil
	})
	var triggers, overhead int64
	if err := st.Pool().QueryRow(ctx, "select count(*), (select sum(overhead_us) from usage_events where org_id = $1) from guardrail_events where org_id = $1", org.ID).Scan(&triggers, &overhead); err != nil {
		t.Fatal(err)
	}
	if triggers != 10 || overhead != 1200 {
		t.Fatalf("guardrail rows = %d (want 10), overhead sum = %d (want 1200)", triggers, overhead)
	}
	var said, unsaid int64
	if err := st.Pool().QueryRow(ctx, `select count(*) filter (where texts = '{arguments,reasoning}'), count(*) filter (where texts = '{}')
		from guardrail_events where org_id = $1`, org.ID).Scan(&said, &unsaid); err != nil {
		t.Fatal(err)
	}
	if said != 5 || unsaid != 5 {
		t.Fatalf("guardrail rows with texts {arguments,reasoning} = %d, with none = %d; want 5 and 5", said, unsaid)
	}
	var parts int
	if err := st.Pool().QueryRow(ctx, "select count(*) from pg_inherits where inhparent = 'usage_events'::regclass").Scan(&parts); err != nil {
		t.Fatal(err)
	}
	if parts != 2 {
		t.Fatalf("partitions = %d, want 2", parts)
	}
	// Everything is acked: nothing pending for the durable consumer, and the stream,
	// the backlog, not the history, is purged of it.
	eventuallyAllAcked(ctx, t, ns)
	cptest.Eventually(t, 10*time.Second, func() error {
		info, err := ns.Resources.Usage.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != 0 {
			return fmt.Errorf("the usage stream still holds %d ingested batches", info.State.Msgs)
		}
		return nil
	})
}

// eventuallyAllAcked waits until the durable consumer has nothing pending.
func eventuallyAllAcked(ctx context.Context, t *testing.T, ns *cptest.NATS) {
	t.Helper()
	cptest.Eventually(t, 10*time.Second, func() error {
		c, err := ns.JS.Consumer(ctx, wire.UsageStream, usageingest.ConsumerName)
		if err != nil {
			return err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return fmt.Errorf("pending %d ack-pending %d", info.NumPending, info.NumAckPending)
		}
		return nil
	})
}

// TestWriteStoresIDs: event, org and team ids (any hex case) are stored as the UUIDs
// they name, an empty team as NULL, and events with malformed ids are skipped.
func TestWriteStoresIDs(t *testing.T) {
	t.Parallel()
	st := cptest.Store(t)
	ctx := context.Background()
	org, err := st.CreateOrg(ctx, "test", "ids", "")
	if err != nil {
		t.Fatal(err)
	}
	ing := usageingest.New(st.Pool(), nil, slog.New(slog.DiscardHandler))
	now := time.Now().UnixMilli()
	team, upper := uuid(), uuid()
	ev := func(id, teamID string) *gatehousev1.UsageEvent {
		return &gatehousev1.UsageEvent{EventId: id, RequestId: "r-" + id, OrgId: org.ID, TeamId: teamID, Endpoint: "chat.completions",
			StartedAtUnixMs: now, StatusCode: 200, Region: "local", GatewayId: "gw"}
	}
	withTeam, noTeam := uuid(), uuid()
	n, err := ing.Write(ctx, []*gatehousev1.UsageEvent{
		ev(withTeam, team),
		ev(noTeam, ""),
		ev(strings.ToUpper(upper), ""),
		ev("not-a-uuid", ""),
		ev(uuid(), "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"),
		ev(strings.Replace(uuid(), "-", "x", 1), ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("inserted %d, want 3 (three malformed skipped)", n)
	}
	rows, err := st.Pool().Query(ctx, "select event_id::text, coalesce(team_id::text, 'NULL') from usage_events where org_id = $1 order by request_id", org.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for rows.Next() {
		var id, tm string
		if err := rows.Scan(&id, &tm); err != nil {
			t.Fatal(err)
		}
		got[id] = tm
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{withTeam: team, noTeam: "NULL", upper: "NULL"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stored %v, want %v", got, want)
	}
}

// TestWriteAgainChangesNothing: events come straight in by COPY; a batch that
// repeats some of them (a redelivery), or repeats one within itself, stores each
// event and each guardrail trigger once and counts only the new ones.
func TestWriteAgainChangesNothing(t *testing.T) {
	t.Parallel()
	st := cptest.Store(t)
	ctx := context.Background()
	org, err := st.CreateOrg(ctx, "test", "again", "")
	if err != nil {
		t.Fatal(err)
	}
	ing := usageingest.New(st.Pool(), nil, slog.New(slog.DiscardHandler))
	now := time.Now().UnixMilli()
	ev := func(id string) *gatehousev1.UsageEvent {
		return &gatehousev1.UsageEvent{EventId: id, RequestId: "r-" + id, OrgId: org.ID, Endpoint: "chat.completions",
			StartedAtUnixMs: now, StatusCode: 200, Region: "local", GatewayId: "gw", PromptTokens: 10,
			GuardrailEvents: []*gatehousev1.GuardrailEvent{{RuleId: "r1", Detector: "email", Mode: "audit", Direction: "request", Matches: 1}}}
	}
	a, b, c, d := uuid(), uuid(), uuid(), uuid()
	for _, step := range []struct {
		events []string
		want   int64
	}{
		{[]string{a, b}, 2},
		{[]string{a, b}, 0},    // redelivered whole
		{[]string{b, c}, 1},    // partly new
		{[]string{d, d, a}, 1}, // a repeat within the batch
	} {
		var batch []*gatehousev1.UsageEvent
		for _, id := range step.events {
			batch = append(batch, ev(id))
		}
		n, err := ing.Write(ctx, batch)
		if err != nil {
			t.Fatalf("%v: %v", step.events, err)
		}
		if n != step.want {
			t.Fatalf("%v: inserted %d, want %d", step.events, n, step.want)
		}
	}
	var rows, tokens, triggers int64
	if err := st.Pool().QueryRow(ctx, `select count(*), sum(prompt_tokens),
		(select count(*) from guardrail_events where org_id = $1) from usage_events where org_id = $1`, org.ID).Scan(&rows, &tokens, &triggers); err != nil {
		t.Fatal(err)
	}
	if rows != 4 || tokens != 40 || triggers != 4 {
		t.Fatalf("rows %d, tokens %d, guardrail rows %d; want 4, 40, 4", rows, tokens, triggers)
	}
}

// TestWriteStoresEveryColumn: each field of an event lands in its column with its
// value (the rows are encoded by hand in PostgreSQL's binary COPY format), negative
// and large numbers and times before 2000 included; a NUL byte in a string, which
// PostgreSQL refuses in text and would fail the batch on every redelivery, is stored
// as U+FFFD instead.
func TestWriteStoresEveryColumn(t *testing.T) {
	t.Parallel()
	st := cptest.Store(t)
	ctx := context.Background()
	org, err := st.CreateOrg(ctx, "test", "columns", "")
	if err != nil {
		t.Fatal(err)
	}
	ing := usageingest.New(st.Pool(), nil, slog.New(slog.DiscardHandler))
	started := time.Date(1999, 12, 31, 23, 59, 58, 123_000_000, time.UTC)
	full := &gatehousev1.UsageEvent{EventId: uuid(), RequestId: "req-1", OrgId: org.ID, TeamId: uuid(), KeyId: "key-1",
		Model: "m\x00odel", UpstreamModel: "gpt-ü", ProviderId: "prov", Endpoint: "chat.completions",
		StartedAtUnixMs: started.UnixMilli(), LatencyMs: 1234, TimeToFirstTokenMs: 56, StatusCode: 429,
		ErrorClass: "rate_limited", Streamed: true, PromptTokens: 1 << 40, CompletionTokens: 7, CachedTokens: 3,
		CostMicros: -5, Region: "eu", GatewayId: "gw-1", AgentIdentity: "agent", DeploymentId: "dep",
		Retries: 2, FallbackModel: "fb", OverheadUs: 99, CacheWriteTokens: 11, CacheWriteHourTokens: 4, ServiceTier: "flex"}
	bare := &gatehousev1.UsageEvent{EventId: uuid(), RequestId: "req-2", OrgId: org.ID, Endpoint: "embeddings",
		StartedAtUnixMs: time.Now().UnixMilli(), Region: "eu", GatewayId: "gw-1"}
	// A start time in the year 318,857 (a broken clock) is skipped like a malformed id:
	// no partition could hold it.
	absurd := &gatehousev1.UsageEvent{EventId: uuid(), RequestId: "req-3", OrgId: org.ID, Endpoint: "embeddings",
		StartedAtUnixMs: 1e16, Region: "eu", GatewayId: "gw-1"}
	if n, err := ing.Write(ctx, []*gatehousev1.UsageEvent{full, bare, absurd}); err != nil || n != 2 {
		t.Fatalf("Write = %d, %v; want 2", n, err)
	}
	const q = `select event_id::text, started_at, request_id, org_id::text, coalesce(team_id::text, 'NULL'),
		coalesce(key_id, 'NULL'), model, upstream_model, provider_id, endpoint, region, gateway_id, latency_ms,
		time_to_first_token_ms, status_code, error_class, streamed, prompt_tokens, completion_tokens,
		cached_tokens, cost_micros, agent_identity, deployment_id, retries, fallback_model, overhead_us,
		cache_write_tokens, cache_write_hour_tokens, service_tier
		from usage_events where event_id = $1`
	read := func(id string) string {
		t.Helper()
		var (
			eventID, request, orgID, teamID, keyID, model, upstream, provider, endpoint, region, gateway string
			errClass, agent, deployment, fallback, tier                                                  string
			at                                                                                           time.Time
			latency, ttft, prompt, completion, cached, cost, overhead, writes, writesHour                int64
			status, retries                                                                              int32
			streamed                                                                                     bool
		)
		if err := st.Pool().QueryRow(ctx, q, id).Scan(&eventID, &at, &request, &orgID, &teamID, &keyID, &model,
			&upstream, &provider, &endpoint, &region, &gateway, &latency, &ttft, &status, &errClass, &streamed,
			&prompt, &completion, &cached, &cost, &agent, &deployment, &retries, &fallback, &overhead, &writes, &writesHour, &tier); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintln(eventID, at.UTC().Format(time.RFC3339Nano), request, orgID, teamID, keyID, model, upstream,
			provider, endpoint, region, gateway, latency, ttft, status, errClass, streamed, prompt, completion, cached,
			cost, agent, deployment, retries, fallback, overhead, writes, writesHour, tier)
	}
	want := fmt.Sprintln(full.EventId, "1999-12-31T23:59:58.123Z", "req-1", org.ID, full.TeamId, "key-1", "m\uFFFDodel",
		"gpt-ü", "prov", "chat.completions", "eu", "gw-1", 1234, 56, 429, "rate_limited", true, int64(1<<40), 7, 3,
		-5, "agent", "dep", 2, "fb", 99, 11, 4, "flex")
	if got := read(full.EventId); got != want {
		t.Errorf("stored\n%s want\n%s", got, want)
	}
	want = fmt.Sprintln(bare.EventId, time.UnixMilli(bare.StartedAtUnixMs).UTC().Format(time.RFC3339Nano), "req-2", org.ID,
		"NULL", "NULL", "", "", "", "embeddings", "eu", "gw-1", 0, 0, 0, "", false, 0, 0, 0, 0, "", "", 0, "", 0, 0, 0, "")
	if got := read(bare.EventId); got != want {
		t.Errorf("stored\n%s want\n%s", got, want)
	}
}

// TestWriteBoundsTheServiceTier: a service tier is stored as at most 32 bytes of
// valid UTF-8, cut on a character boundary, NUL bytes and invalid UTF-8 repaired
// first; a tier the database would refuse (usage_events_service_tier_ck) never fails
// the batch it came in, every event of which lands.
func TestWriteBoundsTheServiceTier(t *testing.T) {
	t.Parallel()
	st := cptest.Store(t)
	ctx := context.Background()
	org, err := st.CreateOrg(ctx, "test", "tiers", "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, tier, want string }{
		{"none", "", ""},
		{"openai", "priority", "priority"},
		{"exactly 32 bytes", strings.Repeat("s", 32), strings.Repeat("s", 32)},
		{"too long", strings.Repeat("s", 33) + "cale", strings.Repeat("s", 32)},
		{"character across the bound", strings.Repeat("s", 31) + "é", strings.Repeat("s", 31)},
		{"NUL and invalid UTF-8", "fl\x00e\xffx", "fl\uFFFDe\uFFFDx"},
		// Each invalid byte becomes U+FFFD, three bytes: 26 bytes sent, 50 repaired.
		{"repaired past the bound", "xx" + strings.Repeat("\xff.", 12), "xx" + strings.Repeat("\uFFFD.", 7)},
	}
	now := time.Now().UnixMilli()
	ids := make([]string, len(tests))
	var events []*gatehousev1.UsageEvent
	for i, tt := range tests {
		ids[i] = uuid()
		events = append(events, &gatehousev1.UsageEvent{EventId: ids[i], RequestId: fmt.Sprint("req-", i), OrgId: org.ID,
			Endpoint: "chat.completions", StartedAtUnixMs: now, Region: "eu", GatewayId: "gw-1", StatusCode: 200, ServiceTier: tt.tier})
	}
	ing := usageingest.New(st.Pool(), nil, slog.New(slog.DiscardHandler))
	if n, err := ing.Write(ctx, events); err != nil || n != int64(len(events)) {
		t.Fatalf("Write = %d, %v; want %d", n, err, len(events))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got string
			if err := st.Pool().QueryRow(ctx, "select service_tier from usage_events where event_id = $1", ids[i]).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want || len(got) > 32 || !utf8.ValidString(got) {
				t.Errorf("stored %q (%d bytes), want %q", got, len(got), tt.want)
			}
		})
	}
}

// TestIngestDropsRefusedEvents: an event PostgreSQL refuses (here by a check
// constraint the test adds; in the field a value the database cannot store) fails
// the write of everything fetched with it. The batches are then written one by one,
// and the refused one event by event: every other event lands, the refused one is
// left out, and nothing stays pending. An event naming another org than the subject
// it came on is left out too.
func TestIngestDropsRefusedEvents(t *testing.T) {
	t.Parallel()
	st := cptest.Store(t)
	ns := cptest.StartNATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	org, err := st.CreateOrg(ctx, "test", "refused", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, "alter table usage_events add constraint test_refused check (request_id <> 'refused')"); err != nil {
		t.Fatal(err)
	}
	other, err := st.CreateOrg(ctx, "test", "other", "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	publish := func(requests ...string) {
		t.Helper()
		var events []*gatehousev1.UsageEvent
		for _, r := range requests {
			ev := &gatehousev1.UsageEvent{EventId: uuid(), RequestId: r, OrgId: org.ID, Endpoint: "chat.completions",
				StartedAtUnixMs: now, StatusCode: 200, Region: "local", GatewayId: "gw", PromptTokens: 1}
			if r == "other-org" {
				ev.OrgId = other.ID // on this org's subject: not believed
			}
			events = append(events, ev)
		}
		data, err := proto.Marshal(&gatehousev1.UsageBatch{BatchId: uuid(), OrgId: org.ID, Events: events})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ns.JS.Publish(ctx, wire.UsageSubject("local", org.ID), data); err != nil {
			t.Fatal(err)
		}
	}
	// All three are in the stream before the ingester starts, so its first fetch
	// takes them together.
	publish("a1", "a2")
	publish("b1", "refused")
	publish("c1", "other-org")
	ing := usageingest.New(st.Pool(), ns.JS, slog.New(slog.DiscardHandler))
	go ing.Run(ctx) //nolint:errcheck // ends with ctx

	eventuallyAllAcked(ctx, t, ns)
	var got string
	if err := st.Pool().QueryRow(ctx, "select string_agg(request_id, ',' order by request_id) from usage_events").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "a1,a2,b1,c1" {
		t.Fatalf("stored requests %s, want a1,a2,b1,c1 (only the refused event left out)", got)
	}
}

// TestCacheTokensReachTheUsageViews: the prompt-cache reads and writes of ingested
// events come back from the usage API's summary and detail, per event and summed.
func TestCacheTokensReachTheUsageViews(t *testing.T) {
	t.Parallel()
	st := cptest.Store(t)
	ctx := context.Background()
	org, err := st.CreateOrg(ctx, "test", "cache-views", "")
	if err != nil {
		t.Fatal(err)
	}
	ing := usageingest.New(st.Pool(), nil, slog.New(slog.DiscardHandler))
	now := time.Now().UnixMilli()
	var events []*gatehousev1.UsageEvent
	for i := range 2 {
		events = append(events, &gatehousev1.UsageEvent{EventId: uuid(), RequestId: fmt.Sprint("req-", i), OrgId: org.ID,
			Model: "claude", Endpoint: "messages", StartedAtUnixMs: now - int64(i), Region: "eu", GatewayId: "gw-1", StatusCode: 200,
			PromptTokens: 6000, CachedTokens: 3000, CacheWriteTokens: 2000, CacheWriteHourTokens: 500, CompletionTokens: 100, CostMicros: 10_050})
	}
	if n, err := ing.Write(ctx, events); err != nil || n != 2 {
		t.Fatalf("Write = %d, %v", n, err)
	}
	sum, err := st.UsageSummary(ctx, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Recent) != 2 || sum.Recent[0].CachedTokens != 3000 || sum.Recent[0].CacheWriteTokens != 2000 || sum.Recent[0].CacheWriteHourTokens != 500 {
		t.Fatalf("summary's recent events %+v", sum.Recent)
	}
	detail, err := st.UsageDetail(ctx, org.ID, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(detail.Breakdown) != 1 || detail.Breakdown[0].CachedTokens != 6000 || detail.Breakdown[0].CacheWriteTokens != 4000 {
		t.Fatalf("breakdown %+v", detail.Breakdown)
	}
	if len(detail.Recent) != 2 || detail.Recent[1].CacheWriteTokens != 2000 || detail.Recent[1].CacheWriteHourTokens != 500 || detail.Recent[1].RequestID != "req-1" {
		t.Fatalf("detail's recent events %+v", detail.Recent)
	}
}

// TestPurgeKeepsWhatIsNotAcked: the purge removes the batches up to the consumer's
// ack floor and none after it — one acknowledged out of order included.
func TestPurgeKeepsWhatIsNotAcked(t *testing.T) {
	t.Parallel()
	ns := cptest.StartNATS(t)
	ctx := context.Background()
	for range 5 {
		if _, err := ns.JS.Publish(ctx, wire.UsageSubject("eu", "org-1"), []byte("batch")); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := ns.JS.CreateOrUpdateConsumer(ctx, wire.UsageStream, jetstream.ConsumerConfig{Durable: usageingest.ConsumerName,
		AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := cons.Fetch(5)
	if err != nil {
		t.Fatal(err)
	}
	var got []jetstream.Msg
	for m := range msgs.Messages() {
		got = append(got, m)
	}
	if len(got) != 5 {
		t.Fatalf("fetched %d batches, want 5", len(got))
	}
	for _, i := range []int{0, 1, 3} { // the 3rd (seq 3) stays unacknowledged
		if err := got[i].DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ing := usageingest.New(nil, ns.JS, slog.New(slog.DiscardHandler))
	if purged := ing.PurgeAcked(ctx, cons, 0); purged != 2 {
		t.Fatalf("purged up to %d, want 2", purged)
	}
	info, err := ns.Resources.Usage.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.FirstSeq != 3 || info.State.Msgs != 3 {
		t.Fatalf("after the purge the stream holds %d batches from seq %d, want 3 from seq 3", info.State.Msgs, info.State.FirstSeq)
	}
	// Nothing moved: no purge (and no call to purge).
	if purged := ing.PurgeAcked(ctx, cons, 2); purged != 2 {
		t.Fatalf("second purge up to %d, want 2", purged)
	}
}
