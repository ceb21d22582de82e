// Package gcpace paces the gateway's garbage collector by its live heap. The
// gateway's live heap is small (a few MiB of config and buffers) while it allocates
// quickly (every request parses and renders JSON), so at the runtime's default
// GOGC=100 it would collect every few MiB of allocation — dozens of times a second
// under load. gcpace lets the heap grow by at least a floor (the gateway's default: 20 MiB) before
// the next collection, and falls back to GOGC=100 once the live heap is large
// (thousands of open streams), where the usual proportional pacing is right.
//
// After every collection it reads the live heap and sets GOGC to
// clamp(floor/live·100, 100, 400). It does not replace GOMEMLIMIT, which still
// applies when set.
package gcpace

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

const (
	minPercent = 100
	maxPercent = 400
)

// Pacer adjusts GOGC after each garbage collection.
type Pacer struct {
	floor   uint64
	stopped atomic.Bool

	mu      sync.Mutex
	percent int
	sample  []metrics.Sample
	// restore is the GOGC in force before Start.
	restore int
}

// Start begins pacing with the given floor in bytes (at least 1 MiB). Stop ends it
// and restores the previous setting.
func Start(floor uint64) *Pacer {
	floor = max(floor, 1<<20)
	p := &Pacer{floor: floor, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	p.restore = debug.SetGCPercent(minPercent)
	p.percent = minPercent
	p.adjust()
	p.arm()
	return p
}

// Percent is the GOGC the pacer set last.
func (p *Pacer) Percent() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.percent
}

// Stop ends pacing and restores GOGC.
func (p *Pacer) Stop() {
	if p.stopped.Swap(true) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	debug.SetGCPercent(p.restore)
}

// sentinel is garbage from birth: its cleanup runs after the next collection.
type sentinel struct{ _ [16]byte }

func (p *Pacer) arm() {
	s := &sentinel{}
	runtime.AddCleanup(s, func(p *Pacer) {
		if p.stopped.Load() {
			return
		}
		p.adjust()
		p.arm()
	}, p)
}

// percentFor is the GOGC that lets a heap of live bytes grow by at least floor.
func percentFor(live, floor uint64) int {
	if live == 0 {
		return maxPercent
	}
	pct := floor * 100 / live
	return int(min(max(pct, minPercent), maxPercent))
}

func (p *Pacer) adjust() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped.Load() {
		return
	}
	metrics.Read(p.sample)
	if p.sample[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	pct := percentFor(p.sample[0].Value.Uint64(), p.floor)
	// Setting GOGC stops the world briefly: only when it moves by a tenth.
	if d := pct - p.percent; d*10 > p.percent || -d*10 > p.percent {
		debug.SetGCPercent(pct)
		p.percent = pct
	}
}
