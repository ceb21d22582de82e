package limit

import (
	"net/http"
	"strconv"
	"time"
)

// Decision is the outcome of Admit, and the most constraining limit for the response
// headers.
type Decision struct {
	Allowed bool
	// Scope and Limit name the binding limit: when refused, the level and limit that
	// refused (of several, the one with the longest wait); when admitted, the one with
	// the least room left (as a fraction of its burst or concurrency share). Both are
	// empty when no limit applied.
	Scope Scope
	Limit Kind
	// RetryAfter, when refused, is how long until the request could pass as far as
	// this gateway's state goes (ConcurrencyRetryAfter for concurrency).
	RetryAfter time.Duration
	// Quota is the configured limit of the binding limit: per minute for rpm and tpm,
	// requests in flight for concurrency.
	Quota int64
	// Remaining is what this gateway would admit at once right now at the binding
	// limit, after this request: requests (rpm), tokens (tpm) or slots (concurrency).
	// It is bounded by the burst (rpm, tpm) or the concurrency share, so it is usually
	// far below Quota.
	Remaining int64
	// Reset is how long until the binding limit's bucket is full again (0 for
	// concurrency).
	Reset time.Duration
}

func (d *Decision) refuse(c *Check, k Kind, wait time.Duration, quota, untilFull int64) {
	if wait <= d.RetryAfter {
		return
	}
	*d = Decision{Scope: c.Scope, Limit: k, RetryAfter: wait, Quota: quota, Reset: time.Duration(untilFull)}
}

func (d *Decision) bind(s Scope, k Kind, quota, remaining, untilFull int64) {
	d.Scope, d.Limit, d.Quota, d.Remaining, d.Reset = s, k, quota, max(remaining, 0), time.Duration(max(untilFull, 0))
}

// WriteHeaders sets the rate limit fields of draft-ietf-httpapi-ratelimit-headers-06 for
// the binding limit, when there is one:
//
//	RateLimit-Limit: <Quota>
//	RateLimit-Remaining: <Remaining>
//	RateLimit-Reset: <Reset in seconds, rounded up>
//
// and, when refused, Retry-After: <RetryAfter in seconds, rounded up, at least 1>.
func (d Decision) WriteHeaders(h http.Header) {
	if d.Scope == "" && d.Limit == "" {
		return
	}
	h.Set("RateLimit-Limit", strconv.FormatInt(d.Quota, 10))
	h.Set("RateLimit-Remaining", strconv.FormatInt(d.Remaining, 10))
	h.Set("RateLimit-Reset", strconv.FormatInt(ceilSeconds(d.Reset), 10))
	if !d.Allowed {
		h.Set("Retry-After", strconv.FormatInt(max(1, ceilSeconds(d.RetryAfter)), 10))
	}
}

func ceilSeconds(d time.Duration) int64 { return ceilDiv(max(int64(d), 0), int64(time.Second)) }
