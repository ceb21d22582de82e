package usageingest

import (
	"encoding/binary"
	"math"
	"strings"
	"unicode/utf8"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

// usageCopy encodes usage_events rows in PostgreSQL's binary COPY format, column by
// column in the order of columns. Handing pgx a []any per row cost the control plane
// about a fifth of its CPU under load (an encode plan looked up and an interface boxed
// for every value); the table's types are fixed, so the rows are written directly.
type usageCopy struct {
	buf  []byte
	rows int64
}

// pgEpochMicros is 2000-01-01T00:00:00Z, where binary timestamps count from, in Unix
// microseconds.
const pgEpochMicros = 946_684_800_000_000

func newUsageCopy(rows int) *usageCopy {
	c := &usageCopy{buf: make([]byte, 0, 19+rows*320)}
	c.buf = append(c.buf, "PGCOPY\n\xff\r\n\x00"...)
	c.buf = binary.BigEndian.AppendUint32(c.buf, 0) // flags
	c.buf = binary.BigEndian.AppendUint32(c.buf, 0) // header extension length
	return c
}

// add appends one row; ids are the event's parsed event, org and team ids (team may be
// absent: NULL).
func (c *usageCopy) add(e *gatehousev1.UsageEvent, eventID, orgID [16]byte, teamID *[16]byte) {
	b := binary.BigEndian.AppendUint16(c.buf, uint16(len(columns)))
	b = appendUUID(b, &eventID)
	b = appendInt8(b, e.StartedAtUnixMs*1000-pgEpochMicros) // timestamptz
	b = appendText(b, e.RequestId)
	b = appendUUID(b, &orgID)
	b = appendUUID(b, teamID)
	if e.KeyId == "" {
		b = appendNull(b)
	} else {
		b = appendText(b, e.KeyId)
	}
	b = appendText(b, e.Model)
	b = appendText(b, e.UpstreamModel)
	b = appendText(b, e.ProviderId)
	b = appendText(b, e.Endpoint)
	b = appendText(b, e.Region)
	b = appendText(b, e.GatewayId)
	b = appendInt8(b, e.LatencyMs)
	b = appendInt8(b, e.TimeToFirstTokenMs)
	b = appendInt4(b, e.StatusCode)
	b = appendText(b, e.ErrorClass)
	b = appendBool(b, e.Streamed)
	b = appendInt8(b, e.PromptTokens)
	b = appendInt8(b, e.CompletionTokens)
	b = appendInt8(b, e.CachedTokens)
	b = appendInt8(b, e.CostMicros)
	b = appendText(b, e.AgentIdentity)
	b = appendText(b, e.DeploymentId)
	b = appendInt4(b, e.Retries)
	b = appendText(b, e.FallbackModel)
	b = appendInt8(b, e.OverheadUs)
	b = appendInt8(b, e.CacheWriteTokens)
	b = appendInt8(b, e.CacheWriteHourTokens)
	b = appendText(b, truncateText(e.ServiceTier, maxServiceTierBytes))
	c.buf = b
	c.rows++
}

// data returns the encoded rows with the trailer; add must not be called after it.
func (c *usageCopy) data() []byte {
	return binary.BigEndian.AppendUint16(c.buf, math.MaxUint16) // -1: end of data
}

func appendNull(b []byte) []byte { return binary.BigEndian.AppendUint32(b, math.MaxUint32) }

func appendUUID(b []byte, u *[16]byte) []byte {
	if u == nil {
		return appendNull(b)
	}
	b = binary.BigEndian.AppendUint32(b, 16)
	return append(b, u[:]...)
}

func appendInt8(b []byte, v int64) []byte {
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(v))
}

func appendInt4(b []byte, v int32) []byte {
	b = binary.BigEndian.AppendUint32(b, 4)
	return binary.BigEndian.AppendUint32(b, uint32(v))
}

func appendBool(b []byte, v bool) []byte {
	b = binary.BigEndian.AppendUint32(b, 1)
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// appendText appends s as a text value.
func appendText(b []byte, s string) []byte {
	s = cleanText(s)
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// maxServiceTierBytes bounds usage_events.service_tier (its check constraint,
// usage_events_service_tier_ck). The gateway bounds it too, but a longer value from a
// broken or older gateway must not cost the batch.
const maxServiceTierBytes = 32

// truncateText is s cleaned like cleanText and cut to at most n bytes on a character
// boundary, so that it stays valid UTF-8.
func truncateText(s string, n int) string {
	s = cleanText(s)
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// cleanText replaces what PostgreSQL refuses in text — a NUL byte (a client can put
// one in a model name) and invalid UTF-8 — with U+FFFD. Refused, it would fail the
// whole batch on every redelivery.
func cleanText(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
