package httpserver

import (
	"sync"
	"time"
)

// watchdog starts the background read of requests whose handler has run for
// slowRequest. One goroutine ticks every slowRequest while handlers run (and for a
// second after, then leaves) instead of a timer per request: arming a timer that
// is due before the network poller's next wake-up makes the runtime interrupt the
// poller on another thread, a cross-thread wake-up for every request.
type watchdog struct {
	mu      sync.Mutex
	active  map[*conn]time.Time // handlers running, by start
	running bool
}

// idleTicks is how many empty ticks the watchdog waits before it leaves.
const idleTicks = int(time.Second / slowRequest)

// start records that c's handler starts now.
func (s *Server) watchStart(c *conn, now time.Time) {
	wd := &s.wd
	wd.mu.Lock()
	if wd.active == nil {
		wd.active = make(map[*conn]time.Time)
	}
	wd.active[c] = now
	spawn := !wd.running
	wd.running = true
	wd.mu.Unlock()
	if spawn {
		go s.watch()
	}
}

// watchEnd records that c's handler returned. When it returns, the watchdog has
// either started c's background read or never will.
func (s *Server) watchEnd(c *conn) {
	s.wd.mu.Lock()
	delete(s.wd.active, c)
	s.wd.mu.Unlock()
}

func (s *Server) watch() {
	t := time.NewTicker(slowRequest)
	defer t.Stop()
	wd := &s.wd
	empty := 0
	for now := range t.C {
		wd.mu.Lock()
		if len(wd.active) == 0 {
			if empty++; empty >= idleTicks {
				wd.running = false
				wd.mu.Unlock()
				return
			}
			wd.mu.Unlock()
			continue
		}
		empty = 0
		for c, start := range wd.active {
			if now.Sub(start) >= slowRequest {
				delete(wd.active, c) // decided once
				c.onSlowRequest()
			}
		}
		wd.mu.Unlock()
	}
}
