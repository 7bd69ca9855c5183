#!/usr/bin/env bash
# Local MariaDB server of our own (never Debian's default one), without Docker: Zipkin's trace
# storage. It holds the `zipkin` database with Zipkin's schema (mysql.sql, taken from the Zipkin
# jar by `zipkin.sh schema`) and the retention of deploy/mariadb/zipkin-retention.sql, pruned daily
# by the server's event scheduler.
#
#   deploy/local/mariadb.sh install|start|stop|status
#
# Env: LAMPO_STATE_DIR (default <repo>/.run), LAMPO_MARIADB_STATE (default <state>/mariadb),
#      LAMPO_MARIADB_PORT (3307), LAMPO_MARIADB_USER (zipkin), LAMPO_MARIADB_PASSWORD (zipkin),
#      LAMPO_TRACE_RETENTION_DAYS (100).
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd -- "$SCRIPT_DIR/../.." && pwd -P)

HOST=127.0.0.1
PORT=${LAMPO_MARIADB_PORT:-3307}
APP_USER=${LAMPO_MARIADB_USER:-zipkin}
APP_PASSWORD=${LAMPO_MARIADB_PASSWORD:-zipkin}
RETENTION_DAYS=${LAMPO_TRACE_RETENTION_DAYS:-100}
DATABASE=zipkin
RETENTION_SQL="$REPO/deploy/mariadb/zipkin-retention.sql"
MARIADBD=/usr/sbin/mariadbd
STATE_ROOT=$(realpath -m -- "${LAMPO_STATE_DIR:-$REPO/.run}")
# The server's files must be reachable by the 'mysql' OS user. When the checkout lies below a
# directory it cannot enter (a clone under /root, say), the server lives under /var/lib/lampo.
default_state() {
  if [[ $EUID -eq 0 ]] && id -u mysql >/dev/null 2>&1; then
    mkdir -p "$STATE_ROOT"
    if ! runuser -u mysql -- test -x "$STATE_ROOT" 2>/dev/null; then
      echo "/var/lib/lampo/mariadb-$(printf '%s' "$STATE_ROOT" | sha256sum | cut -c1-12)"
      return
    fi
  fi
  echo "$STATE_ROOT/mariadb"
}
STATE=${LAMPO_MARIADB_STATE:-$(default_state)}
DATA="$STATE/data"
SOCK_DIR="$STATE/run"
SOCK="$SOCK_DIR/mariadb.sock"
LOGS="$STATE/logs"
LOG="$LOGS/mariadb.log"
CNF="$STATE/my.cnf"
PID_FILE="$STATE/mariadb.pid"      # written by this script
SERVER_PID_FILE="$SOCK_DIR/mariadbd.pid"   # written by the server
START_TIMEOUT=60

# settings of the shared helpers in lib.sh
TAG=mariadb
OWN_MARK="--defaults-file=$CNF "   # in the command line of a server started by this script
LOCK_TIMEOUT=180
HOME_DIR=$STATE
OUT_LOG=$LOG START_WHAT=MariaDB START_LOGS=$LOG READY_WORD="accepting connections" READY_POLL=0.3
STOP_TIMEOUT=60 STOP_WHAT=MariaDB STOP_HOW="" STOPPED_NOTE="; traces stay in $DATA"
STOP_POLL=0.25 STOP_POLLS_PER_S=4
# shellcheck source=deploy/local/lib.sh
source "$SCRIPT_DIR/lib.sh"
usage() { echo "usage: $0 {install|start|stop|status}" >&2; exit 2; }

[[ $PORT =~ ^[0-9]+$ ]] || die "LAMPO_MARIADB_PORT must be a number (got '$PORT')"
[[ $RETENTION_DAYS =~ ^[1-9][0-9]*$ ]] || die "LAMPO_TRACE_RETENTION_DAYS must be a whole number of days > 0 (got '$RETENTION_DAYS')"
[[ $APP_USER =~ ^[A-Za-z0-9_]+$ ]] || die "LAMPO_MARIADB_USER must be letters, digits or _ (got '$APP_USER')"

# MariaDB is not run as root: as root we act as the 'mysql' OS user the package creates.
if [[ $EUID -eq 0 ]]; then OS_USER=mysql; else OS_USER=$(id -un); fi

as_my() {
  if [[ $EUID -eq 0 ]]; then
    (cd / && runuser -u "$OS_USER" -- "$@")
  else
    (cd / && "$@")
  fi
}

installed() { [[ -x $MARIADBD ]] && command -v mariadb-install-db >/dev/null 2>&1 && command -v mariadb >/dev/null 2>&1; }

# ---------------------------------------------------------------- install
do_install() {
  if installed; then
    say "MariaDB already installed ($("$MARIADBD" --version | awk '{print $3}'))"
    return 0
  fi
  local SUDO=()
  if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "MariaDB is not installed and installing needs root (no sudo)"
    SUDO=(sudo)
  fi
  command -v apt-get >/dev/null 2>&1 || die "MariaDB is not installed and apt-get is unavailable; install mariadb-server by hand"
  say "installing MariaDB with apt-get (this can take a minute)"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null \
    || die "apt-get update failed"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q mariadb-server >/dev/null \
    || die "apt-get install mariadb-server failed"
  installed || die "apt-get installed mariadb-server but $MARIADBD or its client is missing"
  say "installed MariaDB ($("$MARIADBD" --version | awk '{print $3}'))"
}

# ---------------------------------------------------------------- state dir
check_traverse() {  # the server's OS user must be able to enter every directory above the state
  [[ $EUID -eq 0 ]] || return 0
  id -u "$OS_USER" >/dev/null 2>&1 || die "OS user '$OS_USER' does not exist (is MariaDB installed? try: $0 install)"
  local path=/ part
  local -a parts
  IFS='/' read -r -a parts <<<"${STATE%/*}"
  for part in "" "${parts[@]}"; do
    [[ -n $part ]] && path="${path%/}/$part"
    [[ -z $part && $path != / ]] && continue
    if ! runuser -u "$OS_USER" -- test -x "$path" 2>/dev/null; then
      die "OS user '$OS_USER' cannot enter directory $path ($(stat -c '%A %U:%G' "$path")); run 'chmod o+x $path' or set LAMPO_STATE_DIR to a directory it can reach"
    fi
  done
}

ensure_dirs() {
  mkdir -p "$STATE_ROOT" "${STATE%/*}"
  check_traverse
  local d
  for d in "$STATE" "$SOCK_DIR" "$LOGS" "$DATA"; do
    mkdir -p "$d"
    if [[ $EUID -eq 0 && $(stat -c %U "$d") != "$OS_USER" ]]; then
      chown "$OS_USER:" "$d"
    fi
  done
  chmod 700 "$DATA"
  chmod 755 "$STATE" "$SOCK_DIR" "$LOGS"
  (( ${#SOCK} < 107 )) || die "socket path too long for a unix socket: $SOCK (set a shorter LAMPO_STATE_DIR)"
}

write_conf() {  # our own option file only (--defaults-file): Debian's /etc/mysql is never read
  cat >"$CNF" <<EOF
# Generated by deploy/local/mariadb.sh -- overwritten at every start.
[mysqld]
datadir = $DATA
socket = $SOCK
pid-file = $SERVER_PID_FILE
log-error = $LOG
bind-address = $HOST
port = $PORT
skip-name-resolve
# the daily trace pruning (deploy/mariadb/zipkin-retention.sql) is an EVENT
event-scheduler = ON
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
# small machine (2 cores)
innodb_buffer_pool_size = 64M
# traces, not ledgers: the log is flushed once a second, not at every commit (a crash of the
# machine may lose the last second of spans; a crash of the server loses nothing)
innodb_flush_log_at_trx_commit = 2
innodb_log_file_size = 48M
performance_schema = OFF
max_connections = 100
EOF
  chmod 644 "$CNF"
}

init_data() {
  [[ -d $DATA/mysql ]] && return 0
  [[ -z $(ls -A "$DATA") ]] || die "$DATA is not empty but holds no MariaDB data (no mysql/); remove it to re-create"
  say "mariadb-install-db in $DATA"
  as_my mariadb-install-db --defaults-file="$CNF" --user="$OS_USER" --auth-root-authentication-method=socket \
      --skip-test-db >"$LOGS/install-db.log" 2>&1 \
    || { tail -n 20 "$LOGS/install-db.log" >&2; die "mariadb-install-db failed (see $LOGS/install-db.log)"; }
}

# ---------------------------------------------------------------- helpers
sql_admin() {  # the server's OS user over our unix socket (unix_socket authentication); SQL on stdin
  as_my mariadb --no-defaults --socket="$SOCK" -u "$OS_USER" --batch --skip-column-names "$@"
}

ready_check() { as_my mariadb-admin --no-defaults --socket="$SOCK" -u "$OS_USER" --connect-timeout=2 ping >/dev/null 2>&1; }

zipkin_schema() {  # Zipkin's own schema, once (its ALTER TABLE ... ADD INDEX statements do not repeat)
  local have schema
  have=$(sql_admin <<<"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '$DATABASE' AND table_name = 'zipkin_spans'")
  [[ $have == 0 ]] || return 0
  schema=$("$SCRIPT_DIR/zipkin.sh" schema) || die "could not read Zipkin's MySQL schema (deploy/local/zipkin.sh schema)"
  sql_admin "$DATABASE" <<<"$schema" || die "loading Zipkin's schema into '$DATABASE' failed"
  say "loaded Zipkin's schema into database '$DATABASE'"
}

ensure_database() {
  local pw=${APP_PASSWORD//\\/\\\\}
  pw=${pw//\'/\\\'}
  sql_admin <<EOF || die "could not create database '$DATABASE' or user '$APP_USER' (see $LOG)"
CREATE DATABASE IF NOT EXISTS \`$DATABASE\` CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS '$APP_USER'@'127.0.0.1', '$APP_USER'@'localhost';
ALTER USER '$APP_USER'@'127.0.0.1' IDENTIFIED BY '$pw';
ALTER USER '$APP_USER'@'localhost' IDENTIFIED BY '$pw';
GRANT ALL PRIVILEGES ON \`$DATABASE\`.* TO '$APP_USER'@'127.0.0.1', '$APP_USER'@'localhost';
EOF
  zipkin_schema
  { echo "SET @retention_days = $RETENTION_DAYS;"; cat "$RETENTION_SQL"; } | sql_admin "$DATABASE" \
    || die "applying $RETENTION_SQL failed"
}

url() { echo "mysql://$APP_USER:***@$HOST:$PORT/$DATABASE"; }

# ---------------------------------------------------------------- commands
do_start() {
  local start pid
  start=$(date +%s)
  installed || do_install
  ensure_dirs
  lock_state
  if pid=$(running_pid) && ready_check; then
    ensure_database
    say "already running (pid $pid) on $HOST:$PORT; traces kept $RETENTION_DAYS days; log: $LOG"
    return 0
  fi
  write_conf
  init_data
  if port_open "$PORT"; then
    local owner
    owner=$(port_owner "$PORT")
    die "port $HOST:$PORT is already in use by another process${owner:+ ($owner)}; stop it or set LAMPO_MARIADB_PORT"
  fi
  : >"$LOG"
  [[ $EUID -ne 0 ]] || chown "$OS_USER:" "$LOG"
  rm -f "$PID_FILE"
  # As root, mariadbd itself drops to the 'mysql' user (--user), keeping its pid.
  # fd 9 (our lock) must not leak into the server, or the next run would block on it.
  local run_as=()
  [[ $EUID -ne 0 ]] || run_as=(--user="$OS_USER")
  setsid nohup "$MARIADBD" --defaults-file="$CNF" "${run_as[@]}" >>"$LOG" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  say "starting MariaDB $("$MARIADBD" --version | awk '{print $3}') on $HOST:$PORT (pid $pid, data: $DATA)"
  wait_until_ready "$pid" "$start"
  ensure_database
  say "ready on $HOST:$PORT (pid $pid) after $(( $(date +%s) - start ))s; $(url); traces kept $RETENTION_DAYS days"
  say "log: $LOG"
}

do_stop() {
  [[ -d $STATE ]] || { say "not running"; return 0; }
  stop_ours
}

do_status() {
  if ! installed; then
    say "not installed ($MARIADBD missing; $0 install)"
    return 3
  fi
  [[ -d $STATE ]] || { say "not running (state: $STATE)"; return 3; }
  show_status "on $HOST:$PORT, data $DATA; log: $LOG" "does not answer ping; log: $LOG" ready_check
}

[[ $# -eq 1 ]] || usage
case $1 in
  install) do_install ;;
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  *) usage ;;
esac
