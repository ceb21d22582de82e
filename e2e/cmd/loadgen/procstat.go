package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// procResult is what sampling a process group (one or more pids, summed) found over a
// measurement.
type procResult struct {
	PIDs []int `json:"pids"`
	// RSS in KiB (VmRSS of /proc/<pid>/status): at the start, the highest sample and
	// at the end.
	RSSStartKiB int64 `json:"rss_start_kib"`
	RSSPeakKiB  int64 `json:"rss_peak_kib"`
	RSSEndKiB   int64 `json:"rss_end_kib"`
	// CPUSeconds is user + system time spent during the measurement.
	CPUSeconds      float64 `json:"cpu_seconds"`
	CPUPerRequestUS float64 `json:"cpu_per_request_us,omitempty"`
}

// machineCPU is how busy the whole machine was during a measurement, in cores: Busy
// counts every process, Other what the watched ones (the load generator included) do
// not account for — other work on a shared machine, the kernel's own, Postgres.
type machineCPU struct {
	Cores int     `json:"cores"`
	Busy  float64 `json:"busy_cores"`
	Other float64 `json:"other_busy_cores"`
}

// sampler samples the RSS of watched processes every interval until stopped, and
// their CPU time (and the machine's) at the start and at the end. The load generator
// is always watched.
type sampler struct {
	specs []watchSpec
	stopc chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	out   map[string]*procResult
	cpu0  map[string]float64
	start time.Time
	busy0 float64
}

func startSampler(specs []watchSpec, interval time.Duration) *sampler {
	specs = append([]watchSpec{{name: "loadgen", pids: []int{os.Getpid()}}}, specs...)
	s := &sampler{specs: specs, stopc: make(chan struct{}), done: make(chan struct{}),
		out: map[string]*procResult{}, cpu0: map[string]float64{}, start: time.Now(), busy0: machineBusySeconds()}
	for _, sp := range specs {
		rss := rssKiB(sp.pids)
		s.out[sp.name] = &procResult{PIDs: sp.pids, RSSStartKiB: rss, RSSPeakKiB: rss}
		s.cpu0[sp.name] = cpuSeconds(sp.pids)
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stopc:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *sampler) sample() {
	for _, sp := range s.specs {
		rss := rssKiB(sp.pids)
		s.mu.Lock()
		p := s.out[sp.name]
		p.RSSPeakKiB, p.RSSEndKiB = max(p.RSSPeakKiB, rss), rss
		s.mu.Unlock()
	}
}

// stop takes a last sample and returns the results.
func (s *sampler) stop() (map[string]*procResult, *machineCPU) {
	close(s.stopc)
	<-s.done
	s.sample()
	elapsed := time.Since(s.start).Seconds()
	busy := machineBusySeconds() - s.busy0
	watched := 0.0
	for _, sp := range s.specs {
		p := s.out[sp.name]
		p.CPUSeconds = round(cpuSeconds(sp.pids)-s.cpu0[sp.name], 3)
		watched += p.CPUSeconds
	}
	m := &machineCPU{Cores: runtime.NumCPU(), Busy: round(busy/elapsed, 2), Other: round(max(0, busy-watched)/elapsed, 2)}
	return s.out, m
}

// machineBusySeconds is the CPU time all cores spent busy since boot (/proc/stat:
// everything but idle and iowait).
func machineBusySeconds() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var ticks int64
	for i := 1; i < len(f) && i <= 8; i++ {
		if i == 4 || i == 5 {
			continue
		}
		v, _ := strconv.ParseInt(string(f[i]), 10, 64)
		ticks += v
	}
	return float64(ticks) / clockTicks
}

// rssKiB sums VmRSS over pids; a process that is gone counts 0.
func rssKiB(pids []int) int64 {
	var sum int64
	for _, pid := range pids {
		f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				// "   12345 kB"
				if v, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64); err == nil {
					sum += v
				}
				break
			}
		}
		f.Close()
	}
	return sum
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every Linux
// architecture Go runs on.
const clockTicks = 100

// cpuSeconds sums user and system time over pids (all their threads).
func cpuSeconds(pids []int) float64 {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command (in parentheses): state is field 3, utime 14,
		// stime 15.
		f := bytes.Fields(b[bytes.LastIndexByte(b, ')')+1:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(string(f[11]), 10, 64)
		st, _ := strconv.ParseInt(string(f[12]), 10, 64)
		ticks += u + st
	}
	return float64(ticks) / clockTicks
}
