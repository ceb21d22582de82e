package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Targets of the LLM gateway issue.
const (
	targetThroughputRatio = 0.75 // gateway req/s over nginx req/s, same concurrency
	targetAddedP50US      = 200  // at 1,000 req/s open loop
	targetAddedP99US      = 1000
	targetRSSKiB          = 64 << 10 // gateway peak RSS at 1,000 req/s
	targetAddedTTFBUS     = 200      // p50
)

// noisyCores is how much CPU outside the watched processes (other load) makes a run
// suspect: Postgres writing usage events takes a little.
const noisyCores = 0.3

// targets orders the measured targets in tables; labels are "<mode>/<target>".
// "floor" is dataplane/cmd/floorproxy: the gateway's HTTP server and upstream
// transport forwarding without any of the gateway's work, a reference for what a Go
// proxy costs on the machine.
var targets = []string{"direct", "nginx", "floor", "gateway"}

// results holds every run of each label, in the order they ran: the bench runs the
// targets in rounds (direct, nginx, gateway back to back, repeated), and round i of
// a comparison pairs the i-th runs of its labels.
type results map[string][]*result

func readResults(r io.Reader) (results, error) {
	out := results{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var res result
		if err := json.Unmarshal([]byte(line), &res); err != nil {
			return nil, fmt.Errorf("read results: %w", err)
		}
		out[res.Label] = append(out[res.Label], &res)
	}
	return out, sc.Err()
}

// get returns the run of mode/target that represents it in the tables: the median
// run by its main measure (throughput for closed loops, p50 latency otherwise).
func get(rs results, mode, target string) *result {
	runs := rs[mode+"/"+target]
	if len(runs) == 0 {
		return nil
	}
	sorted := slices.Clone(runs)
	slices.SortStableFunc(sorted, func(a, b *result) int {
		return cmp.Compare(primary(a), primary(b))
	})
	return sorted[(len(sorted)-1)/2]
}

func primary(r *result) float64 {
	if r.Mode == "closed" || r.Latency == nil {
		return r.RPS
	}
	return r.Latency.P50
}

// perRound computes f on each round's runs of mode/a and mode/b and returns the
// median and every value, in round order; ok is false without a complete round.
func perRound(rs results, mode, a, b string, f func(x, y *result) (float64, bool)) (median float64, values []float64, ok bool) {
	ra, rb := rs[mode+"/"+a], rs[mode+"/"+b]
	for i := range min(len(ra), len(rb)) {
		if v, ok := f(ra[i], rb[i]); ok {
			values = append(values, v)
		}
	}
	if len(values) == 0 {
		return 0, nil, false
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	return sorted[(len(sorted)-1)/2], values, true
}

// rounds describes per-round values after a median: " (median of 3 rounds: a, b, c)".
func rounds(values []float64, format func(float64) string) string {
	if len(values) < 2 {
		return ""
	}
	parts := make([]string, len(values))
	for i, v := range values {
		parts[i] = format(v)
	}
	return fmt.Sprintf(" (median of %d rounds: %s)", len(values), strings.Join(parts, ", "))
}

// writeReport prints the targets, then one table per mode. Missing results are
// skipped; a failed measurement shows as "n/a".
func writeReport(w io.Writer, rs results) error {
	var b strings.Builder
	worst, label := 0.0, ""
	for l, runs := range rs {
		for _, r := range runs {
			if r.Machine != nil && r.Machine.Other > worst {
				worst, label = r.Machine.Other, l
			}
		}
	}
	if worst > noisyCores {
		fmt.Fprintf(&b, "Warning: other work kept up to %.2f cores busy during the runs (%s); the numbers are skewed by it.\n\n", worst, label)
	}
	writeTargets(&b, rs)
	writeClosed(&b, rs)
	writeOpen(&b, rs, "open", "Latency at a fixed rate (open loop, non-streaming)",
		"latency from each request's scheduled send time to the end of the answer")
	writeOpen(&b, rs, "ttfb", "Time to first byte (open loop, streaming)",
		"from each request's scheduled send time to the first SSE `data:` line")
	writeStreams(&b, rs)
	b.WriteString(otherLoadNote + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func writeTargets(b *strings.Builder, rs results) {
	b.WriteString("| measure | target | result | |\n| --- | --- | --- | --- |\n")
	row := func(measure, target, result string, met *bool) {
		verdict := "—"
		if met != nil {
			verdict = "met"
			if !*met {
				verdict = "**missed**"
			}
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", measure, target, result, verdict)
	}
	if ratio, all, ok := perRound(rs, "closed", "gateway", "nginx", func(gw, ng *result) (float64, bool) {
		return gw.RPS / ng.RPS, ng.RPS > 0
	}); ok {
		gw, ng := get(rs, "closed", "gateway"), get(rs, "closed", "nginx")
		met := ratio >= targetThroughputRatio
		pct := func(v float64) string { return fmt.Sprintf("%.0f %%", v*100) }
		row(fmt.Sprintf("throughput, gateway ÷ nginx (closed loop, %d connections)", gw.Concurrency), "≥ 75 %",
			fmt.Sprintf("%s (%s vs %s req/s)%s", pct(ratio), num(gw.RPS), num(ng.RPS), rounds(all, pct)), &met)
	}
	added := func(pick func(d *dist) float64) func(gw, d *result) (float64, bool) {
		return func(gw, d *result) (float64, bool) {
			if gw.Latency == nil || d.Latency == nil {
				return 0, false
			}
			return pick(gw.Latency) - pick(d.Latency), true
		}
	}
	p50of := func(d *dist) float64 { return d.P50 }
	p99of := func(d *dist) float64 { return d.P99 }
	if p50, all50, ok := perRound(rs, "open", "gateway", "direct", added(p50of)); ok {
		gw := get(rs, "open", "gateway")
		p99, all99, _ := perRound(rs, "open", "gateway", "direct", added(p99of))
		rate := num(gw.Rate)
		met50, met99 := p50 <= targetAddedP50US && gw.Errors == 0, p99 <= targetAddedP99US && gw.Errors == 0
		row("added latency p50 at "+rate+" req/s (gateway − direct)", "≤ 0.2 ms", ms(p50)+rounds(all50, ms), &met50)
		row("added latency p99 at "+rate+" req/s", "≤ 1 ms", ms(p99)+rounds(all99, ms), &met99)
		var peak int64
		for _, r := range rs["open/gateway"] {
			if p := r.Procs["gateway"]; p != nil {
				peak = max(peak, p.RSSPeakKiB)
			}
		}
		if peak > 0 {
			met := peak <= targetRSSKiB
			row("gateway RSS, peak at "+rate+" req/s", "≤ 64 MiB", mib(peak), &met)
		}
	}
	if p50, all, ok := perRound(rs, "ttfb", "gateway", "direct", added(p50of)); ok {
		gw := get(rs, "ttfb", "gateway")
		p99, _, _ := perRound(rs, "ttfb", "gateway", "direct", added(p99of))
		met := p50 <= targetAddedTTFBUS && gw.Errors == 0
		row("streaming: added time to first byte, p50", "≤ 0.2 ms",
			fmt.Sprintf("%s (p99 %s)%s", ms(p50), ms(p99), rounds(all, ms)), &met)
	}
	if st := get(rs, "streams", "gateway"); st != nil && st.Streams != nil {
		s := st.Streams
		res := fmt.Sprintf("%s of %s open", num(float64(s.Active)), num(float64(s.Requested)))
		if p := st.Procs["gateway"]; p != nil {
			res += ", RSS " + mib(p.RSSPeakKiB)
		}
		res += fmt.Sprintf(", %s goroutines", num(float64(s.GoroutinesMax)))
		row(fmt.Sprintf("%s concurrent slow streams through the gateway", num(float64(s.Requested))), "report", res, nil)
	}
	// The floor: the same measures for a Go proxy that does none of the gateway's work.
	if ratio, all, ok := perRound(rs, "closed", "floor", "nginx", func(fl, ng *result) (float64, bool) {
		return fl.RPS / ng.RPS, ng.RPS > 0
	}); ok {
		pct := func(v float64) string { return fmt.Sprintf("%.0f %%", v*100) }
		row("reference — throughput, Go floor proxy ÷ nginx", "", pct(ratio)+rounds(all, pct), nil)
	}
	if p50, all, ok := perRound(rs, "open", "floor", "direct", added(p50of)); ok {
		p99, all99, _ := perRound(rs, "open", "floor", "direct", added(p99of))
		row("reference — added latency p50 / p99, Go floor proxy", "", ms(p50)+rounds(all, ms)+" / "+ms(p99)+rounds(all99, ms), nil)
	}
	if p50, all, ok := perRound(rs, "ttfb", "floor", "direct", added(p50of)); ok {
		row("reference — added time to first byte p50, Go floor proxy", "", ms(p50)+rounds(all, ms), nil)
	}
	b.WriteString("\n")
}

func writeClosed(b *strings.Builder, rs results) {
	var any *result
	for _, t := range targets {
		if r := get(rs, "closed", t); r != nil {
			any = r
		}
	}
	if any == nil {
		return
	}
	fmt.Fprintf(b, "#### Throughput (closed loop, %d connections, %.0f s, non-streaming)\n\n", any.Concurrency, any.Seconds)
	b.WriteString("| target | req/s | ÷ nginx | p50 | p99 | errors | CPU per request | other load |\n| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |\n")
	ng := get(rs, "closed", "nginx")
	for _, t := range targets {
		r := get(rs, "closed", t)
		if r == nil {
			continue
		}
		ratio := "—"
		if ng != nil && ng.RPS > 0 {
			ratio = fmt.Sprintf("%.0f %%", r.RPS/ng.RPS*100)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", t, num(r.RPS), ratio,
			latencyOr(r.Latency, func(d *dist) float64 { return d.P50 }), latencyOr(r.Latency, func(d *dist) float64 { return d.P99 }),
			errorsOf(r), cpuPerRequest(r), otherLoad(r))
	}
	b.WriteString("\n")
}

func writeOpen(b *strings.Builder, rs results, mode, title, what string) {
	var any *result
	for _, t := range targets {
		if r := get(rs, mode, t); r != nil {
			any = r
		}
	}
	if any == nil {
		return
	}
	fmt.Fprintf(b, "#### %s: %s req/s, %.0f s\n\n%s; \"added\" is the target's percentile minus the direct call's.\n\n",
		title, num(any.Rate), any.Seconds, strings.ToUpper(what[:1])+what[1:])
	b.WriteString("| target | req/s | p50 | p90 | p99 | p99.9 | max | added p50 | added p99 | service p50 / p99 | errors | RSS peak | other load |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	d := get(rs, mode, "direct")
	var lags []string
	for _, t := range targets {
		r := get(rs, mode, t)
		if r == nil {
			continue
		}
		l := r.Latency
		if l == nil {
			fmt.Fprintf(b, "| %s | %s | n/a | | | | | | | | %s | | %s |\n", t, num(r.RPS), errorsOf(r), otherLoad(r))
			continue
		}
		added50, added99 := "—", "—"
		if t != "direct" && d != nil && d.Latency != nil {
			added50, added99 = ms(l.P50-d.Latency.P50), ms(l.P99-d.Latency.P99)
		}
		rss := ""
		if p := r.Procs[t]; p != nil {
			rss = mib(p.RSSPeakKiB)
		} else if p := r.Procs["gateway"]; p != nil && t == "gateway" {
			rss = mib(p.RSSPeakKiB)
		}
		service := ""
		if r.Service != nil {
			service = ms(r.Service.P50) + " / " + ms(r.Service.P99)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", t, num(r.RPS),
			ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max), added50, added99, service, errorsOf(r), rss, otherLoad(r))
		if r.SendLag != nil {
			lags = append(lags, fmt.Sprintf("%s p50 %s, p99 %s", t, ms(r.SendLag.P50), ms(r.SendLag.P99)))
		}
	}
	if len(lags) > 0 {
		fmt.Fprintf(b, "\nService time runs from the actual send. Load generator send lag (how late the sends were, included in the latency): %s.\n", strings.Join(lags, "; "))
	}
	b.WriteString("\n")
	b.WriteString("\n")
}

func writeStreams(b *strings.Builder, rs results) {
	r := get(rs, "streams", "gateway")
	if r == nil || r.Streams == nil {
		return
	}
	s := r.Streams
	fmt.Fprintf(b, "#### Concurrent slow streams through the gateway\n\n")
	b.WriteString("| streams | established | failed | ended early | open at the end | opened in | held | gateway RSS start → peak | per stream | goroutines | TTFB p50 / p99 | other load |\n")
	b.WriteString("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	rss, per := "", ""
	if p := r.Procs["gateway"]; p != nil {
		rss = mib(p.RSSStartKiB) + " → " + mib(p.RSSPeakKiB)
		if s.Active > 0 {
			per = fmt.Sprintf("%.1f KiB", float64(p.RSSPeakKiB-p.RSSStartKiB)/float64(s.Active))
		}
	}
	ttfb := ""
	if s.TTFB != nil {
		ttfb = ms(s.TTFB.P50) + " / " + ms(s.TTFB.P99)
	}
	fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %.1f s | %.1f s | %s | %s | %s | %s | %s |\n",
		num(float64(s.Requested)), num(float64(s.Established)), num(float64(s.Failed)), num(float64(s.EndedEarly)),
		num(float64(s.Active)), s.OpenSeconds, s.HoldSeconds, rss, per, num(float64(s.GoroutinesMax)), ttfb, otherLoad(r))
	if len(r.ErrorKinds) > 0 {
		fmt.Fprintf(b, "\nErrors: %s.\n", kinds(r.ErrorKinds))
	}
	b.WriteString("\n")
}

const otherLoadNote = "Other load: CPU, in cores, that the machine spent outside the watched processes " +
	"(gateway, control plane, upstream, nginx, load generator) during the run — Postgres, the kernel, and " +
	"any other work on a shared machine."

// otherLoad is the CPU the machine spent outside the watched processes.
func otherLoad(r *result) string {
	if r.Machine == nil {
		return ""
	}
	return fmt.Sprintf("%.2f of %d", r.Machine.Other, r.Machine.Cores)
}

func latencyOr(d *dist, f func(*dist) float64) string {
	if d == nil {
		return "n/a"
	}
	return ms(f(d))
}

func errorsOf(r *result) string {
	if r.Errors == 0 {
		return "0"
	}
	return fmt.Sprintf("%s (%s)", num(float64(r.Errors)), kinds(r.ErrorKinds))
}

func kinds(m map[string]int64) string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s: %d", k, v))
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// cpuPerRequest lists the CPU time each watched process spent per request.
func cpuPerRequest(r *result) string {
	var names []string
	for name := range r.Procs {
		names = append(names, name)
	}
	slices.Sort(names)
	var out []string
	for _, n := range names {
		if p := r.Procs[n]; p.CPUPerRequestUS >= 0.5 {
			out = append(out, fmt.Sprintf("%s %.0f µs", n, p.CPUPerRequestUS))
		}
	}
	return strings.Join(out, ", ")
}

// ms renders microseconds as milliseconds.
func ms(us float64) string { return fmt.Sprintf("%.3f ms", us/1000) }

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

// num renders a count with thousands separators.
func num(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
