#!/usr/bin/env bash
# The LLM gateway's performance table ("LLM gateway vs nginx" in docs/benchmarks.md), in
# one run on loopback against the demo upstream (no delay):
#
#   direct   the demo upstream itself
#   nginx    nginx as a plain reverse-proxy hop in front of it (keepalive upstream,
#            proxy_buffering off, access_log off, worker_processes auto)
#   gateway  the real stack (e2e/cmd/benchstack: control plane with embedded NATS and a
#            fresh Postgres database, one gateway, the seeded demo org and key): key
#            auth, cost and a usage event per request
#
# and measures, with e2e/cmd/loadgen: throughput at the same concurrency (closed loop),
# latency at a fixed rate (open loop, from each request's scheduled send time) with the
# gateway's peak RSS, streaming time to first byte, and BENCH_STREAMS slow streams held
# open through the gateway (a second demo upstream with --token-delay) with its RSS and
# goroutines. Client, proxy, upstream, gateway, control plane and Postgres share the
# machine's cores; nothing is pinned. Every comparison runs in BENCH_ROUNDS rounds
# (default 3); the report takes the median of the per-round comparisons. BENCH_ONLY picks
# measurements (closed,open,ttfb,streams; default all). Installs nginx from Debian packages when missing.
# Prints markdown; keeps the raw results in .dev/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${BENCH_ROUNDS:-3}              # each comparison: this many rounds, median reported
concurrency=${BENCH_CONCURRENCY:-32}  # closed loop: connections, the same for every target
closed_s=${BENCH_CLOSED_SECONDS:-10}
rate=${BENCH_RATE:-1000}              # open loop: requests a second
open_s=${BENCH_OPEN_SECONDS:-10}
ttfb_rate=${BENCH_TTFB_RATE:-200}
ttfb_s=${BENCH_TTFB_SECONDS:-8}
streams=${BENCH_STREAMS:-5000}
hold_s=${BENCH_HOLD_SECONDS:-10}
token_delay=${BENCH_TOKEN_DELAY:-200ms}
only=${BENCH_ONLY:-closed,open,ttfb,streams} # which measurements, comma-separated
wants() { case ",$only," in *",$1,"*) return 0 ;; esac; return 1; }

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Every stream holds a descriptor in the client, two in the gateway and one upstream.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fds=$(ulimit -n)
if [ "$fds" != unlimited ] && [ $((2 * streams + 1024)) -gt "$fds" ]; then
  streams=$(((fds - 1024) / 2))
  log "open-file limit is $fds: holding $streams streams instead"
fi

work=$(mktemp -d /tmp/gatehouse-bench.XXXXXX)
chmod 755 "$work"
stack_pid="" nginx_pid="" floor_pid="" ok=0
cleanup() {
  if [ -n "$floor_pid" ]; then kill -TERM "$floor_pid" 2>/dev/null || true; wait "$floor_pid" 2>/dev/null || true; fi
  if [ -n "$nginx_pid" ]; then kill -TERM "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; fi
  if [ -n "$stack_pid" ]; then kill -TERM "$stack_pid" 2>/dev/null || true; wait "$stack_pid" 2>/dev/null || true; fi
  if [ "$ok" = 1 ]; then rm -rf "$work"; else log "logs kept in $work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. Binaries, Postgres, nginx.
log "building"
make --no-print-directory build >&2
go build -trimpath -o bin/loadgen ./e2e/cmd/loadgen
go build -trimpath -o bin/benchstack ./e2e/cmd/benchstack
go build -trimpath -o bin/floorproxy ./dataplane/cmd/floorproxy
./scripts/db-up.sh
set -a; source .dev/db.env; set +a

nginx_bin=$(command -v nginx || true)
[ -z "$nginx_bin" ] && [ -x /usr/sbin/nginx ] && nginx_bin=/usr/sbin/nginx
if [ -z "$nginx_bin" ]; then
  log "installing nginx from Debian packages"
  # Keep the package from starting a system nginx on port 80.
  no_start=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod 755 /usr/sbin/policy-rc.d
    no_start=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >&2 || install_failed=1
  [ -n "$no_start" ] && as_root rm -f /usr/sbin/policy-rc.d
  [ -z "${install_failed:-}" ] || die "could not install nginx"
  nginx_bin=/usr/sbin/nginx
fi

# BENCH_NICE (e.g. -10; needs root): run everything started from here on at that
# niceness, so that other work on a shared machine disturbs the measurements less.
if [ -n "${BENCH_NICE:-}" ]; then
  as_root renice -n "$BENCH_NICE" -p $$ >/dev/null || log "could not renice to $BENCH_NICE"
fi

# 2. The stack.
log "starting the stack (fresh database)"
mkdir -p "$work/stack"
bin/benchstack --state-dir "$work/stack" --token-delay "$token_delay" >"$work/stack.json" 2>"$work/stack.log" &
stack_pid=$!
for _ in $(seq 1 240); do
  [ -s "$work/stack.json" ] && break
  kill -0 "$stack_pid" 2>/dev/null || die "benchstack failed: $(tail -n 5 "$work/stack.log")"
  sleep 0.5
done
[ -s "$work/stack.json" ] || die "the stack did not come up within 120 s"
field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" "$work/stack.json"; }
gateway_url=$(field gateway_url) gateway_pid=$(field gateway_pid) key=$(field key)
upstream_url=$(field upstream_url) upstream_addr=$(field upstream_addr) upstream_pid=$(field upstream_pid)
upstream_key=$(field upstream_key) slow_model=$(field slow_model) slow_pid=$(field slow_upstream_pid)
cp_pid=$(field controlplane_pid)

# 3. nginx on a free loopback port.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
nginx_port=""
for _ in $(seq 1 50); do
  p=$((20000 + RANDOM % 20000))
  if port_free "$p"; then nginx_port=$p; break; fi
done
[ -n "$nginx_port" ] || die "no free port for nginx"
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<EOF
# A plain reverse-proxy hop: what the gateway's extra cost is compared with.
worker_processes auto;
worker_rlimit_nofile 65536;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  upstream demo {
    server $upstream_addr;
    keepalive 512;
  }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://demo;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;          # SSE: relay every event as it arrives
      proxy_request_buffering off;
    }
  }
}
EOF
"$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" -g 'daemon off;' &
nginx_pid=$!
nginx_url="http://127.0.0.1:$nginx_port/v1"
for _ in $(seq 1 100); do
  port_free "$nginx_port" || break
  kill -0 "$nginx_pid" 2>/dev/null || die "nginx failed: $(tail -n 5 "$work/nginx/error.log")"
  sleep 0.1
done
nginx_workers=$(pgrep -P "$nginx_pid" | tr '\n' ' ')
[ -n "$nginx_workers" ] || die "nginx has no workers"
watch_nginx="upstream=$upstream_pid"
for w in $nginx_workers; do watch_nginx+=",nginx=$w"; done
watch_gateway="gateway=$gateway_pid,upstream=$upstream_pid,controlplane=$cp_pid"

# 3b. The floor: the gateway's HTTP server and upstream transport, forwarding without
# any of the gateway's work (dataplane/cmd/floorproxy) — what a Go proxy costs here.
bin/floorproxy --listen 127.0.0.1:0 --upstream "http://$upstream_addr" >"$work/floor.addr" 2>"$work/floor.log" &
floor_pid=$!
for _ in $(seq 1 100); do [ -s "$work/floor.addr" ] && break; sleep 0.1; done
[ -s "$work/floor.addr" ] || die "floorproxy failed: $(tail -n 5 "$work/floor.log")"
floor_url="http://$(cat "$work/floor.addr")/v1"

# 4. Measurements, one after another. Before each, wait until the gateway and the
# control plane are idle again (the control plane writes the usage events of the
# previous run to Postgres) and, for up to BENCH_QUIET_WAIT seconds, until the machine
# is (other work on a shared machine skews every number; the report shows how much
# CPU went elsewhere during each run).
quiet_wait=${BENCH_QUIET_WAIT:-10}
cpu_ticks() { local t=0 pid; for pid in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0))); done; echo "$t"; }
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
quiesce() {
  local a b m0 m1 waited=0
  for _ in $(seq 1 20); do
    a=$(cpu_ticks "$gateway_pid" "$cp_pid"); sleep 0.5; b=$(cpu_ticks "$gateway_pid" "$cp_pid")
    [ $((b - a)) -le 2 ] && break
  done
  while :; do # the machine: at most a fifth of a core busy over a second
    m0=$(busy_ticks); sleep 1; m1=$(busy_ticks)
    [ $((m1 - m0)) -le 20 ] && return 0
    waited=$((waited + 1))
    if [ "$waited" -ge "$quiet_wait" ]; then
      log "the machine is busy with other work ($((m1 - m0))% of a core); measuring anyway"
      return 0
    fi
  done
}
results="$work/results.jsonl"
: >"$results"
target_args() { # target -> loadgen flags
  case $1 in
    direct) echo "-url $upstream_url/chat/completions -key $upstream_key -watch upstream=$upstream_pid" ;;
    nginx) echo "-url $nginx_url/chat/completions -key $upstream_key -watch $watch_nginx" ;;
    floor) echo "-url $floor_url/chat/completions -key $upstream_key -watch upstream=$upstream_pid,floor=$floor_pid" ;;
    gateway) echo "-url $gateway_url/v1/chat/completions -key $key -watch $watch_gateway" ;;
  esac
}
measure() { # label, loadgen flags...
  local label=$1; shift
  quiesce
  log "$label"
  # shellcheck disable=SC2046
  timeout 300 bin/loadgen -label "$label" "$@" >>"$results" || die "$label failed"
}
gateway_idle_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$gateway_pid/status")
# Each comparison runs in rounds — direct, nginx, gateway back to back — and the report
# compares within a round and takes the median of the rounds: on a shared machine the
# speed drifts from minute to minute, and one disturbed run must not decide.
wants closed && for round in $(seq 1 "$rounds"); do
  for t in direct nginx floor gateway; do
    # shellcheck disable=SC2046
    measure "closed/$t" -mode closed -c "$concurrency" -d "${closed_s}s" -warmup 2s $(target_args $t)
  done
done
wants open && for round in $(seq 1 "$rounds"); do
  for t in direct nginx floor gateway; do
    # shellcheck disable=SC2046
    measure "open/$t" -mode open -rate "$rate" -d "${open_s}s" -warmup 3s $(target_args $t)
  done
done
wants ttfb && for round in $(seq 1 "$rounds"); do
  for t in direct nginx floor gateway; do
    # shellcheck disable=SC2046
    measure "ttfb/$t" -mode ttfb -rate "$ttfb_rate" -d "${ttfb_s}s" -warmup 2s $(target_args $t)
  done
done
# Long replies: the demo upstream echoes the prompt a word a chunk (up to 200
# characters), so 100 one-letter words make ~107 chunks, ~21 s at 200 ms.
long_prompt=$(printf 'a %.0s' $(seq 1 100))
wants streams && measure "streams/gateway" -mode streams -c "$streams" -open-rate 1000 -hold "${hold_s}s" \
  -model "$slow_model" -prompt "$long_prompt" -url "$gateway_url/v1/chat/completions" -key "$key" \
  -watch "gateway=$gateway_pid,upstream=$slow_pid" -metrics-url "$gateway_url/metrics"

# 5. The table.
mkdir -p .dev/bench
stamp=$(date -u +%Y%m%dT%H%M%SZ)
cp "$results" ".dev/bench/results-$stamp.jsonl"
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
os=$(. /etc/os-release && echo "$PRETTY_NAME")
{
  echo "Machine: $(nproc) vCPU $cpu, $mem, $os, Linux $(uname -r), $(go version | awk '{print $3}'), $("$nginx_bin" -v 2>&1 | sed 's|.*nginx/|nginx |') ($(echo "$nginx_workers" | wc -w) workers). $(date -u +%Y-%m-%d)."
  echo "Gateway RSS when idle, before the runs: $(awk -v k="$gateway_idle_kib" 'BEGIN {printf "%.1f MiB", k / 1024}')."
  echo
  bin/loadgen -mode report -in "$results"
} | tee ".dev/bench/report-$stamp.md"
ok=1
