// Command loadgen drives an OpenAI-compatible POST /v1/chat/completions endpoint — the
// gateway, nginx in front of the demo upstream, or the demo upstream itself — for
// scripts/bench.sh, and prints its results as one JSON object. It starts nothing it
// measures; it only reads /proc of the processes it is told to watch (-watch) and, for
// streams, the gateway's /metrics. Standard library only.
//
// Modes:
//
//	closed   -c workers send back to back for -d: throughput and latency per request
//	open     a constant arrival rate -rate for -d, paced on a locked OS thread with
//	         nanosleep; latency runs from each request's scheduled send time, so a
//	         stalled server is charged for the requests it delayed (no coordinated
//	         omission)
//	ttfb     open loop over streaming requests, up to the first SSE data line
//	streams  open -c streams (at -open-rate a second), hold them for -hold while
//	         sampling the watched processes and go_goroutines, then cancel them
//	report   read result lines (JSON, one a line) from -in and print markdown tables
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	mode        string
	url         string
	key         string
	model       string
	prompt      string
	stream      bool
	concurrency int
	rate        float64
	duration    time.Duration
	warmup      time.Duration
	hold        time.Duration
	openRate    float64
	rampTimeout time.Duration
	timeout     time.Duration
	maxInFlight int
	label       string
	watch       []watchSpec
	metricsURL  string
	sample      time.Duration
	in          string
}

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func parseConfig(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.mode, "mode", "closed", "closed, open, ttfb, streams or report")
	fs.StringVar(&cfg.url, "url", "", "chat completions URL, e.g. http://127.0.0.1:8090/v1/chat/completions")
	fs.StringVar(&cfg.key, "key", "", "sent as 'Authorization: Bearer <key>' when set")
	fs.StringVar(&cfg.model, "model", "demo-chat", "model of the requests")
	fs.StringVar(&cfg.prompt, "prompt", "Say hello in one short sentence.", "the user message")
	fs.BoolVar(&cfg.stream, "stream", false, "closed and open: ask for a stream (ttfb and streams always do)")
	fs.IntVar(&cfg.concurrency, "c", 32, "closed: workers; streams: concurrent streams")
	fs.Float64Var(&cfg.rate, "rate", 1000, "open and ttfb: requests a second")
	fs.DurationVar(&cfg.duration, "d", 10*time.Second, "closed, open, ttfb: measured duration")
	fs.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "closed, open, ttfb: unmeasured load first")
	fs.DurationVar(&cfg.hold, "hold", 10*time.Second, "streams: how long to hold them once open")
	fs.Float64Var(&cfg.openRate, "open-rate", 1000, "streams: how many to open a second")
	fs.DurationVar(&cfg.rampTimeout, "ramp-timeout", 60*time.Second, "streams: bound on opening them all")
	fs.DurationVar(&cfg.timeout, "timeout", 30*time.Second, "bound on one request (streams: none)")
	fs.IntVar(&cfg.maxInFlight, "max-in-flight", 10000, "open, ttfb: requests in flight beyond which a scheduled one is counted as an error")
	fs.StringVar(&cfg.label, "label", "", "label of the result, e.g. open/gateway")
	watch := fs.String("watch", "", "processes to sample as name=pid[,name=pid...]; one name may list several pids (summed)")
	fs.StringVar(&cfg.metricsURL, "metrics-url", "", "streams: Prometheus endpoint to read go_goroutines from")
	fs.DurationVar(&cfg.sample, "sample", 100*time.Millisecond, "how often to sample watched processes")
	fs.StringVar(&cfg.in, "in", "", "report: file of result lines")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if cfg.watch, err = parseWatch(*watch); err != nil {
		return cfg, fmt.Errorf("-watch: %w", err)
	}
	switch cfg.mode {
	case "report":
		if cfg.in == "" {
			return cfg, errors.New("report: -in is required")
		}
		return cfg, nil
	case "closed", "open", "ttfb", "streams":
	default:
		return cfg, fmt.Errorf("-mode: unknown mode %q", cfg.mode)
	}
	if cfg.url == "" {
		return cfg, errors.New("-url is required")
	}
	if cfg.label == "" {
		cfg.label = cfg.mode
	}
	switch {
	case (cfg.mode == "closed" || cfg.mode == "streams") && cfg.concurrency <= 0:
		return cfg, errors.New("-c must be positive")
	case (cfg.mode == "open" || cfg.mode == "ttfb") && cfg.rate <= 0:
		return cfg, errors.New("-rate must be positive")
	case cfg.mode == "streams" && cfg.openRate <= 0:
		return cfg, errors.New("-open-rate must be positive")
	case cfg.duration <= 0 || cfg.sample <= 0:
		return cfg, errors.New("-d and -sample must be positive")
	}
	if cfg.mode == "ttfb" || cfg.mode == "streams" {
		cfg.stream = true
	}
	return cfg, nil
}

// watchSpec names a process group to sample.
type watchSpec struct {
	name string
	pids []int
}

func parseWatch(s string) ([]watchSpec, error) {
	var out []watchSpec
	index := map[string]int{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, p, ok := strings.Cut(item, "=")
		pid, err := strconv.Atoi(p)
		if !ok || name == "" || err != nil || pid <= 0 {
			return nil, fmt.Errorf("want name=pid, got %q", item)
		}
		if i, ok := index[name]; ok {
			out[i].pids = append(out[i].pids, pid)
			continue
		}
		index[name] = len(out)
		out = append(out, watchSpec{name: name, pids: []int{pid}})
	}
	return out, nil
}

func run(ctx context.Context, cfg config, stdout io.Writer) error {
	if cfg.mode == "report" {
		f, err := os.Open(cfg.in)
		if err != nil {
			return err
		}
		defer f.Close()
		results, err := readResults(f)
		if err != nil {
			return err
		}
		return writeReport(stdout, results)
	}
	g, err := newGenerator(cfg)
	if err != nil {
		return err
	}
	defer g.close()
	var res *result
	switch cfg.mode {
	case "closed":
		res = g.runClosed(ctx)
	case "open", "ttfb":
		res = g.runOpen(ctx)
	case "streams":
		res = g.runStreams(ctx)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	line, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, string(line))
	return err
}
