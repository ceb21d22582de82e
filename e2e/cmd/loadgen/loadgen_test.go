package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	t.Parallel()
	var ds []time.Duration
	for i := 1000; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Microsecond)
	}
	got := summarize(ds)
	want := dist{N: 1000, Mean: 500.5, P50: 500, P90: 900, P99: 990, P999: 999, Max: 1000}
	if *got != want {
		t.Errorf("summarize = %+v, want %+v", *got, want)
	}
	if summarize(nil) != nil {
		t.Error("summarize(nil) != nil")
	}
}

func TestParseWatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    []watchSpec
		wantErr bool
	}{
		{"", nil, false},
		{"gateway=12", []watchSpec{{"gateway", []int{12}}}, false},
		{"nginx=3,upstream=4,nginx=5", []watchSpec{{"nginx", []int{3, 5}}, {"upstream", []int{4}}}, false},
		{"gateway", nil, true},
		{"gateway=x", nil, true},
		{"=3", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseWatch(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseWatch(%q) error = %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseWatch(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseGauge(t *testing.T) {
	t.Parallel()
	text := "# HELP go_goroutines Number of goroutines.\n# TYPE go_goroutines gauge\ngo_goroutines 20085\ngo_goroutines_other 3\n"
	n, err := parseGauge(strings.NewReader(text), "go_goroutines")
	if err != nil || n != 20085 {
		t.Errorf("parseGauge = %d, %v; want 20085", n, err)
	}
	if _, err := parseGauge(strings.NewReader("up 1\n"), "go_goroutines"); err == nil {
		t.Error("parseGauge without the metric: no error")
	}
}

// fakeUpstream answers chat completions like the demo upstream, streaming when asked;
// a stream of "slow" requests sends one event and then waits for the client to leave.
func fakeUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if !bytes.Contains(body, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"choices":[{"message":{"content":"hi"}}]}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n")
		w.(http.Flusher).Flush()
		if bytes.Contains(body, []byte("slow")) {
			<-r.Context().Done()
			return
		}
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(srv.Close)
	return srv
}

func runMode(t *testing.T, args ...string) *result {
	t.Helper()
	cfg, err := parseConfig(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(context.Background(), cfg, &out); err != nil {
		t.Fatal(err)
	}
	var res result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	return &res
}

func TestModes(t *testing.T) {
	t.Parallel()
	srv := fakeUpstream(t)
	url := srv.URL + "/v1/chat/completions"
	watch := fmt.Sprintf("self=%d", os.Getpid())
	t.Run("closed", func(t *testing.T) {
		t.Parallel()
		res := runMode(t, "-mode", "closed", "-url", url, "-key", "k", "-c", "4", "-d", "200ms", "-warmup", "0s", "-watch", watch)
		if res.OK == 0 || res.Errors != 0 || res.Latency == nil || res.RPS <= 0 {
			t.Errorf("closed: %+v", res)
		}
		if p := res.Procs["self"]; p == nil || p.RSSPeakKiB == 0 {
			t.Errorf("closed: no sample of the watched process: %+v", res.Procs)
		}
		if res.Machine == nil || res.Machine.Cores == 0 {
			t.Errorf("closed: no machine CPU: %+v", res.Machine)
		}
	})
	t.Run("open", func(t *testing.T) {
		t.Parallel()
		res := runMode(t, "-mode", "open", "-url", url, "-key", "k", "-rate", "200", "-d", "250ms", "-warmup", "0s")
		if res.OK != 50 || res.Errors != 0 || res.Latency == nil || res.Service == nil || res.SendLag == nil {
			t.Errorf("open: want 50 answers, got %+v", res)
		}
	})
	t.Run("ttfb", func(t *testing.T) {
		t.Parallel()
		res := runMode(t, "-mode", "ttfb", "-url", url, "-key", "k", "-rate", "100", "-d", "200ms", "-warmup", "0s")
		if res.OK != 20 || res.Errors != 0 || !res.Stream {
			t.Errorf("ttfb: want 20 streams, got %+v", res)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		t.Parallel()
		res := runMode(t, "-mode", "open", "-url", url, "-key", "nope", "-rate", "100", "-d", "100ms", "-warmup", "0s")
		if res.OK != 0 || res.ErrorKinds["status 401"] != 10 {
			t.Errorf("wrong key: want 10 × status 401, got %+v", res)
		}
	})
	t.Run("streams", func(t *testing.T) {
		t.Parallel()
		metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "go_goroutines 42\n")
		}))
		defer metrics.Close()
		res := runMode(t, "-mode", "streams", "-url", url, "-key", "k", "-c", "20", "-open-rate", "1000",
			"-hold", "600ms", "-prompt", "slow", "-metrics-url", metrics.URL)
		s := res.Streams
		if s == nil || s.Established != 20 || s.Active != 20 || s.Failed != 0 || s.Goroutines != 42 || s.TTFB == nil {
			t.Errorf("streams: %+v %+v", res, s)
		}
	})
}

func TestReport(t *testing.T) {
	t.Parallel()
	lines := []string{
		`{"label":"closed/nginx","mode":"closed","concurrency":32,"seconds":10,"ok":100000,"rps":10000,"latency_us":{"p50":1000,"p99":3000}}`,
		`{"label":"closed/gateway","mode":"closed","concurrency":32,"seconds":10,"ok":80000,"rps":8000,"latency_us":{"p50":1200,"p99":3500}}`,
		`{"label":"open/direct","mode":"open","rate":1000,"seconds":15,"ok":15000,"rps":1000,"latency_us":{"p50":300,"p99":900}}`,
		`{"label":"open/gateway","mode":"open","rate":1000,"seconds":15,"ok":15000,"rps":1000,"latency_us":{"p50":600,"p99":1500},` +
			`"procs":{"gateway":{"rss_peak_kib":40000}}}`,
	}
	out := report(t, lines)
	for _, want := range []string{
		"| throughput, gateway ÷ nginx (closed loop, 32 connections) | ≥ 75 % | 80 % (8,000 vs 10,000 req/s) | met |",
		"| added latency p50 at 1,000 req/s (gateway − direct) | ≤ 0.2 ms | 0.300 ms | **missed** |",
		"| added latency p99 at 1,000 req/s | ≤ 1 ms | 0.600 ms | met |",
		"| gateway RSS, peak at 1,000 req/s | ≤ 64 MiB | 39.1 MiB | met |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// TestReportRounds: with several rounds, each comparison is made within a round and
// the median of the rounds is reported, so one disturbed run does not decide.
func TestReportRounds(t *testing.T) {
	t.Parallel()
	var lines []string
	for _, r := range []struct{ nginx, gateway, direct50, gateway50 int }{
		{10000, 6000, 300, 500},  // round 1: 60 %, +0.2 ms
		{10000, 2000, 300, 5300}, // round 2, disturbed: 20 %, +5 ms
		{8000, 6400, 400, 550},   // round 3: 80 %, +0.15 ms
	} {
		lines = append(lines,
			fmt.Sprintf(`{"label":"closed/nginx","mode":"closed","concurrency":32,"rps":%d,"latency_us":{"p50":1000,"p99":3000}}`, r.nginx),
			fmt.Sprintf(`{"label":"closed/gateway","mode":"closed","concurrency":32,"rps":%d,"latency_us":{"p50":1000,"p99":3000}}`, r.gateway),
			fmt.Sprintf(`{"label":"open/direct","mode":"open","rate":1000,"rps":1000,"latency_us":{"p50":%d,"p99":900}}`, r.direct50),
			fmt.Sprintf(`{"label":"open/gateway","mode":"open","rate":1000,"rps":1000,"latency_us":{"p50":%d,"p99":1500},"procs":{"gateway":{"rss_peak_kib":%d}}}`, r.gateway50, 30000+r.gateway),
		)
	}
	out := report(t, lines)
	for _, want := range []string{
		"| ≥ 75 % | 60 % (6,000 vs 10,000 req/s) (median of 3 rounds: 60 %, 20 %, 80 %) | **missed** |",
		"| ≤ 0.2 ms | 0.200 ms (median of 3 rounds: 0.200 ms, 5.000 ms, 0.150 ms) | met |",
		"| gateway RSS, peak at 1,000 req/s | ≤ 64 MiB | 35.5 MiB | met |", // the peak of all rounds
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// report renders the report of result lines.
func report(t *testing.T, lines []string) string {
	t.Helper()
	rs, err := readResults(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := writeReport(&out, rs); err != nil {
		t.Fatal(err)
	}
	return out.String()
}
