package gcpace

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercentFor(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		live, floor uint64
		want        int
	}{
		{4 << 20, 32 << 20, 400},   // a small heap grows by the floor, up to 5x
		{12 << 20, 32 << 20, 266},  // floor/live
		{64 << 20, 32 << 20, 100},  // large heaps pace proportionally
		{512 << 20, 32 << 20, 100}, // thousands of streams
		{0, 32 << 20, 400},
	} {
		if got := percentFor(c.live, c.floor); got != c.want {
			t.Errorf("percentFor(%d MiB, %d MiB) = %d, want %d", c.live>>20, c.floor>>20, got, c.want)
		}
	}
}

// TestPacerFollowsTheLiveHeap runs the pacer in this process: with a small live heap
// GOGC goes up; with a live heap well over the floor it comes back to 100; Stop
// restores the setting from before.
func TestPacerFollowsTheLiveHeap(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	p := Start(64 << 20)
	eventually := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: GOGC stayed %d", what, p.Percent())
			}
			runtime.GC() // each collection runs the pacer's cleanup
			time.Sleep(10 * time.Millisecond)
		}
	}
	eventually("small live heap", func() bool { return p.Percent() > 200 })

	held := make([][]byte, 0, 128)
	for range 128 { // 128 MiB live, twice the floor
		held = append(held, make([]byte, 1<<20))
	}
	eventually("large live heap", func() bool { return p.Percent() == 100 })
	runtime.KeepAlive(held)

	p.Stop()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC after Stop = %d, want the 100 from before Start", got)
	}
}
