#!/usr/bin/env bash
# Local PostgreSQL cluster of our own (never Debian's default one), without Docker.
#
#   deploy/local/postgres.sh install|start|stop|status|createdb NAME...
#
# Env: LAMPO_STATE_DIR (default <repo>/.run), LAMPO_PG_STATE (default <state>/pg), LAMPO_PG_PORT (5432), LAMPO_PG_USER (lampo),
#      LAMPO_PG_PASSWORD (lampo), LAMPO_PG_BIN (default: newest /usr/lib/postgresql/*/bin).
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd -- "$SCRIPT_DIR/../.." && pwd -P)

HOST=127.0.0.1
PORT=${LAMPO_PG_PORT:-5432}
APP_USER=${LAMPO_PG_USER:-lampo}
APP_PASSWORD=${LAMPO_PG_PASSWORD:-lampo}
STATE_ROOT=$(realpath -m -- "${LAMPO_STATE_DIR:-$REPO/.run}")
# The cluster's files must be reachable by the 'postgres' OS user. When the checkout lies below a
# directory it cannot enter (a clone under /root, say), the cluster lives under /var/lib/lampo.
default_pg_state() {
  if [[ $EUID -eq 0 ]] && id -u postgres >/dev/null 2>&1; then
    mkdir -p "$STATE_ROOT"
    if ! runuser -u postgres -- test -x "$STATE_ROOT" 2>/dev/null; then
      echo "/var/lib/lampo/pg-$(printf '%s' "$STATE_ROOT" | sha256sum | cut -c1-12)"
      return
    fi
  fi
  echo "$STATE_ROOT/pg"
}
PG_STATE=${LAMPO_PG_STATE:-$(default_pg_state)}
DATA="$PG_STATE/data"
SOCK="$PG_STATE/run"
LOGS="$PG_STATE/logs"
LOG="$LOGS/postgres.log"
SUPERUSER=postgres   # bootstrap superuser inside the cluster (local socket, trust)
STOP_TIMEOUT=60

# lib.sh gives say, die, alive, port_open, port_owner and kill_pid; this script defines its own
# running_pid and lock_state (they replace lib.sh's).
TAG=postgres
# shellcheck source=deploy/local/lib.sh
source "$SCRIPT_DIR/lib.sh"
usage() { echo "usage: $0 {install|start|stop|status|createdb NAME...}" >&2; exit 2; }

[[ $PORT =~ ^[0-9]+$ ]] || die "LAMPO_PG_PORT must be a number (got '$PORT')"
[[ -n $APP_USER ]] || die "LAMPO_PG_USER must not be empty"

# PostgreSQL refuses to run as root: as root we act as the 'postgres' OS user.
if [[ $EUID -eq 0 ]]; then OS_USER=postgres; else OS_USER=$(id -un); fi

as_pg() {
  if [[ $EUID -eq 0 ]]; then
    (cd / && runuser -u "$OS_USER" -- "$@")
  else
    (cd / && "$@")
  fi
}

find_pg_bin() {
  if [[ -n ${LAMPO_PG_BIN:-} ]]; then
    [[ -x $LAMPO_PG_BIN/postgres ]] && { echo "$LAMPO_PG_BIN"; return 0; }
    die "LAMPO_PG_BIN=$LAMPO_PG_BIN has no postgres binary"
  fi
  local d
  d=$(printf '%s\n' /usr/lib/postgresql/*/bin | grep -v '\*' | sort -V | tail -n1 || true)
  [[ -n $d && -x $d/postgres ]] && echo "$d"
}

# ---------------------------------------------------------------- install
do_install() {
  local bin
  if bin=$(find_pg_bin); then
    say "PostgreSQL already installed ($bin)"
    return 0
  fi
  local SUDO=()
  if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "PostgreSQL is not installed and installing needs root (no sudo)"
    SUDO=(sudo)
  fi
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and apt-get is unavailable; install PostgreSQL server binaries by hand"
  say "installing PostgreSQL with apt-get (this can take a minute)"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null \
    || die "apt-get update failed"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null \
    || die "apt-get install postgresql failed"
  bin=$(find_pg_bin) || die "apt-get installed postgresql but no /usr/lib/postgresql/*/bin/postgres was found"
  say "installed PostgreSQL ($bin)"
}

PG_BIN=""
need_bin() {
  PG_BIN=$(find_pg_bin) || true
  [[ -n $PG_BIN ]] && return 0
  do_install
  PG_BIN=$(find_pg_bin) || die "no PostgreSQL server binaries found"
}

# ---------------------------------------------------------------- state dir
ensure_dirs() {
  mkdir -p "$STATE_ROOT" "${PG_STATE%/*}"
  check_traverse "$PG_STATE" PostgreSQL
  local d
  for d in "$PG_STATE" "$SOCK" "$LOGS" "$DATA"; do
    mkdir -p "$d"
    if [[ $EUID -eq 0 && $(stat -c %U "$d") != "$OS_USER" ]]; then
      chown "$OS_USER:" "$d"
    fi
  done
  chmod 700 "$DATA"
  chmod 755 "$PG_STATE" "$SOCK" "$LOGS"
  (( ${#SOCK} + 16 < 107 )) || die "socket directory path too long for a unix socket: $SOCK (set a shorter LAMPO_STATE_DIR)"
}

pick_locale() {
  if locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then echo C.UTF-8; else echo C; fi
}

init_cluster() {
  if [[ -f $DATA/PG_VERSION ]]; then
    local have want
    have=$(cat "$DATA/PG_VERSION"); want=$("$PG_BIN/postgres" -V | awk '{print $3}' | cut -d. -f1)
    [[ $have == "$want" ]] || die "$DATA was created by PostgreSQL $have but $PG_BIN is $want; remove $DATA or set LAMPO_PG_BIN=/usr/lib/postgresql/$have/bin"
    return 0
  fi
  [[ -z $(ls -A "$DATA") ]] || die "$DATA is not empty but holds no cluster (no PG_VERSION); remove it to re-create"
  local loc
  loc=$(pick_locale)
  say "initdb in $DATA (locale $loc)"
  as_pg "$PG_BIN/initdb" -D "$DATA" -U "$SUPERUSER" --auth-local=trust --auth-host=scram-sha-256 \
      -E UTF8 --locale="$loc" >"$LOGS/initdb.log" 2>&1 \
    || { tail -n 20 "$LOGS/initdb.log" >&2; die "initdb failed (see $LOGS/initdb.log)"; }
  echo "include_if_exists = 'lampo.conf'   # written by deploy/local/postgres.sh at every start" \
    | as_pg tee -a "$DATA/postgresql.conf" >/dev/null
}

write_conf() {
  grep -q "^include_if_exists = 'lampo.conf'" "$DATA/postgresql.conf" \
    || echo "include_if_exists = 'lampo.conf'   # written by deploy/local/postgres.sh at every start" \
         | as_pg tee -a "$DATA/postgresql.conf" >/dev/null
  as_pg tee "$DATA/lampo.conf" >/dev/null <<EOF
# Generated by deploy/local/postgres.sh -- overwritten at every start.
listen_addresses = '$HOST'
port = $PORT
unix_socket_directories = '$SOCK'
# small machine (2 cores)
shared_buffers = 128MB
max_connections = 200
max_worker_processes = 4
max_parallel_workers = 2
max_parallel_workers_per_gather = 1
fsync = on
logging_collector = off
EOF
}

# ---------------------------------------------------------------- helpers
running_pid() {  # prints the postmaster pid when our cluster runs
  [[ -f $DATA/postmaster.pid && -n $PG_BIN ]] || return 1
  as_pg "$PG_BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1 || return 1
  head -n1 "$DATA/postmaster.pid"
}

psql_super() {  # psql as the bootstrap superuser over our unix socket; SQL on stdin
  as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U "$SUPERUSER" -d postgres "$@"
}

free_port() {
  port_open "$PORT" || return 0
  # Debian's packaged clusters (pg_lsclusters columns: ver name port status owner datadir log)
  if command -v pg_lsclusters >/dev/null 2>&1; then
    local ver name port status owner datadir rest
    while read -r ver name port status owner datadir rest; do
      [[ $port == "$PORT" && $status == online* && $datadir != "$DATA" ]] || continue
      say "port $PORT is used by Debian's cluster $ver/$name; stopping it (pg_ctlcluster $ver $name stop)"
      pg_ctlcluster "$ver" "$name" stop 9>&- || die "could not stop Debian's cluster $ver/$name (pg_ctlcluster $ver $name stop)"
    done < <(pg_lsclusters -h 2>/dev/null || true)
    local i
    for ((i = 0; i < 60; i++)); do port_open "$PORT" || return 0; sleep 0.5; done
  fi
  local owner
  owner=$(port_owner "$PORT")
  die "port $HOST:$PORT is already in use by another process${owner:+ ($owner)}; stop it or set LAMPO_PG_PORT"
}

ensure_role() {
  psql_super -v u="$APP_USER" -v p="$APP_PASSWORD" <<'EOF' || die "could not create/update role (see $LOG)"
SELECT format('CREATE ROLE %I LOGIN SUPERUSER PASSWORD %L', :'u', :'p')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'u') \gexec
SELECT format('ALTER ROLE %I LOGIN SUPERUSER PASSWORD %L', :'u', :'p') \gexec
EOF
}

wait_ready() {
  local i
  for ((i = 0; i < 120; i++)); do
    "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PORT" -t 2 && return 0
    sleep 0.5
  done
  die "server did not accept connections on $HOST:$PORT within 60s (see $LOG)"
}

lock_state() {
  exec 9>"$PG_STATE/.lock"
  flock -w 180 9 || die "another postgres.sh is busy with $PG_STATE (lock $PG_STATE/.lock)"
}

url() { echo "postgresql://$APP_USER:***@$HOST:$PORT/postgres"; }

# ---------------------------------------------------------------- commands
do_start() {
  local start pid
  start=$(date +%s)
  need_bin
  ensure_dirs
  lock_state
  init_cluster
  if pid=$(running_pid); then
    wait_ready
    ensure_role
    say "already running (pid $pid) on $HOST:$PORT; log: $LOG"
    return 0
  fi
  write_conf
  free_port
  say "starting PostgreSQL $("$PG_BIN/postgres" -V | awk '{print $3}') on $HOST:$PORT (data: $DATA)"
  # fd 9 (our lock) must not leak into the server.
  as_pg "$PG_BIN/pg_ctl" start -D "$DATA" -l "$LOG" -w -t 120 -s 9>&- \
    || { tail -n 20 "$LOG" >&2 || true; die "pg_ctl start failed (see $LOG)"; }
  wait_ready
  ensure_role
  pid=$(head -n1 "$DATA/postmaster.pid")
  say "ready on $HOST:$PORT (pid $pid) after $(( $(date +%s) - start ))s; role '$APP_USER' ok; $(url)"
  say "log: $LOG"
}

do_stop() {
  local pid
  PG_BIN=$(find_pg_bin) || true
  if [[ -z $PG_BIN || ! -d $DATA ]] || ! pid=$(running_pid); then
    say "not running"
    return 0
  fi
  lock_state
  say "stopping (pid $pid, fast shutdown)"
  if ! as_pg "$PG_BIN/pg_ctl" stop -D "$DATA" -m fast -w -t "$STOP_TIMEOUT" -s 9>&-; then
    say "fast shutdown did not finish in ${STOP_TIMEOUT}s; immediate shutdown"
    if ! as_pg "$PG_BIN/pg_ctl" stop -D "$DATA" -m immediate -w -t 20 -s 9>&- && alive "$pid"; then
      say "postmaster $pid still alive; sending SIGKILL"
      kill_pid "$pid" 0.5
    fi
  fi
  say "stopped; log: $LOG"
}

do_status() {
  local pid
  PG_BIN=$(find_pg_bin) || true
  if [[ -n $PG_BIN && -d $DATA ]] && pid=$(running_pid); then
    say "running (pid $pid) on $HOST:$PORT, data $DATA; log: $LOG"
    return 0
  fi
  say "not running (data: $DATA)"
  return 3
}

do_createdb() {
  local pid name
  PG_BIN=$(find_pg_bin) || true
  if [[ -z $PG_BIN || ! -d $DATA ]] || ! pid=$(running_pid); then
    die "not running; start it first: $0 start"
  fi
  for name in "$@"; do
    [[ -n $name ]] || die "empty database name"
    if [[ $(psql_super -At -v d="$name" <<<"SELECT 1 FROM pg_database WHERE datname = :'d'") == 1 ]]; then
      say "database '$name' already exists"
      continue
    fi
    psql_super -v d="$name" -v u="$APP_USER" <<'EOF' || die "could not create database '$name'"
SELECT format('CREATE DATABASE %I OWNER %I', :'d', :'u') \gexec
EOF
    say "created database '$name' (owner $APP_USER)"
  done
}

[[ $# -ge 1 ]] || usage
cmd=$1; shift
case $cmd in
  install) [[ $# -eq 0 ]] || usage; do_install ;;
  start) [[ $# -eq 0 ]] || usage; do_start ;;
  stop) [[ $# -eq 0 ]] || usage; do_stop ;;
  status) [[ $# -eq 0 ]] || usage; do_status ;;
  createdb) [[ $# -ge 1 ]] || usage; do_createdb "$@" ;;
  *) usage ;;
esac
