#!/usr/bin/env bash
# Throwaway PostgreSQL and Redis for the test suite.
#   scripts/services.sh start   -> prints export lines for DATABASE_URL and REDIS_URL
#   scripts/services.sh stop
#   scripts/services.sh running -> exit status 0 when both answer
# Installs the Debian packages when they are missing. Servers listen on
# loopback only, keep their data under $MASKROOM_SERVICES (default /tmp/maskroom-services).
set -euo pipefail

dir="${MASKROOM_SERVICES:-/tmp/maskroom-services}"
pg_port="${MASKROOM_PG_PORT:-54329}"
redis_port="${MASKROOM_REDIS_PORT:-63799}"

pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/postgres" ] && echo "$d"
}

as_postgres() {
  if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install_missing() {
  local pkgs=()
  pg_bin >/dev/null || pkgs+=(postgresql)
  command -v redis-server >/dev/null || pkgs+=(redis-server)
  if [ ${#pkgs[@]} -gt 0 ]; then
    echo "installing ${pkgs[*]}" >&2
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >&2
  fi
}

start() {
  install_missing
  mkdir -p "$dir"
  local bin; bin=$(pg_bin)
  if [ ! -f "$dir/pg/PG_VERSION" ]; then
    mkdir -p "$dir/pg" "$dir/pgsock"
    [ "$(id -u)" = "0" ] && chown -R postgres "$dir/pg" "$dir/pgsock"
    as_postgres "$bin/initdb" -D "$dir/pg" -U maskroom --auth=trust -E UTF8 >/dev/null
  fi
  if ! as_postgres "$bin/pg_ctl" -D "$dir/pg" status >/dev/null 2>&1; then
    as_postgres "$bin/pg_ctl" -D "$dir/pg" -w -l "$dir/pgsock/log" \
      -o "-p $pg_port -k $dir/pgsock -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >&2
  fi
  as_postgres "$bin/psql" -h 127.0.0.1 -p "$pg_port" -U maskroom -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='maskroom'" | grep -q 1 ||
    as_postgres "$bin/createdb" -h 127.0.0.1 -p "$pg_port" -U maskroom maskroom
  if ! redis-cli -p "$redis_port" ping >/dev/null 2>&1; then
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
      --daemonize yes --dir "$dir" --logfile "$dir/redis.log" >&2
    for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  echo "export DATABASE_URL=postgres://maskroom@127.0.0.1:$pg_port/maskroom"
  echo "export REDIS_URL=redis://127.0.0.1:$redis_port/0"
}

running() {
  local bin; bin=$(pg_bin) || return 1
  [ -f "$dir/pg/PG_VERSION" ] || return 1
  as_postgres "$bin/pg_ctl" -D "$dir/pg" status >/dev/null 2>&1 || return 1
  command -v redis-cli >/dev/null && redis-cli -p "$redis_port" ping >/dev/null 2>&1
}

stop() {
  local bin; bin=$(pg_bin || true)
  if [ -n "$bin" ] && [ -f "$dir/pg/PG_VERSION" ]; then
    as_postgres "$bin/pg_ctl" -D "$dir/pg" -m fast stop >/dev/null 2>&1 || true
  fi
  redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  running) running ;;
  *) echo "usage: $0 start|stop|running" >&2; exit 2 ;;
esac
