// Package usageingest consumes usage batches from the USAGE stream with a durable
// consumer and writes their events into Postgres exactly once: events are staged with
// COPY straight into their tables, and a batch that collides with events already
// there (a redelivery) is staged and inserted with ON CONFLICT DO NOTHING on their
// id instead; messages are acked only after the transaction commits. A redelivered
// batch therefore changes nothing.
package usageingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

// ConsumerName is the durable consumer shared by every control plane replica.
const ConsumerName = "controlplane-usage"

// Ingester moves usage events from JetStream into Postgres.
type Ingester struct {
	pool  *pgxpool.Pool
	js    jetstream.JetStream
	log   *slog.Logger
	batch int
	// stream is the usage stream, for purging (looked up at the first purge).
	stream jetstream.Stream

	mu         sync.Mutex
	partitions map[string]bool
}

// New returns an ingester.
func New(pool *pgxpool.Pool, js jetstream.JetStream, log *slog.Logger) *Ingester {
	return &Ingester{pool: pool, js: js, log: log, batch: 256, partitions: map[string]bool{}}
}

// Run consumes until ctx ends.
func (in *Ingester) Run(ctx context.Context) error {
	cons, err := in.js.CreateOrUpdateConsumer(ctx, wire.UsageStream, jetstream.ConsumerConfig{
		Durable:       ConsumerName,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 4096,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("usage ingest: consumer: %w", err)
	}
	var purged uint64
	var lastPurge time.Time
	for ctx.Err() == nil {
		if time.Since(lastPurge) >= purgeEvery {
			purged, lastPurge = in.purgeAcked(ctx, cons, purged), time.Now()
		}
		msgs, err := cons.Fetch(in.batch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() == nil {
				in.log.Warn("usage fetch failed", "error", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		var batch []jetstream.Msg
		for m := range msgs.Messages() {
			batch = append(batch, m)
		}
		if err := msgs.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && ctx.Err() == nil {
			in.log.Warn("usage fetch ended", "error", err)
		}
		if len(batch) == 0 {
			continue
		}
		if err := in.handle(ctx, batch); err != nil {
			in.log.Error("usage ingest failed; messages will be redelivered", "error", err, "messages", len(batch))
			for _, m := range batch {
				_ = m.NakWithDelay(time.Second)
			}
			sleep(ctx, time.Second)
		}
	}
	return nil
}

// purgeEvery is how often the ingester removes what it has acknowledged from the
// usage stream.
const purgeEvery = time.Second

// purgeAcked removes from the usage stream every batch up to the consumer's ack floor
// (all of them written to Postgres, or terminated as undecodable) when it moved past
// purged, and returns the floor purged up to. The stream is the control plane's
// queue: it holds the backlog, not the history.
func (in *Ingester) purgeAcked(ctx context.Context, cons jetstream.Consumer, purged uint64) uint64 {
	info, err := cons.Info(ctx)
	if err != nil {
		if ctx.Err() == nil {
			in.log.Warn("usage purge: consumer info", "error", err)
		}
		return purged
	}
	floor := info.AckFloor.Stream
	if floor <= purged {
		return purged
	}
	if in.stream == nil {
		in.stream, err = in.js.Stream(ctx, wire.UsageStream)
	}
	if err == nil {
		err = in.stream.Purge(ctx, jetstream.WithPurgeSequence(floor+1))
	}
	if err != nil {
		if ctx.Err() == nil {
			in.log.Warn("usage purge failed", "error", err, "up_to_sequence", floor)
		}
		return purged
	}
	return floor
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// handle writes the events of msgs and acks them. Undecodable messages are
// terminated (they would never decode) and logged. When PostgreSQL refuses the
// events' values (a data error, which every redelivery would repeat), the messages
// are written one at a time, and the events of one refused on its own one at a
// time, leaving out (and logging) those refused, so that one bad event cannot hold
// back everyone's usage.
func (in *Ingester) handle(ctx context.Context, msgs []jetstream.Msg) error {
	var batches [][]*gatehousev1.UsageEvent
	var good []jetstream.Msg
	for _, m := range msgs {
		var b gatehousev1.UsageBatch
		if err := proto.Unmarshal(m.Data(), &b); err != nil {
			in.log.Error("usage batch undecodable; dropped", "subject", m.Subject(), "error", err)
			_ = m.Term()
			continue
		}
		// A gateway publishes each org's usage on that org's subject: an event naming
		// another org is not believed.
		org := m.Subject()[strings.LastIndexByte(m.Subject(), '.')+1:]
		events := b.Events[:0]
		for _, e := range b.Events {
			if e.OrgId == "" {
				e.OrgId = b.OrgId
			}
			if e.OrgId != org {
				in.log.Warn("usage event of another org than its subject's; skipped", "subject", m.Subject(), "event_id", e.EventId, "org_id", e.OrgId)
				continue
			}
			events = append(events, e)
		}
		batches = append(batches, events)
		good = append(good, m)
	}
	err := in.writeAndAck(ctx, slices.Concat(batches...), good)
	if !isDataError(err) {
		return err
	}
	for i := range good {
		err := in.writeAndAck(ctx, batches[i], good[i:i+1])
		if !isDataError(err) {
			if err != nil {
				return err
			}
			continue
		}
		for _, e := range batches[i] {
			if _, err := in.Write(ctx, []*gatehousev1.UsageEvent{e}); isDataError(err) {
				in.log.Error("usage event refused by the database; dropped", "event_id", e.EventId, "org_id", e.OrgId, "error", err)
			} else if err != nil {
				return err
			}
		}
		if err := in.writeAndAck(ctx, nil, good[i:i+1]); err != nil {
			return err
		}
	}
	return nil
}

// writeAndAck writes events and then acks msgs.
func (in *Ingester) writeAndAck(ctx context.Context, events []*gatehousev1.UsageEvent, msgs []jetstream.Msg) error {
	if len(events) > 0 {
		n, err := in.Write(ctx, events)
		if err != nil {
			return err
		}
		in.log.Debug("usage ingested", "events", len(events), "inserted", n)
	}
	for _, m := range msgs {
		if err := m.DoubleAck(ctx); err != nil {
			// Redelivery is harmless: the insert is idempotent.
			in.log.Warn("usage ack failed", "error", err)
		}
	}
	return nil
}

// isDataError reports whether PostgreSQL refused the values themselves (SQLSTATE
// classes 22, data exception, and 23, integrity constraint violation).
func isDataError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23"))
}

var columns = []string{
	"event_id", "started_at", "request_id", "org_id", "team_id", "key_id", "model", "upstream_model",
	"provider_id", "endpoint", "region", "gateway_id", "latency_ms", "time_to_first_token_ms", "status_code",
	"error_class", "streamed", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_micros",
	"agent_identity", "deployment_id", "retries", "fallback_model", "overhead_us",
	"cache_write_tokens", "cache_write_hour_tokens", "service_tier",
}

var guardrailColumns = []string{"event_id", "rule_id", "started_at", "org_id", "team_id", "request_id", "detector", "mode", "direction", "matches", "texts"}

// Write inserts events idempotently and returns how many were new. Malformed events
// (no id, bad uuids) are skipped and logged rather than blocking the stream.
func (in *Ingester) Write(ctx context.Context, events []*gatehousev1.UsageEvent) (int64, error) {
	rows := newUsageCopy(len(events))
	var guardRows [][]any
	months := map[time.Time]bool{}
	for _, e := range events {
		eventID, ok1 := parseUUID(e.EventId)
		orgID, ok2 := parseUUID(e.OrgId)
		teamID, ok3 := parseUUID(e.TeamId)
		if !ok1 || !ok2 || (e.TeamId != "" && !ok3) {
			in.log.Warn("usage event malformed; skipped", "event_id", e.EventId, "org_id", e.OrgId)
			continue
		}
		started := time.UnixMilli(e.StartedAtUnixMs).UTC()
		if y := started.Year(); y < 1970 || y > 9999 {
			in.log.Warn("usage event with an impossible start time; skipped", "event_id", e.EventId, "started_at_unix_ms", e.StartedAtUnixMs)
			continue
		}
		months[monthStart(started)] = true
		var team *[16]byte
		if ok3 {
			team = &teamID
		}
		rows.add(e, eventID, orgID, team)
		for _, g := range e.GuardrailEvents {
			texts := g.Texts
			if texts == nil {
				texts = []string{} // a nil slice is NULL; older gateways send no texts
			}
			for i, s := range texts {
				texts[i] = cleanText(s)
			}
			guardRows = append(guardRows, []any{uuidValue(eventID, true), cleanText(g.RuleId), started, uuidValue(orgID, true),
				uuidValue(teamID, ok3), cleanText(e.RequestId), cleanText(g.Detector), cleanText(g.Mode), cleanText(g.Direction), g.Matches, texts})
		}
	}
	if rows.rows == 0 {
		return 0, nil
	}
	for m := range months {
		if err := in.ensurePartition(ctx, m); err != nil {
			return 0, err
		}
	}
	// Almost every batch is new: COPY it straight into the tables. A batch seen
	// before (redelivered after a crash or a lost ack) fails that on its primary key
	// and takes the staged path, which skips what is already there.
	data := rows.data()
	inserted, err := in.copyDirect(ctx, data, guardRows)
	if isUniqueViolation(err) {
		inserted, err = in.copyStaged(ctx, data, guardRows)
	}
	if err != nil {
		return 0, fmt.Errorf("write usage: %w", err)
	}
	return inserted, nil
}

// copyUsage copies rows (binary COPY data for columns) into table.
func copyUsage(ctx context.Context, tx pgx.Tx, table string, rows []byte) (int64, error) {
	tag, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(rows), "copy "+table+copyColumns)
	return tag.RowsAffected(), err
}

// copyColumns is the column list and format of copyUsage's statements.
var copyColumns = " (" + strings.Join(columns, ", ") + ") from stdin (format binary)"

// copyDirect copies the rows into usage_events and guardrail_events in one
// transaction; a row already there fails it with a unique violation.
func (in *Ingester) copyDirect(ctx context.Context, rows []byte, guardRows [][]any) (int64, error) {
	var inserted int64
	err := pgx.BeginFunc(ctx, in.pool, func(tx pgx.Tx) error {
		n, err := copyUsage(ctx, tx, "usage_events", rows)
		if err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		inserted = n
		if len(guardRows) == 0 {
			return nil
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"guardrail_events"}, guardrailColumns, pgx.CopyFromRows(guardRows)); err != nil {
			return fmt.Errorf("copy guardrails: %w", err)
		}
		return nil
	})
	return inserted, err
}

// copyStaged copies the rows into per-connection staging tables and inserts what
// is not there yet (COPY cannot resolve conflicts itself).
func (in *Ingester) copyStaged(ctx context.Context, rows []byte, guardRows [][]any) (int64, error) {
	var inserted int64
	err := pgx.BeginFunc(ctx, in.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `create temp table if not exists usage_stage
			(like usage_events including defaults) on commit delete rows`); err != nil {
			return fmt.Errorf("stage: %w", err)
		}
		if _, err := copyUsage(ctx, tx, "usage_stage", rows); err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		tag, err := tx.Exec(ctx, `insert into usage_events select * from usage_stage
			on conflict (event_id, started_at) do nothing`)
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		inserted = tag.RowsAffected()
		if len(guardRows) == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `create temp table if not exists guardrail_stage
			(like guardrail_events including defaults) on commit delete rows`); err != nil {
			return fmt.Errorf("stage guardrails: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"guardrail_stage"}, guardrailColumns, pgx.CopyFromRows(guardRows)); err != nil {
			return fmt.Errorf("copy guardrails: %w", err)
		}
		if _, err := tx.Exec(ctx, `insert into guardrail_events select * from guardrail_stage on conflict do nothing`); err != nil {
			return fmt.Errorf("insert guardrails: %w", err)
		}
		return nil
	})
	return inserted, err
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// ensurePartition creates the monthly partition holding month. Partition DDL is built
// here by hand because sqlc cannot express dynamic table names.
func (in *Ingester) ensurePartition(ctx context.Context, month time.Time) error {
	name := fmt.Sprintf("usage_events_y%04dm%02d", month.Year(), month.Month())
	in.mu.Lock()
	done := in.partitions[name]
	in.mu.Unlock()
	if done {
		return nil
	}
	next := month.AddDate(0, 1, 0)
	err := pgx.BeginFunc(ctx, in.pool, func(tx pgx.Tx) error {
		// Serialise replicas creating the same partition.
		if _, err := tx.Exec(ctx, "select pg_advisory_xact_lock(hashtext($1))", name); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, fmt.Sprintf(`create table if not exists %s partition of usage_events
			for values from ('%s') to ('%s')`, pgx.Identifier{name}.Sanitize(),
			month.Format(time.RFC3339), next.Format(time.RFC3339)))
		return err
	})
	if err != nil {
		return fmt.Errorf("ensure partition %s: %w", name, err)
	}
	in.mu.Lock()
	in.partitions[name] = true
	in.mu.Unlock()
	return nil
}

func monthStart(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// uuidValue is u as a pgx value; NULL when !valid.
func uuidValue(u [16]byte, valid bool) pgtype.UUID {
	return pgtype.UUID{Bytes: u, Valid: valid}
}

// parseUUID parses a UUID in its 8-4-4-4-12 hex form; false for anything else.
func parseUUID(s string) ([16]byte, bool) {
	var u [16]byte
	if len(s) != 36 {
		return u, false
	}
	j := 0
	for i := 0; i < len(s); {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return u, false
			}
			i++
			continue
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return u, false
		}
		u[j] = hi<<4 | lo
		i, j = i+2, j+1
	}
	return u, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
