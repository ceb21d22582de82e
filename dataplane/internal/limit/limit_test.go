package limit

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func newLimiter(t testing.TB, peers func() int) *Limiter {
	t.Helper()
	l, err := New(Options{Peers: peers, Now: func() time.Time { return t0 }, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func key(id string, lim Limits) []Check { return []Check{{Scope: ScopeKey, ID: id, Limits: lim}} }

// TestGCRA drives one key with rpm 60 (T = 1s, burst 6) through scripted arrivals.
func TestGCRA(t *testing.T) {
	t.Parallel()
	type step struct {
		at    time.Duration
		n     int           // arrivals at that instant
		want  int           // admitted of them
		retry time.Duration // RetryAfter of the first refusal
	}
	s := time.Second
	tests := []struct {
		name  string
		steps []step
	}{
		{"burst from idle then one per interval", []step{
			{0, 10, 6, 1 * s},
			{500 * time.Millisecond, 1, 0, 500 * time.Millisecond},
			{1 * s, 2, 1, 1 * s},
			{2 * s, 1, 1, 0},
			{10 * s, 10, 6, 1 * s}, // 8 intervals passed, but the bucket holds 6
		}},
		{"steady rate at the limit never refuses", func() []step {
			var st []step
			for i := range 180 {
				st = append(st, step{time.Duration(i) * s, 1, 1, 0})
			}
			return st
		}()},
		{"refill is capped at the burst", []step{
			{0, 6, 6, 0},
			{time.Hour, 10, 6, 1 * s},
		}},
		{"refused arrivals consume nothing", []step{
			{0, 6, 6, 0},
			{0, 1000, 0, 1 * s},
			{1 * s, 1, 1, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := newLimiter(t, nil)
			for _, st := range tt.steps {
				got := 0
				var retry time.Duration
				for range st.n {
					_, d := l.Admit(at(st.at), key("k", Limits{RPM: 60}), 0)
					if d.Allowed {
						got++
					} else if retry == 0 {
						retry = d.RetryAfter
					}
				}
				if got != st.want || retry != st.retry {
					t.Fatalf("at %v: admitted %d of %d (retry %v), want %d (retry %v)", st.at, got, st.n, retry, st.want, st.retry)
				}
			}
		})
	}
}

// TestNoDoubleBurst hammers one key (rpm 600: T = 100ms, burst 60) every millisecond
// for five minutes, across many minute boundaries, and checks the admissions in every
// sliding interval: a fixed-window counter would let 2×600 through around each edge.
func TestNoDoubleBurst(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, nil)
	var admitted []time.Duration
	for ms := range 5 * 60 * 1000 {
		now := time.Duration(ms) * time.Millisecond
		for range 3 {
			if _, d := l.Admit(at(now), key("k", Limits{RPM: 600}), 0); d.Allowed {
				admitted = append(admitted, now)
			}
		}
	}
	for _, c := range []struct {
		span time.Duration
		max  int
	}{
		{Window, 600 + 60},
		{time.Second, 10 + 60},
		{Window / 2, 300 + 60},
	} {
		if got := maxInWindow(admitted, c.span); got > c.max {
			t.Errorf("%d admitted within %v, want at most %d", got, c.span, c.max)
		}
	}
	// And it is not just refusing: the burst, then one every 100ms up to 299.9s.
	if got, want := len(admitted), 60+2999; got != want {
		t.Errorf("admitted %d in 5 minutes, want %d", got, want)
	}
}

// maxInWindow is the most timestamps (sorted) within any closed interval of length span.
func maxInWindow(ts []time.Duration, span time.Duration) int {
	best, j := 0, 0
	for i := range ts {
		for ts[i]-ts[j] > span {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

// TestAtomicLevels: when one level refuses, no other level is charged.
func TestAtomicLevels(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, nil)
	keyLim := Limits{RPM: 600, TPM: 6000, MaxConcurrent: 5} // bursts 60 requests, 600 tokens
	teamLim := Limits{RPM: 60}                              // burst 6
	checks := func(model Limits) []Check {
		return []Check{
			{Scope: ScopeKey, ID: "k1", Limits: keyLim},
			{Scope: ScopeTeam, ID: "t1", Limits: teamLim},
			{Scope: ScopeModel, ID: ModelID("o1", "m"), Limits: model},
		}
	}
	// The model allows 2 in flight: the third request is refused by the model.
	var tickets []*Ticket
	for range 2 {
		tk, d := l.Admit(at(0), checks(Limits{MaxConcurrent: 2}), 10)
		if !d.Allowed {
			t.Fatalf("refused: %+v", d)
		}
		tickets = append(tickets, tk)
	}
	for range 20 {
		_, d := l.Admit(at(0), checks(Limits{MaxConcurrent: 2}), 10)
		if d.Allowed || d.Scope != ScopeModel || d.Limit != Concurrency {
			t.Fatalf("got %+v, want refused by model concurrency", d)
		}
	}
	// The key and team were charged twice only: 4 more team requests, 58 key
	// requests and 580 key tokens are left.
	_, d := l.Admit(at(0), []Check{{Scope: ScopeTeam, ID: "t1", Limits: teamLim}}, 0)
	if !d.Allowed || d.Remaining != 3 {
		t.Fatalf("team: got %+v, want allowed with 3 remaining", d)
	}
	tk, d := l.Admit(at(0), []Check{{Scope: ScopeKey, ID: "k1", Limits: Limits{RPM: 600}}}, 0)
	if !d.Allowed || d.Remaining != 57 {
		t.Fatalf("key rpm: got %+v, want allowed with 57 remaining", d)
	}
	tk.Release()
	tk, d = l.Admit(at(0), []Check{{Scope: ScopeKey, ID: "k1", Limits: Limits{TPM: 6000}}}, 0)
	if !d.Allowed || d.Remaining != 580 {
		t.Fatalf("key tpm: got %+v, want allowed with 580 remaining", d)
	}
	tk.Release()
	// Key concurrency: 2 held, so 3 more fit, not 4.
	for i := range 4 {
		tk, d := l.Admit(at(0), []Check{{Scope: ScopeKey, ID: "k1", Limits: Limits{MaxConcurrent: 5}}}, 0)
		if d.Allowed != (i < 3) {
			t.Fatalf("key slot %d: got %+v", i, d)
		}
		defer tk.Release()
	}
	for _, tk := range tickets {
		tk.Release()
	}
}

// TestSettle: the estimate is charged at admission and corrected by Settle.
func TestSettle(t *testing.T) {
	t.Parallel()
	lim := Limits{TPM: 600} // 100ms per token, burst 60 tokens
	tests := []struct {
		name      string
		est       int64
		actual    int64 // -1: not settled
		wantRem   int64 // tokens remaining right after
		wantRetry time.Duration
	}{
		{"estimate stands without settle", 60, -1, 0, 100 * time.Millisecond},
		{"refund", 60, 10, 50, 0},
		{"exact", 30, 30, 30, 0},
		{"debt", 10, 200, 0, 20*time.Second - 5900*time.Millisecond},
		{"negative actual counts as zero", 60, -5, 60, 0},
		{"estimate far over the burst is admitted into debt", 6000, -1, 0, 600*time.Second - 5900*time.Millisecond},
		{"and refunded", 6000, 100, 0, 10*time.Second - 5900*time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := newLimiter(t, nil)
			tk, d := l.Admit(at(0), key("k", lim), tt.est)
			if !d.Allowed || tk == nil {
				t.Fatalf("first request refused: %+v", d)
			}
			if tt.actual != -1 {
				tk.Settle(tt.actual)
				tk.Settle(1_000_000) // only the first counts
			}
			tk.Release()
			// A zero-token probe shows the bucket without changing it.
			_, d = l.Admit(at(0), key("k", lim), 0)
			if tt.wantRetry == 0 {
				if !d.Allowed || d.Remaining != tt.wantRem {
					t.Fatalf("got %+v, want allowed with %d remaining", d, tt.wantRem)
				}
				return
			}
			if d.Allowed || d.Limit != TPM || d.RetryAfter != tt.wantRetry {
				t.Fatalf("got %+v, want tpm refusal with retry %v", d, tt.wantRetry)
			}
		})
	}
}

// TestRefundsDoNotOutliveTheirCharge: requests left open until their charge has run
// off cannot save refunds up: settling them at zero gives back nothing, so a large
// request spent meanwhile still holds the bucket.
func TestRefundsDoNotOutliveTheirCharge(t *testing.T) {
	t.Parallel()
	var now atomic.Int64 // offset from t0
	l, err := New(Options{Now: func() time.Time { return t0.Add(time.Duration(now.Load())) }, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	lim := key("k", Limits{TPM: 6000}) // 10 ms a token, a burst of 600
	var open []*Ticket
	for i := range 10 { // one 6,000-token request a minute, none finished
		now.Store(int64(time.Duration(i) * time.Minute))
		tk, d := l.Admit(at(time.Duration(i)*time.Minute), lim, 6000)
		if !d.Allowed {
			t.Fatalf("minute %d: refused %+v", i, d)
		}
		open = append(open, tk)
	}
	now.Store(int64(10 * time.Minute))
	big, d := l.Admit(at(10*time.Minute), lim, 60000)
	if !d.Allowed {
		t.Fatalf("big request refused: %+v", d)
	}
	for _, tk := range open {
		tk.Settle(0) // their charges ran off long ago: nothing to give back
		tk.Release()
	}
	big.Settle(60000)
	big.Release()
	if _, d := l.Admit(at(10*time.Minute), lim, 1); d.Allowed || d.Limit != TPM || d.RetryAfter < 9*time.Minute {
		t.Fatalf("after 60,000 tokens at once the key admits again: %+v", d)
	}
	// A refund of a charge still ahead of now is given back in full (TestSettle), and
	// half of one that is half run off: 3,000 tokens = 30 s of a 60 s charge.
	now.Store(0)
	l2, err := New(Options{Now: func() time.Time { return t0.Add(time.Duration(now.Load())) }, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	tk, _ := l2.Admit(at(0), lim, 6000)
	now.Store(int64(30 * time.Second))
	tk.Settle(0)
	tk.Release()
	if _, d := l2.Admit(at(30*time.Second), lim, 0); !d.Allowed || d.Remaining != 600 {
		t.Fatalf("half a charge run off, refunded: %+v, want the full burst again", d)
	}
}

// TestLeave: a level left mid-request (the model asked for, once a fallback answers)
// gets its token estimate back and its slot freed at once, keeps its request counted,
// and is untouched by the ticket's later Settle and Release.
func TestLeave(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, nil)
	keyLim := Limits{TPM: 600, MaxConcurrent: 5}            // burst 60 tokens
	modelLim := Limits{RPM: 60, TPM: 600, MaxConcurrent: 1} // burst 6 requests, 60 tokens
	checks := func() []Check {
		return []Check{{Scope: ScopeKey, ID: "k", Limits: keyLim}, {Scope: ScopeModel, ID: "o/m", Limits: modelLim}}
	}
	model := func() []Check { return checks()[1:] }
	remaining := func(c []Check) int64 {
		t.Helper()
		_, d := l.Admit(at(0), c, 0) // tpm-only probes hold nothing
		if !d.Allowed {
			t.Fatalf("probe refused: %+v", d)
		}
		return d.Remaining
	}

	tk, d := l.Admit(at(0), checks(), 40)
	if !d.Allowed {
		t.Fatalf("refused: %+v", d)
	}
	if _, d := l.Admit(at(0), model(), 0); d.Allowed || d.Limit != Concurrency {
		t.Fatalf("model slot not held: %+v", d)
	}
	tk.Leave(1)
	tk.Leave(1) // leaving twice frees nothing more
	other, d := l.Admit(at(0), model(), 0)
	if !d.Allowed {
		t.Fatalf("model slot not freed by Leave: %+v", d)
	}
	if _, d := l.Admit(at(0), model(), 0); d.Allowed || d.Limit != Concurrency {
		t.Fatalf("a second Leave freed another slot: %+v", d)
	}
	other.Release()
	// The model's estimate is refunded.
	if got := remaining([]Check{{Scope: ScopeModel, ID: "o/m", Limits: Limits{TPM: 600}}}); got != 60 {
		t.Fatalf("model tokens remaining after Leave = %d, want 60 (estimate refunded)", got)
	}
	tk.Settle(30)
	tk.Release()
	tk.Leave(1) // after Settle: nothing
	if got := remaining([]Check{{Scope: ScopeKey, ID: "k", Limits: Limits{TPM: 600}}}); got != 30 {
		t.Fatalf("key tokens remaining = %d, want 30 (settled at the actual 30)", got)
	}
	if got := remaining([]Check{{Scope: ScopeModel, ID: "o/m", Limits: Limits{TPM: 600}}}); got != 60 {
		t.Fatalf("model tokens remaining after Settle = %d, want 60 (a left level is not charged)", got)
	}
	// Its requests stay counted: of the burst of 6, the ticket's, the other admitted
	// one and this probe's (refusals consume nothing).
	if got := remaining([]Check{{Scope: ScopeModel, ID: "o/m", Limits: Limits{RPM: 60}}}); got != 3 {
		t.Fatalf("model requests remaining = %d, want 3 (2 admitted + this probe)", got)
	}
	// Every slot is back, and none twice.
	if _, d := l.Admit(at(time.Minute), model(), 0); !d.Allowed {
		t.Fatalf("model slot not back: %+v", d)
	}
	if _, d := l.Admit(at(time.Minute), model(), 0); d.Allowed {
		t.Fatal("Release freed the left level's slot a second time")
	}
	for range 5 {
		if _, d := l.Admit(at(0), key("k", Limits{MaxConcurrent: 5}), 0); !d.Allowed {
			t.Fatalf("key slot leaked: %+v", d)
		}
	}
}

// TestConcurrency: slots come back exactly once, whatever the caller does.
func TestConcurrency(t *testing.T) {
	t.Parallel()
	lim := Limits{MaxConcurrent: 2}
	admit := func(l *Limiter) (*Ticket, Decision) { return l.Admit(at(0), key("k", lim), 0) }

	t.Run("refuse at the limit, admit after release", func(t *testing.T) {
		t.Parallel()
		l := newLimiter(t, nil)
		a, _ := admit(l)
		b, _ := admit(l)
		if _, d := admit(l); d.Allowed || d.Limit != Concurrency || d.RetryAfter != ConcurrencyRetryAfter {
			t.Fatalf("third: got %+v", d)
		}
		a.Release()
		a.Release() // a second release frees nothing more
		c, d := admit(l)
		if !d.Allowed {
			t.Fatalf("after release: got %+v", d)
		}
		if _, d := admit(l); d.Allowed {
			t.Fatal("double release freed a second slot")
		}
		b.Release()
		c.Release()
	})
	t.Run("released on panic via defer", func(t *testing.T) {
		t.Parallel()
		l := newLimiter(t, nil)
		for range 5 {
			func() {
				defer func() { _ = recover() }()
				tk, d := admit(l)
				if !d.Allowed {
					t.Errorf("slot leaked: %+v", d)
				}
				defer tk.Release()
				panic("handler failed")
			}()
		}
	})
	t.Run("nil ticket", func(t *testing.T) {
		t.Parallel()
		var tk *Ticket
		tk.Settle(10)
		tk.Release()
		l := newLimiter(t, nil)
		tk, d := l.Admit(at(0), key("k", Limits{RPM: 10}), 5)
		if !d.Allowed || tk != nil {
			t.Fatalf("rpm-only admission: ticket %v, decision %+v", tk, d)
		}
	})
	t.Run("limit changed while in flight", func(t *testing.T) {
		t.Parallel()
		l := newLimiter(t, nil)
		a, _ := admit(l)
		b, _ := admit(l)
		// The config drops the limit, then brings it back: the slots held meanwhile
		// still count and are still given back.
		if tk, d := l.Admit(at(0), key("k", Limits{}), 0); !d.Allowed || tk != nil {
			t.Fatalf("unlimited: got %+v", d)
		}
		if _, d := admit(l); d.Allowed {
			t.Fatal("slots held across the config change were lost")
		}
		a.Release()
		b.Release()
		for range 2 {
			if tk, d := admit(l); !d.Allowed {
				t.Fatalf("after releases: %+v", d)
			} else {
				defer tk.Release()
			}
		}
	})
	t.Run("storm", func(t *testing.T) {
		t.Parallel()
		l := newLimiter(t, nil)
		var held, peak atomic.Int64
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for range 2000 {
					tk, d := admit(l)
					if !d.Allowed {
						continue
					}
					n := held.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					held.Add(-1)
					tk.Release()
					tk.Release()
				}
			})
		}
		wg.Wait()
		if p := peak.Load(); p > 2 {
			t.Errorf("%d in flight at once, limit 2", p)
		}
		x, _ := admit(l)
		y, _ := admit(l)
		if x == nil || y == nil {
			t.Fatal("slots leaked after the storm")
		}
	})
}

// TestShares: every limit is divided by the live gateway count, read on each call.
func TestShares(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	n.Store(3)
	l := newLimiter(t, func() int { return int(n.Load()) })
	burst := func(id string, lim Limits) (got int) {
		for {
			tk, d := l.Admit(at(0), key(id, lim), 0)
			if !d.Allowed {
				return got
			}
			defer tk.Release()
			got++
		}
	}
	// rpm 600 over 3 gateways: share 200, burst 20. Over 1: share 600, burst 60.
	if got := burst("a", Limits{RPM: 600}); got != 20 {
		t.Errorf("3 gateways: burst %d, want 20", got)
	}
	// max_concurrent 7 over 3: ceil → 3 each.
	if got := burst("c", Limits{MaxConcurrent: 7}); got != 3 {
		t.Errorf("3 gateways: %d in flight, want 3", got)
	}
	// max_concurrent 2 over 3: at least 1 each.
	if got := burst("d", Limits{MaxConcurrent: 2}); got != 1 {
		t.Errorf("3 gateways: %d in flight, want 1", got)
	}
	n.Store(1)
	if got := burst("b", Limits{RPM: 600}); got != 60 {
		t.Errorf("1 gateway: burst %d, want 60", got)
	}
	// "a" kept its state: its TAT is 20 intervals of 300ms (share 200) = 6s ahead,
	// 100ms more than the 5.9s the bigger share tolerates.
	if _, d := l.Admit(at(0), key("a", Limits{RPM: 600}), 0); d.Allowed {
		t.Errorf("state was lost when the share changed: %+v", d)
	}
	if _, d := l.Admit(at(100*time.Millisecond), key("a", Limits{RPM: 600}), 0); !d.Allowed {
		t.Errorf("share did not grow: %+v", d)
	}
	n.Store(0) // a broken count never divides by zero
	if _, d := l.Admit(at(0), key("e", Limits{RPM: 1}), 0); !d.Allowed {
		t.Errorf("count 0: %+v", d)
	}
}

// TestThreeGatewaysConcurrency: with 3 gateways each holding its share, the region
// never has more than N·max(1, ceil(M/N)) in flight.
func TestThreeGatewaysConcurrency(t *testing.T) {
	t.Parallel()
	for _, m := range []int64{1, 2, 7, 9, 100} {
		total := 0
		for range 3 {
			l := newLimiter(t, func() int { return 3 })
			for {
				if _, d := l.Admit(at(0), key("k", Limits{MaxConcurrent: m}), 0); !d.Allowed {
					break
				}
				total++
			}
		}
		if bound := 3 * max(1, ceilDiv(m, 3)); int64(total) != bound || int64(total) > max(3, m+2) {
			t.Errorf("max_concurrent %d: %d in flight over 3 gateways, want %d", m, total, bound)
		}
	}
}

// TestEviction: idle state goes after IdleTTL, busy state stays, and a re-created
// state behaves like the evicted one.
func TestEviction(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, nil)
	lim := Limits{RPM: 60, TPM: 600, MaxConcurrent: 10}
	for i := range 5000 {
		tk, _ := l.Admit(at(0), key(string(rune('a'+i%26))+string(rune(i)), lim), 10)
		tk.Settle(5)
		tk.Release()
	}
	held, _ := l.Admit(at(0), key("busy", lim), 10) // never released: in flight
	if got := l.Len(); got != 5001 {
		t.Fatalf("Len = %d, want 5001", got)
	}
	if got := l.Evict(at(time.Minute)); got != 0 {
		t.Fatalf("evicted %d after 1 minute, want 0", got)
	}
	if got := l.Evict(at(3 * time.Minute)); got != 5000 {
		t.Fatalf("evicted %d after 3 minutes, want 5000", got)
	}
	if got := l.Len(); got != 1 {
		t.Fatalf("Len = %d, want the busy key only", got)
	}
	held.Release()
	if got := l.Evict(at(3 * time.Minute)); got != 1 {
		t.Fatalf("evicted %d after release, want 1", got)
	}
	tk, d := l.Admit(at(3*time.Minute), key("a"+string(rune(0)), lim), 0)
	if !d.Allowed || d.Remaining != 5 {
		t.Fatalf("re-created state: %+v, want a full bucket", d)
	}
	tk.Release()
	// A state in debt is not idle until the debt has run out.
	tk, _ = l.Admit(at(0), key("debtor", Limits{TPM: 60}), 0)
	tk.Settle(60 * 10) // ten minutes of tokens
	tk.Release()
	if got := l.Evict(at(11 * time.Minute)); got != 1 { // the re-created one only
		t.Fatalf("evicted %d at 11 min, want 1", got)
	}
	if got := l.Evict(at(13 * time.Minute)); got != 1 {
		t.Fatalf("evicted %d at 13 min, want the debtor", got)
	}
	if got := testutil.ToFloat64(l.metrics.evicted); got != 5003 {
		t.Errorf("evicted metric %v, want 5003", got)
	}
}

// TestEvictionShrinks: half a million keys come and go and the maps are rebuilt small.
func TestEvictionShrinks(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, nil)
	ids := make([]byte, 0, 8)
	for i := range 1 << 19 {
		ids = ids[:0]
		for v := i; ; v /= 256 {
			ids = append(ids, byte(v))
			if v < 256 {
				break
			}
		}
		l.Admit(at(0), key(string(ids), Limits{RPM: 1}), 0)
	}
	if got := l.Evict(at(5 * time.Minute)); got != 1<<19 {
		t.Fatalf("evicted %d", got)
	}
	for i := range l.shards {
		if sh := &l.shards[i]; sh.peak != 0 || len(sh.m) != 0 {
			t.Fatalf("shard %d: peak %d, len %d after eviction", i, sh.peak, len(sh.m))
		}
	}
}

// TestDecision checks the binding limit, Retry-After and the headers.
func TestDecision(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		prep   int // admissions before the one decided
		checks []Check
		est    int64
		want   Decision
		header http.Header
	}{
		{
			name:   "no limits",
			checks: []Check{{Scope: ScopeKey, ID: "k"}},
			want:   Decision{Allowed: true},
			header: http.Header{},
		},
		{
			name: "fresh: the smallest room left binds",
			checks: []Check{
				{Scope: ScopeKey, ID: "k", Limits: Limits{RPM: 600}},               // 59 of 60 left
				{Scope: ScopeTeam, ID: "t", Limits: Limits{RPM: 6000, TPM: 60000}}, // 599/600 requests, 5800/6000 tokens
			},
			est:  200,
			want: Decision{Allowed: true, Scope: ScopeTeam, Limit: TPM, Quota: 60000, Remaining: 5800, Reset: 200 * time.Millisecond},
			header: http.Header{
				"Ratelimit-Limit": {"60000"}, "Ratelimit-Remaining": {"5800"}, "Ratelimit-Reset": {"1"},
			},
		},
		{
			name:   "last of the burst",
			prep:   5,
			checks: []Check{{Scope: ScopeKey, ID: "k", Limits: Limits{RPM: 60}}},
			want:   Decision{Allowed: true, Scope: ScopeKey, Limit: RPM, Quota: 60, Remaining: 0, Reset: 6 * time.Second},
			header: http.Header{
				"Ratelimit-Limit": {"60"}, "Ratelimit-Remaining": {"0"}, "Ratelimit-Reset": {"6"},
			},
		},
		{
			name: "refused: the longest wait binds",
			prep: 2,
			checks: []Check{
				{Scope: ScopeModel, ID: "o/m", Limits: Limits{RPM: 20}},  // T 3s, burst 2: TAT 6s, waits 3s
				{Scope: ScopeKey, ID: "k", Limits: Limits{RPM: 12}},      // T 5s, burst 2: TAT 10s, waits 5s
				{Scope: ScopeTeam, ID: "t", Limits: Limits{RPM: 120000}}, // fine
			},
			want: Decision{Scope: ScopeKey, Limit: RPM, RetryAfter: 5 * time.Second, Quota: 12, Reset: 10 * time.Second},
			header: http.Header{
				"Ratelimit-Limit": {"12"}, "Ratelimit-Remaining": {"0"}, "Ratelimit-Reset": {"10"}, "Retry-After": {"5"},
			},
		},
		{
			name:   "reset rounds up",
			prep:   6,
			checks: []Check{{Scope: ScopeKey, ID: "k", Limits: Limits{RPM: 120}}}, // 500ms, burst 12
			want:   Decision{Allowed: true, Scope: ScopeKey, Limit: RPM, Quota: 120, Remaining: 5, Reset: 3500 * time.Millisecond},
			header: http.Header{
				"Ratelimit-Limit": {"120"}, "Ratelimit-Remaining": {"5"}, "Ratelimit-Reset": {"4"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := newLimiter(t, nil)
			for range tt.prep {
				l.Admit(at(0), tt.checks, tt.est)
			}
			_, d := l.Admit(at(0), tt.checks, tt.est)
			if diff := cmp.Diff(tt.want, d); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
			h := http.Header{}
			d.WriteHeaders(h)
			if diff := cmp.Diff(tt.header, h); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRetryAfterHeader covers the rounding of a refusal's Retry-After.
func TestRetryAfterHeader(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		retry time.Duration
		want  string
	}{{time.Millisecond, "1"}, {time.Second, "1"}, {1001 * time.Millisecond, "2"}, {90 * time.Second, "90"}} {
		h := http.Header{}
		Decision{Scope: ScopeKey, Limit: RPM, RetryAfter: c.retry}.WriteHeaders(h)
		if got := h.Get("Retry-After"); got != c.want {
			t.Errorf("RetryAfter %v: header %q, want %q", c.retry, got, c.want)
		}
	}
}

func TestRefusedMetric(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, nil)
	for range 3 {
		l.Admit(at(0), []Check{{Scope: ScopeTeam, ID: "t", Limits: Limits{RPM: 1}}}, 0)
	}
	if got := testutil.ToFloat64(l.metrics.refusedVec.WithLabelValues("team", "rpm")); got != 2 {
		t.Errorf("refused{team,rpm} = %v, want 2", got)
	}
}

// TestManyLevels: more checks than the inline buffers hold still work, and shards
// shared between levels are locked once.
func TestManyLevels(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, nil)
	var checks []Check
	for i := range 40 {
		checks = append(checks, Check{Scope: Scope("s" + string(rune('a'+i%3))), ID: string(rune('A' + i)), Limits: Limits{RPM: 60, MaxConcurrent: 1}})
	}
	tk, d := l.Admit(at(0), checks, 0)
	if !d.Allowed {
		t.Fatalf("refused: %+v", d)
	}
	if _, d := l.Admit(at(0), checks, 0); d.Allowed || d.Limit != Concurrency {
		t.Fatalf("second: %+v", d)
	}
	tk.Release()
	if _, d := l.Admit(at(0), checks, 0); !d.Allowed {
		t.Fatalf("after release: %+v", d)
	}
}
