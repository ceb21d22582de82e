// Package limit enforces request, token and concurrency limits (config Limits: rpm, tpm,
// max_concurrent; 0 = unlimited) on several levels at once — per key, per team (all its
// keys together), per model (across the org) — in memory, with no round trip per
// request, while the limits hold across all the gateways of a region.
//
// # Shares
//
// Each gateway enforces its share of every limit: share = ceil(limit / n), where n is
// the number of live gateways of the region (package peers counts them from the status
// heartbeats; n is read on every call, so shares follow membership at once). The
// concurrency share is ceil(max_concurrent / n), at least 1.
//
// Shares assume the load balancer spreads each limited key's traffic over the
// gateways. A client pinned to one gateway (one keep-alive connection) gets that
// gateway's share only, about limit/n; gateways never borrow unused share from each
// other, which is what keeps the bound below free of round trips.
//
// # GCRA
//
// Requests and tokens are metered with the generic cell rate algorithm: each limited
// (level, id) keeps a theoretical arrival time (TAT) per kind; one unit costs the
// emission interval T = 60s / share; a request is admitted while TAT − now ≤ (B − 1)·T,
// and its cost is then added to TAT. B, the burst, is BurstPercent (default 10%) of the
// per-minute share, at least 1: from idle, B requests pass at once, then one every T.
// There are no windows, so nothing resets at a window edge and there is no double burst:
// in ANY interval of length D a gateway admits at most D/T + B units of a kind, i.e. at
// most share + B per minute.
//
// Tokens are estimated at admission (the caller passes prompt estimate + max_tokens, or
// a default). Admission needs room for one token; the whole estimate is then charged,
// so one request may take the bucket into debt (later requests wait it out) instead of a
// large request never fitting a small burst. Ticket.Settle replaces the estimate with
// the actual count: an excess raises TAT; a refund lowers it, but only by what of the
// ticket's own charge has not run off by then (a charge the bucket has already earned
// back is not given back twice). So a gateway's tokens in any minute are at most
// share + B + c − 1, c the largest single charge.
//
// All checks of one Admit are decided together under their locks: if any level refuses,
// nothing is consumed anywhere.
//
// # Worst-case overshoot across gateways
//
// Write L for a limit, W = 60s, f = BurstPercent/100 and B(s) = max(1, ceil(f·s)).
//
// Steady membership (all N serving gateways count N): any window of length W admits,
// region-wide, at most
//
//	N·(ceil(L/N) + B(ceil(L/N)))  ≤  L + (N−1) + N·B(ceil(L/N))
//
// requests; tokens add N·(c − 1) with c the largest single charge; requests in flight
// never exceed N·max(1, ceil(M/N)) ≤ M + N − 1 (M = max_concurrent, N ≤ M).
//
// Membership changes: GCRA meters a rate, not a count per window, so a gateway that
// changes its count mid-window changes its rate from then on. Split each gateway's part
// of the window into phases of constant count; a phase of length d with share s admits
// at most d·s/W + B(s). As long as every serving gateway counts at least the gateways
// that are serving, the shares in force at any instant sum to at most L + N, hence
//
//	admitted in any window W  ≤  L + Nmax + Σ over (gateway, phase) of B(s)
//
// with Nmax the most gateways serving during the window. The premise holds:
//   - when k gateways leave or crash: the others still count them for up to 3 heartbeat
//     intervals (15 s) and under-admit meanwhile; with L = 600, N = 3→2 the bound is
//     600 + 3 + 2·(20+30) + 20 = 723 (steady: 660).
//   - when k gateways join and each serves only once peers.Tracker.Settled (it has heard
//     everyone, and everyone heard its first heartbeat, sent at start, long before), or
//     counts until then at least the region's count it last knew: a restarting
//     gateway does (peers.Options.Floor, kept in its config cache directory).
//
// It fails for a gateway that serves while counting fewer gateways than serve, by
// ceil(L/n') − ceil(L/N) per minute for as long as that lasts: a new joiner, or one
// without a cache directory, serving before it settled (≤ 1 interval:
// +L·(1 − 1/N)·5s/60s + B(L) for n' = 1), a lost first
// heartbeat (≤ 1 interval more), or a gateway cut off from NATS that keeps serving on its
// last count while its peers expire it after 3 intervals (then the region admits up to
// L·(1 + 1/N) per minute for as long as the partition lasts: availability over
// precision, by design).
//
// # State and memory
//
// Limits come from the caller on every call (read them from the current config), so
// config swaps change limits without losing state; the mutable state lives here, keyed
// by (scope, id), in a sharded map. A state whose buckets are full again, with nothing
// in flight, for IdleTTL (default two minutes, twice the window) is evicted by Evict
// (Run calls it periodically); such a state is indistinguishable from a fresh one, so
// eviction loses nothing. A level whose limits are all zero keeps no state at all.
//
// # Headers
//
// Decision.WriteHeaders writes RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset
// (draft-ietf-httpapi-ratelimit-headers-06) for the most constraining limit, plus
// Retry-After when refused; see WriteHeaders.
//
// The package does not authenticate, read config, count gateways or talk HTTP beyond
// writing headers; budgets (money) are a separate mechanism.
package limit

import (
	"context"
	"fmt"
	"hash/maphash"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/prometheus/client_golang/prometheus"
)

// Scope names the level a limit applies to.
type Scope string

// The levels of the config.
const (
	ScopeKey   Scope = "key"
	ScopeTeam  Scope = "team"
	ScopeModel Scope = "model"
)

// Kind names one of the limits of a level.
type Kind string

// The limits of a level.
const (
	RPM         Kind = "rpm"
	TPM         Kind = "tpm"
	Concurrency Kind = "concurrency"
)

// Window is the period rpm and tpm are defined over.
const Window = time.Minute

// ConcurrencyRetryAfter is the Retry-After of a request refused for concurrency: a slot
// frees whenever a request in flight ends, which cannot be predicted.
const ConcurrencyRetryAfter = time.Second

// MaxLimit caps every configured limit; larger values are treated as MaxLimit.
const MaxLimit = 1e10

// maxCharge caps the time one charge may add to a bucket (a week), so absurd token
// estimates cannot overflow.
const maxCharge = int64(7 * 24 * time.Hour)

const shardCount = 256

// Limits are the limits of one level; zero means unlimited.
type Limits struct {
	RPM           int64
	TPM           int64
	MaxConcurrent int64
}

// FromProto converts the config message (nil means no limits).
func FromProto(p *gatehousev1.Limits) Limits {
	return Limits{RPM: p.GetRpm(), TPM: p.GetTpm(), MaxConcurrent: p.GetMaxConcurrent()}
}

// IsZero reports whether no limit is set.
func (l Limits) IsZero() bool { return l.RPM <= 0 && l.TPM <= 0 && l.MaxConcurrent <= 0 }

// Check is one level to admit a request against. Each (Scope, ID) may appear once per
// Admit. IDs must be stable across config versions: the key id, the team id, and
// ModelID(org, model) for a model.
type Check struct {
	Scope  Scope
	ID     string
	Limits Limits
}

// ModelID is the ID of a model's Check. Build it once when compiling the config, not
// per request.
func ModelID(orgID, model string) string { return orgID + "/" + model }

// Options configures a Limiter.
type Options struct {
	// Peers returns the number of live gateways of the region (peers.Tracker.Count);
	// nil means this gateway is alone. Values below 1 count as 1.
	Peers func() int
	// BurstPercent is the burst as a percentage of the per-minute share (default 10,
	// at most 1000); the burst is at least one unit.
	BurstPercent int
	// IdleTTL is how long a state stays after its buckets are full again with nothing
	// in flight (default 2 minutes).
	IdleTTL time.Duration
	// Now is the clock Run evicts with (default time.Now).
	Now func() time.Time
	// Registerer receives the limiter's metrics (none when nil).
	Registerer prometheus.Registerer
}

// Limiter holds the state of every limited (scope, id) of this gateway.
type Limiter struct {
	peers    func() int
	burstPct int64
	idleTTL  int64
	now      func() time.Time
	epoch    time.Time
	seed     maphash.Seed
	shards   [shardCount]shard
	metrics  metrics
}

type shard struct {
	mu sync.Mutex
	m  map[stateKey]*state
	// peak is the most states held since the map was last rebuilt: Go maps do not
	// shrink, so Evict rebuilds one that fell far below it.
	peak int
	_    [40]byte // keep shards on separate cache lines
}

type stateKey struct {
	scope Scope
	id    string
}

// state is the mutable state of one (scope, id). Times are nanoseconds since the
// limiter's epoch. Guarded by its shard's mutex.
type state struct {
	reqTAT   int64
	tokTAT   int64
	inflight int64 // requests holding a concurrency slot
	open     int64 // tickets not yet released; the state is not evicted while > 0
	seen     int64 // last admission attempt
}

// New returns a Limiter.
func New(o Options) (*Limiter, error) {
	if o.Peers == nil {
		o.Peers = func() int { return 1 }
	}
	if o.BurstPercent <= 0 {
		o.BurstPercent = 10
	}
	o.BurstPercent = min(o.BurstPercent, 1000)
	if o.IdleTTL <= 0 {
		o.IdleTTL = 2 * Window
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	l := &Limiter{
		peers:    o.Peers,
		burstPct: int64(o.BurstPercent),
		idleTTL:  int64(o.IdleTTL),
		now:      o.Now,
		epoch:    o.Now(),
		seed:     maphash.MakeSeed(),
	}
	for i := range l.shards {
		l.shards[i].m = map[stateKey]*state{}
	}
	if err := l.metrics.init(o.Registerer, l.Len); err != nil {
		return nil, fmt.Errorf("limit: %w", err)
	}
	return l, nil
}

// rate is the GCRA parameters of one rpm or tpm limit at this gateway.
type rate struct {
	limit int64 // configured per minute
	share int64 // this gateway's per minute
	burst int64 // units admitted at once from idle
	t     int64 // emission interval: ns per unit
}

func (l *Limiter) rate(limit, n int64) rate {
	limit = min(limit, MaxLimit)
	share := ceilDiv(limit, n)
	return rate{
		limit: limit,
		share: share,
		burst: max(1, ceilDiv(share*l.burstPct, 100)),
		t:     ceilDiv(int64(Window), share),
	}
}

// charge is the TAT advance for c units at a per-minute share: ceil(c·Window/share),
// saturated.
func charge(c, share int64) int64 {
	if c <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(c), uint64(Window))
	if hi >= uint64(share) {
		return maxCharge
	}
	q, rem := bits.Div64(hi, lo, uint64(share))
	if rem != 0 {
		q++
	}
	return int64(min(q, uint64(maxCharge)))
}

// slack is how far TAT may run ahead of now for one more unit to pass.
func (r rate) slack() int64 { return (r.burst - 1) * r.t }

// remaining is how many one-unit admissions would pass now with TAT at tat.
func (r rate) remaining(tat, now int64) int64 {
	x := r.slack() - max(tat-now, 0)
	if x < 0 {
		return 0
	}
	return min(x/r.t+1, r.burst)
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// level is one check being decided.
type level struct {
	check int // index in the checks (a pointer would make them escape)
	idx   int // of sh in Limiter.shards
	sh    *shard
	st    *state
	req   rate // zero when no rpm limit
	tok   rate // zero when no tpm limit
	conc  int64
	// after admission
	reqTAT, tokTAT int64
}

// Admit decides a request against every check at once, as of now, with an estimated
// token cost (prompt estimate + max_tokens, or a default; 0 if unknown). If any check
// refuses, nothing is consumed and the ticket is nil. If admitted, the ticket carries
// what must be given back: call Settle with the actual tokens once known and Release
// when the request ends (defer t.Release()). The ticket is nil, and needs nothing, when
// no admitted level has a token or concurrency limit; its methods accept nil.
func (l *Limiter) Admit(now time.Time, checks []Check, estTokens int64) (*Ticket, Decision) {
	t := int64(now.Sub(l.epoch))
	n := int64(max(1, l.peers()))
	estTokens = max(estTokens, 0)

	var buf [4]level
	levels := buf[:0]
	for i := range checks {
		c := &checks[i]
		if c.Limits.IsZero() {
			continue
		}
		idx := l.shardOf(c.Scope, c.ID)
		lv := level{check: i, idx: idx, sh: &l.shards[idx]}
		if c.Limits.RPM > 0 {
			lv.req = l.rate(c.Limits.RPM, n)
		}
		if c.Limits.TPM > 0 {
			lv.tok = l.rate(c.Limits.TPM, n)
		}
		if c.Limits.MaxConcurrent > 0 {
			lv.conc = max(1, ceilDiv(min(c.Limits.MaxConcurrent, MaxLimit), n))
		}
		levels = append(levels, lv)
	}
	if len(levels) == 0 {
		return nil, Decision{Allowed: true}
	}

	lock(levels)
	refused := false
	var d Decision
	for i := range levels {
		lv := &levels[i]
		c := &checks[lv.check]
		k := stateKey{c.Scope, c.ID}
		st := lv.sh.m[k]
		if st == nil {
			st = &state{}
			lv.sh.m[k] = st
			lv.sh.peak = max(lv.sh.peak, len(lv.sh.m))
		}
		lv.st = st
		st.seen = t
		if lv.req.share > 0 {
			tat := max(st.reqTAT, t)
			if wait := tat - t - lv.req.slack(); wait > 0 {
				refused = true
				d.refuse(c, RPM, time.Duration(wait), lv.req.limit, tat-t)
			}
			lv.reqTAT = tat + lv.req.t
		}
		if lv.tok.share > 0 {
			tat := max(st.tokTAT, t)
			if wait := tat - t - lv.tok.slack(); wait > 0 {
				refused = true
				d.refuse(c, TPM, time.Duration(wait), lv.tok.limit, tat-t)
			}
			lv.tokTAT = tat + charge(estTokens, lv.tok.share)
		}
		if lv.conc > 0 && st.inflight >= lv.conc {
			refused = true
			d.refuse(c, Concurrency, ConcurrencyRetryAfter, c.Limits.MaxConcurrent, 0)
		}
	}
	if refused {
		unlock(levels)
		l.metrics.refused(d.Scope, d.Limit)
		return nil, d
	}

	d = Decision{Allowed: true}
	room := 2.0 // fraction of capacity left at the most constraining limit
	holds := 0
	for i := range levels {
		lv := &levels[i]
		st := lv.st
		c := &checks[lv.check]
		if lv.req.share > 0 {
			st.reqTAT = lv.reqTAT
			rem := lv.req.remaining(st.reqTAT, t)
			if f := float64(rem) / float64(lv.req.burst); f < room {
				room = f
				d.bind(c.Scope, RPM, lv.req.limit, rem, st.reqTAT-t)
			}
		}
		if lv.tok.share > 0 {
			st.tokTAT = lv.tokTAT
			rem := lv.tok.remaining(st.tokTAT, t)
			if f := float64(rem) / float64(lv.tok.burst); f < room {
				room = f
				d.bind(c.Scope, TPM, lv.tok.limit, rem, st.tokTAT-t)
			}
		}
		if lv.conc > 0 {
			st.inflight++
			rem := lv.conc - st.inflight
			if f := float64(rem) / float64(lv.conc); f < room {
				room = f
				d.bind(c.Scope, Concurrency, c.Limits.MaxConcurrent, rem, 0)
			}
		}
		if lv.tok.share > 0 || lv.conc > 0 {
			st.open++ // keeps st from eviction until the ticket is released
			holds++
		}
	}
	unlock(levels)
	if holds == 0 {
		return nil, d
	}
	tk := &Ticket{lim: l, est: estTokens}
	tk.holds = tk.buf[:0]
	for i := range levels {
		if lv := &levels[i]; lv.tok.share > 0 || lv.conc > 0 {
			tk.holds = append(tk.holds, hold{sh: lv.sh, st: lv.st, check: lv.check, tokShare: lv.tok.share, tokEnd: lv.tokTAT, conc: lv.conc > 0})
		}
	}
	return tk, d
}

func (l *Limiter) shardOf(scope Scope, id string) int {
	h := maphash.String(l.seed, id)
	if scope != "" {
		h ^= uint64(scope[0])*0x9e3779b97f4a7c15 + uint64(len(scope))
	}
	return int(h % shardCount)
}

// lock takes the shards of levels in index order, each once, so that concurrent Admits
// over overlapping shards cannot deadlock.
func lock(levels []level) {
	// Sort shard indices, not pointers into levels, so levels stays on the stack.
	var buf [4]int
	order := buf[:0]
	for i := range levels {
		order = append(order, levels[i].idx)
	}
	for i := 1; i < len(order); i++ {
		for j := i; j > 0 && order[j] < order[j-1]; j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
	for i, idx := range order {
		if i > 0 && idx == order[i-1] {
			continue
		}
		for j := range levels {
			if levels[j].idx == idx {
				levels[j].sh.mu.Lock()
				break
			}
		}
	}
}

func unlock(levels []level) {
	for i := range levels {
		sh := levels[i].sh
		dup := false
		for j := range i {
			if levels[j].sh == sh {
				dup = true
				break
			}
		}
		if !dup {
			sh.mu.Unlock()
		}
	}
}

// Evict forgets every state whose buckets have been full again, with nothing in
// flight and no open ticket, for IdleTTL as of now. It returns how many it removed.
func (l *Limiter) Evict(now time.Time) int {
	t := int64(now.Sub(l.epoch))
	removed := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for k, st := range sh.m {
			if st.open == 0 && st.inflight == 0 && max(st.reqTAT, st.tokTAT, st.seen)+l.idleTTL < t {
				delete(sh.m, k)
				removed++
			}
		}
		if sh.peak >= 1024 && len(sh.m) < sh.peak/4 {
			m := make(map[stateKey]*state, len(sh.m))
			for k, st := range sh.m {
				m[k] = st
			}
			sh.m, sh.peak = m, len(m)
		}
		sh.mu.Unlock()
	}
	l.metrics.evicted.Add(float64(removed))
	return removed
}

// Len is the number of states held.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// Run evicts idle state every IdleTTL/2 until ctx is done.
func (l *Limiter) Run(ctx context.Context) error {
	tick := time.NewTicker(time.Duration(l.idleTTL / 2))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			l.Evict(l.now())
		}
	}
}

// Ticket is an admitted request's claim on its levels. Settle and Release are safe to
// call from any goroutine, more than once (only the first call counts), and on a nil
// Ticket.
type Ticket struct {
	lim      *Limiter
	est      int64
	holds    []hold
	buf      [3]hold
	settled  atomic.Bool
	released atomic.Bool
}

type hold struct {
	sh    *shard
	st    *state
	check int // index in Admit's checks
	left  bool
	// tokShare is the token share at admission (0: no tpm), so that Settle corrects
	// exactly what was charged; tokEnd is the level's token TAT right after the charge.
	tokShare int64
	tokEnd   int64
	conc     bool
}

// refund is how far the level's token TAT may move back for a refund of want, as of
// now: only the part of this ticket's charge that has not run off yet. A charge made
// a minute ago is behind the TAT already; refunding it again would hand out tokens
// the bucket has given back by itself (requests left open to save refunds up, then
// spent at once).
func (h *hold) refund(want, now int64) int64 {
	return min(want, max(h.tokEnd-now, 0))
}

// Settle replaces the estimated token cost charged at admission by the actual one on
// every level with a token limit: the difference is charged (a debt makes later
// requests wait) or refunded, as far as the charge has not run off yet (see refund).
// Call it before Release; only the first call counts.
func (t *Ticket) Settle(actualTokens int64) {
	if t == nil || !t.settled.CompareAndSwap(false, true) {
		return
	}
	actualTokens = max(actualTokens, 0)
	now := int64(t.lim.now().Sub(t.lim.epoch))
	for i := range t.holds {
		h := &t.holds[i]
		if h.tokShare == 0 || h.left {
			continue
		}
		delta := charge(actualTokens, h.tokShare) - charge(t.est, h.tokShare)
		if delta < 0 {
			delta = -h.refund(-delta, now)
		}
		if delta == 0 {
			continue
		}
		h.sh.mu.Lock()
		h.st.tokTAT += delta
		h.sh.mu.Unlock()
	}
}

// Release gives back the request's concurrency slots and closes the ticket; only the
// first call counts, so `defer t.Release()` is always safe.
func (t *Ticket) Release() {
	if t == nil || !t.released.CompareAndSwap(false, true) {
		return
	}
	for i := range t.holds {
		if !t.holds[i].left {
			t.holds[i].release(0)
		}
	}
}

// Leave settles the level admitted for checks[check] at zero tokens and gives back its
// concurrency slot at once, before the rest of the ticket: the request moved on from
// what that level limits (a fallback model answers instead of the one asked for). Its
// request stays counted. Call it before Settle and Release; leaving a level twice, or
// one the ticket does not hold, does nothing. Unlike Settle and Release, Leave must not
// run concurrently with the ticket's other methods: the request's own goroutine calls it.
func (t *Ticket) Leave(check int) {
	if t == nil || t.settled.Load() || t.released.Load() {
		return
	}
	now := int64(t.lim.now().Sub(t.lim.epoch))
	for i := range t.holds {
		if h := &t.holds[i]; h.check == check && !h.left {
			h.left = true
			var refund int64
			if h.tokShare > 0 {
				refund = h.refund(charge(t.est, h.tokShare), now)
			}
			h.release(-refund)
		}
	}
}

// release moves the level's token TAT by tokDelta and frees its concurrency slot.
func (h *hold) release(tokDelta int64) {
	h.sh.mu.Lock()
	h.st.tokTAT += tokDelta
	if h.conc {
		h.st.inflight--
	}
	h.st.open--
	h.sh.mu.Unlock()
}
