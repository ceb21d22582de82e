#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers, and writes its admin URL to .dev/db.env.
#
# 1. A server on 127.0.0.1:5432 that lets user postgres in without a password is used
#    as it is (the usual developer machine and CI).
# 2. Otherwise a cluster of our own in .dev/pg (trust auth, port 55432, loopback only)
#    is started, created first if needed, from the system's PostgreSQL binaries, which
#    are installed from Debian packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .dev
own_port=55432
own_dir="$PWD/.dev/pg"

log() { printf 'db-up: %s\n' "$*" >&2; }
write_env() {
  printf 'GATEHOUSE_TEST_DATABASE_URL=%s\n' "$1" > .dev/db.env
  log "using $1"
}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

can_connect() { # port
  if command -v psql >/dev/null 2>&1; then
    PGCONNECT_TIMEOUT=3 psql -w -h 127.0.0.1 -p "$1" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

# 1. An existing server with trust auth.
if can_connect 5432; then
  write_env "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
  exit 0
fi
# A Debian cluster that is installed but stopped.
if command -v pg_lsclusters >/dev/null 2>&1 && pg_lsclusters -h 2>/dev/null | awk '$3==5432 {found=1} END {exit !found}'; then
  log "starting the system's PostgreSQL cluster"
  ver_name=$(pg_lsclusters -h | awk '$3==5432 {print $1" "$2; exit}')
  as_root pg_ctlcluster --skip-systemctl-redirect $ver_name start 2>/dev/null || as_root pg_ctlcluster $ver_name start || true
  for _ in $(seq 1 30); do can_connect 5432 && break; sleep 0.5; done
  if can_connect 5432; then
    write_env "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
    exit 0
  fi
  log "the system cluster does not let postgres in without a password; using our own cluster"
fi

# 2. Our own cluster.
if can_connect "$own_port"; then
  write_env "postgres://postgres@127.0.0.1:$own_port/postgres?sslmode=disable"
  exit 0
fi
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  log "installing PostgreSQL from Debian packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client >&2
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
run_pg() { # PostgreSQL refuses to run as root
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ ! -f "$own_dir/PG_VERSION" ]; then
  log "creating a cluster in $own_dir"
  mkdir -p "$own_dir"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$own_dir"
  run_pg "$bindir/initdb" -D "$own_dir" -U postgres -A trust -E UTF8 >/dev/null
fi
log "starting our cluster on 127.0.0.1:$own_port"
run_pg "$bindir/pg_ctl" -D "$own_dir" -l "$own_dir/server.log" -w -t 60 \
  -o "-p $own_port -c listen_addresses=127.0.0.1 -c unix_socket_directories=/tmp -c max_connections=300 -c fsync=off" start >&2
write_env "postgres://postgres@127.0.0.1:$own_port/postgres?sslmode=disable"
