package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// result is one measurement, printed as one JSON line.
type result struct {
	Label       string  `json:"label"`
	Mode        string  `json:"mode"`
	URL         string  `json:"url"`
	Stream      bool    `json:"stream"`
	Concurrency int     `json:"concurrency,omitempty"`
	Rate        float64 `json:"rate,omitempty"`
	Seconds     float64 `json:"seconds"`
	OK          int64   `json:"ok"`
	Errors      int64   `json:"errors"`
	// ErrorKinds counts errors by kind ("status 502", "timeout", ...).
	ErrorKinds map[string]int64 `json:"error_kinds,omitempty"`
	RPS        float64          `json:"rps"`
	// Latency runs from the scheduled send time (open, ttfb) or the send (closed) to
	// the end of the answer (ttfb: the first SSE data line).
	Latency *dist `json:"latency_us,omitempty"`
	// Service runs from the actual send; SendLag is how late the sends were (the load
	// generator's own pacing error, part of Latency).
	Service *dist                  `json:"service_us,omitempty"`
	SendLag *dist                  `json:"send_lag_us,omitempty"`
	Procs   map[string]*procResult `json:"procs,omitempty"`
	Machine *machineCPU            `json:"machine,omitempty"`
	Streams *streamResult          `json:"streams,omitempty"`
}

// dist summarizes durations, in microseconds.
type dist struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

// summarize sorts ds and returns its distribution; nil when empty. Percentiles are
// nearest-rank.
func summarize(ds []time.Duration) *dist {
	if len(ds) == 0 {
		return nil
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()/100) / 10 }
	rank := func(p float64) float64 {
		i := int(p*float64(len(ds))+0.999999) - 1
		return us(ds[max(0, min(i, len(ds)-1))])
	}
	return &dist{
		N: len(ds), Mean: us(sum / time.Duration(len(ds))),
		P50: rank(0.50), P90: rank(0.90), P99: rank(0.99), P999: rank(0.999), Max: us(ds[len(ds)-1]),
	}
}

// recorder collects the outcomes of requests. Each closed-loop worker has its own;
// the open loop shares one behind its mutex.
type recorder struct {
	mu      sync.Mutex
	latency []time.Duration
	service []time.Duration
	lag     []time.Duration
	errs    map[string]int64
}

func newRecorder() *recorder { return &recorder{errs: map[string]int64{}} }

func (r *recorder) ok(latency, service, lag time.Duration) {
	r.mu.Lock()
	r.latency = append(r.latency, latency)
	r.service = append(r.service, service)
	r.lag = append(r.lag, lag)
	r.mu.Unlock()
}

func (r *recorder) fail(err error) {
	r.mu.Lock()
	r.errs[errorKind(err)]++
	r.mu.Unlock()
}

func (r *recorder) merge(o *recorder) {
	r.latency = append(r.latency, o.latency...)
	r.service = append(r.service, o.service...)
	r.lag = append(r.lag, o.lag...)
	for k, v := range o.errs {
		r.errs[k] += v
	}
}

func (r *recorder) errors() (int64, map[string]int64) {
	var n int64
	for _, v := range r.errs {
		n += v
	}
	if n == 0 {
		return 0, nil
	}
	return n, r.errs
}

// statusError is an answer other than 200.
type statusError struct{ code int }

func (e statusError) Error() string { return fmt.Sprintf("status %d", e.code) }

var errOverload = errors.New("not sent: too many requests in flight")

func errorKind(err error) string {
	var se statusError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return se.Error()
	case errors.Is(err, errOverload):
		return "overload"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "unexpected eof"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too many open files"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no free local port"
	}
	return "other: " + err.Error()
}

// generator sends the one request of a run over one tuned transport.
type generator struct {
	cfg     config
	body    []byte
	client  *http.Client
	readers sync.Pool // *bufio.Reader
}

func newGenerator(cfg config) (*generator, error) {
	type message struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	body, err := json.Marshal(struct {
		Model    string    `json:"model"`
		Messages []message `json:"messages"`
		Stream   bool      `json:"stream,omitempty"`
	}{cfg.model, []message{{"user", cfg.prompt}}, cfg.stream})
	if err != nil {
		return nil, err
	}
	// Every worker, in-flight open-loop request or stream keeps its connection alive.
	conns := max(cfg.concurrency, 1024)
	if cfg.mode == "open" || cfg.mode == "ttfb" {
		conns = max(conns, cfg.maxInFlight)
	}
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		ReadBufferSize:      8 << 10,
		WriteBufferSize:     4 << 10,
	}
	g := &generator{cfg: cfg, body: body, client: &http.Client{Transport: transport}}
	g.readers.New = func() any { return bufio.NewReaderSize(nil, 4<<10) }
	return g, nil
}

func (g *generator) close() { g.client.CloseIdleConnections() }

func (g *generator) newRequest(ctx context.Context) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.cfg.url, bytes.NewReader(g.body))
	if err != nil {
		return nil, err
	}
	req.Header["Content-Type"] = []string{"application/json"}
	if g.cfg.key != "" {
		req.Header["Authorization"] = []string{"Bearer " + g.cfg.key}
	}
	if g.cfg.stream {
		req.Header["Accept"] = []string{"text/event-stream"}
	}
	return req, nil
}

var dataPrefix = []byte("data:")

// exchange sends one request and reads the whole answer. first is when the first SSE
// data line arrived (streams) or when the body was read (otherwise).
func (g *generator) exchange(ctx context.Context) (first, end time.Time, err error) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.timeout)
	defer cancel()
	req, err := g.newRequest(ctx)
	if err != nil {
		return first, end, err
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return first, end, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return first, end, statusError{resp.StatusCode}
	}
	if !g.cfg.stream {
		n, err := io.Copy(io.Discard, resp.Body)
		end = time.Now()
		if err == nil && n == 0 {
			err = errors.New("empty body")
		}
		return end, end, err
	}
	br := g.readers.Get().(*bufio.Reader)
	br.Reset(resp.Body)
	defer func() { br.Reset(nil); g.readers.Put(br) }()
	for {
		line, rerr := br.ReadSlice('\n')
		if first.IsZero() && bytes.HasPrefix(line, dataPrefix) {
			first = time.Now()
		}
		if rerr == bufio.ErrBufferFull {
			continue
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return first, end, rerr
		}
	}
	end = time.Now()
	if first.IsZero() {
		return first, end, errors.New("stream without data")
	}
	return first, end, nil
}

// mark is the end of the measured interval: the first data line in ttfb mode.
func (g *generator) mark(first, end time.Time) time.Time {
	if g.cfg.mode == "ttfb" {
		return first
	}
	return end
}

func (g *generator) newResult() *result {
	return &result{Label: g.cfg.label, Mode: g.cfg.mode, URL: g.cfg.url, Stream: g.cfg.stream}
}

// runClosed: workers send back to back.
func (g *generator) runClosed(ctx context.Context) *result {
	g.closed(ctx, g.cfg.warmup, newRecorder())
	s := startSampler(g.cfg.watch, g.cfg.sample)
	rec := newRecorder()
	start := time.Now()
	g.closed(ctx, g.cfg.duration, rec)
	elapsed := time.Since(start)
	res := g.newResult()
	res.Concurrency = g.cfg.concurrency
	g.fill(res, rec, elapsed, s)
	res.Service, res.SendLag = nil, nil // the same as Latency, and no schedule
	return res
}

func (g *generator) closed(ctx context.Context, d time.Duration, into *recorder) {
	if d <= 0 {
		return
	}
	deadline := time.Now().Add(d)
	recs := make([]*recorder, g.cfg.concurrency)
	var wg sync.WaitGroup
	for i := range recs {
		rec := newRecorder()
		recs[i] = rec
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				sent := time.Now()
				first, end, err := g.exchange(ctx)
				if err != nil {
					rec.fail(err)
					continue
				}
				rec.latency = append(rec.latency, g.mark(first, end).Sub(sent))
			}
		})
	}
	wg.Wait()
	for _, r := range recs {
		into.merge(r)
	}
}

// runOpen: requests at a constant rate, measured from their scheduled time.
func (g *generator) runOpen(ctx context.Context) *result {
	g.open(ctx, g.cfg.warmup, newRecorder())
	s := startSampler(g.cfg.watch, g.cfg.sample)
	rec := newRecorder()
	start := time.Now()
	g.open(ctx, g.cfg.duration, rec)
	elapsed := time.Since(start)
	res := g.newResult()
	res.Rate = g.cfg.rate
	g.fill(res, rec, elapsed, s)
	return res
}

func (g *generator) open(ctx context.Context, d time.Duration, rec *recorder) {
	n := int(d.Seconds() * g.cfg.rate)
	if n <= 0 {
		return
	}
	interval := float64(time.Second) / g.cfg.rate
	var wg sync.WaitGroup
	var inFlight atomic.Int64
	done := make(chan struct{})
	// The pacer sleeps with nanosleep on a thread of its own: the runtime's timers wake
	// up to a millisecond late, which would be charged to the server as latency.
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		setTimerSlack(time.Microsecond)
		start := time.Now().Add(10 * time.Millisecond)
		for i := range n {
			at := start.Add(time.Duration(float64(i) * interval))
			if wait := time.Until(at); wait > 0 {
				nanosleep(wait)
			}
			if ctx.Err() != nil {
				return
			}
			if inFlight.Load() >= int64(g.cfg.maxInFlight) {
				rec.fail(errOverload)
				continue
			}
			inFlight.Add(1)
			wg.Go(func() {
				defer inFlight.Add(-1)
				sent := time.Now()
				first, end, err := g.exchange(ctx)
				if err != nil {
					rec.fail(err)
					return
				}
				m := g.mark(first, end)
				rec.ok(m.Sub(at), m.Sub(sent), sent.Sub(at))
			})
		}
	}()
	<-done
	wg.Wait()
}

func (g *generator) fill(res *result, rec *recorder, elapsed time.Duration, s *sampler) {
	procs, machine := s.stop()
	res.Machine = machine
	res.Seconds = round(elapsed.Seconds(), 3)
	res.OK = int64(len(rec.latency))
	res.Errors, res.ErrorKinds = rec.errors()
	res.RPS = round(float64(res.OK)/elapsed.Seconds(), 1)
	res.Latency, res.Service, res.SendLag = summarize(rec.latency), summarize(rec.service), summarize(rec.lag)
	for _, p := range procs {
		if res.OK > 0 {
			p.CPUPerRequestUS = round(p.CPUSeconds*1e6/float64(res.OK), 1)
		}
	}
	res.Procs = procs
}

// streamResult is what the streams mode saw.
type streamResult struct {
	Requested   int   `json:"requested"`
	Established int64 `json:"established"`
	// Failed counts streams that could not be opened or broke before the end.
	Failed int64 `json:"failed"`
	// EndedEarly counts streams that ended normally before they were cancelled.
	EndedEarly int64 `json:"ended_early"`
	// Active is how many streams were open when the hold ended.
	Active      int64   `json:"active"`
	OpenSeconds float64 `json:"open_seconds"`
	HoldSeconds float64 `json:"hold_seconds"`
	Events      int64   `json:"events"`
	// Goroutines is go_goroutines at the end of the hold; GoroutinesMax the highest
	// sample during it (0 without -metrics-url).
	Goroutines    int64 `json:"goroutines"`
	GoroutinesMax int64 `json:"goroutines_max"`
	// TTFB is each stream's time to its first data line, from its send.
	TTFB *dist `json:"ttfb_us,omitempty"`
}

// runStreams opens the streams, holds them, then cancels them all.
func (g *generator) runStreams(ctx context.Context) *result {
	s := startSampler(g.cfg.watch, g.cfg.sample)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := g.cfg.concurrency
	var established, failed, ended, events atomic.Int64
	rec := newRecorder()
	var settled sync.WaitGroup // each stream: established, failed or ended
	settled.Add(c)
	var streams sync.WaitGroup
	launched := make(chan struct{})
	start := time.Now()
	interval := time.Duration(float64(time.Second) / g.cfg.openRate)
	go func() {
		defer close(launched)
		for i := range c {
			if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
				time.Sleep(wait)
			}
			if ctx.Err() != nil {
				for range c - i {
					settled.Done()
				}
				return
			}
			streams.Go(func() {
				settle := sync.OnceFunc(settled.Done)
				defer settle()
				sent := time.Now()
				err := g.stream(ctx, func() {
					established.Add(1)
					rec.ok(time.Since(sent), 0, 0)
					settle()
				}, &events)
				switch {
				case ctx.Err() != nil: // cancelled after the hold: the expected end
				case err != nil:
					failed.Add(1)
					rec.fail(err)
				default:
					ended.Add(1)
				}
			})
		}
	}()
	opened := make(chan struct{})
	go func() { settled.Wait(); close(opened) }()
	select {
	case <-opened:
	case <-time.After(g.cfg.rampTimeout):
	case <-ctx.Done():
	}
	sr := &streamResult{Requested: c, OpenSeconds: round(time.Since(start).Seconds(), 3)}
	holdStart := time.Now()
	tick := time.NewTicker(500 * time.Millisecond)
	for time.Since(holdStart) < g.cfg.hold && ctx.Err() == nil {
		if g.cfg.metricsURL != "" {
			if n, err := goroutines(ctx, g.cfg.metricsURL); err == nil {
				sr.Goroutines, sr.GoroutinesMax = n, max(sr.GoroutinesMax, n)
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	tick.Stop()
	sr.HoldSeconds = round(time.Since(holdStart).Seconds(), 3)
	procs, machine := s.stop()
	sr.Established, sr.Failed, sr.EndedEarly = established.Load(), failed.Load(), ended.Load()
	sr.Active = sr.Established - sr.EndedEarly - sr.Failed
	cancel()
	finished := make(chan struct{})
	go func() { <-launched; streams.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(15 * time.Second):
	}
	sr.Events = events.Load()
	rec.mu.Lock()
	sr.TTFB = summarize(rec.latency)
	res := g.newResult()
	res.Concurrency = c
	res.Seconds = round(time.Since(start).Seconds(), 3)
	res.OK = sr.Established
	res.Errors, res.ErrorKinds = rec.errors()
	rec.mu.Unlock()
	res.Procs, res.Machine = procs, machine
	res.Streams = sr
	return res
}

// stream sends one streaming request and reads it to its end, counting data lines;
// onFirst runs at the first.
func (g *generator) stream(ctx context.Context, onFirst func(), events *atomic.Int64) error {
	req, err := g.newRequest(ctx)
	if err != nil {
		return err
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return statusError{resp.StatusCode}
	}
	br := g.readers.Get().(*bufio.Reader)
	br.Reset(resp.Body)
	defer func() { br.Reset(nil); g.readers.Put(br) }()
	first := true
	for {
		line, err := br.ReadSlice('\n')
		if bytes.HasPrefix(line, dataPrefix) {
			events.Add(1)
			if first {
				first = false
				onFirst()
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
		case err == io.EOF && !first:
			return nil
		case err == io.EOF:
			return errors.New("stream without data")
		case err != nil:
			return err
		}
	}
}

// goroutines reads go_goroutines from a Prometheus text endpoint.
func goroutines(ctx context.Context, url string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	// Its own connection: the streams' transport may be busy dialling.
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return parseGauge(resp.Body, "go_goroutines")
}

// parseGauge returns the value of an unlabelled metric in the Prometheus text format.
func parseGauge(r io.Reader, name string) (int64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+" ")
		if !ok {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(strings.TrimSpace(rest), &v); err != nil {
			return 0, fmt.Errorf("parse %s: %w", name, err)
		}
		return int64(v), nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s in the metrics", name)
}

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

// nanosleep sleeps on the calling thread, to the timer slack's precision.
func nanosleep(d time.Duration) {
	ts := syscall.NsecToTimespec(d.Nanoseconds())
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}

// setTimerSlack sets the calling thread's timer slack (default 50µs).
func setTimerSlack(d time.Duration) {
	const prSetTimerSlack = 29
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, uintptr(d.Nanoseconds()), 0)
}
