#!/usr/bin/env bash
# Local Zipkin server (tracing backend with a web UI) without Docker. Traces are kept in MariaDB
# (deploy/local/mariadb.sh, Zipkin's MySQL storage) whenever MariaDB is installed, in memory
# otherwise. The executable jar io.zipkin:zipkin-server:<version>:jar:exec comes from Maven
# Central once and is cached; see deploy/local/README.md.
#
#   deploy/local/zipkin.sh install|start|launch|stop|status|schema
#
# `launch` starts the server without waiting for it (a later `start` waits for readiness), so
# `make infra` can overlap its JVM start-up with PostgreSQL and Kafka. A running Zipkin of this
# state directory whose storage is not the one wanted (say in memory, once MariaDB is installed)
# is restarted by `launch`/`start`. `schema` prints Zipkin's MySQL schema (mysql.sql) from the jar.
#
# Env: LAMPO_ZIPKIN_PORT (9411), LAMPO_ZIPKIN_VERSION (3.6.1), LAMPO_ZIPKIN_HEAP_OPTS ("-Xms64m -Xmx768m"),
#      LAMPO_ZIPKIN_STORAGE (auto: mysql when MariaDB is installed, else mem; or mysql, mem),
#      LAMPO_ZIPKIN_MAX_SPANS (in-memory span limit, 50000), LAMPO_ZIPKIN_START_TIMEOUT (90 s),
#      LAMPO_MARIADB_PORT (3307), LAMPO_MARIADB_USER / LAMPO_MARIADB_PASSWORD (zipkin / zipkin),
#      LAMPO_CACHE (default ~/.cache/lampo), LAMPO_STATE_DIR (default <repo>/.run).
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd -- "$SCRIPT_DIR/../.." && pwd -P)

HOST=127.0.0.1
PORT=${LAMPO_ZIPKIN_PORT:-9411}
VERSION=${LAMPO_ZIPKIN_VERSION:-3.6.1}
CACHE_ROOT=$(realpath -m -- "${LAMPO_CACHE:-$HOME/.cache/lampo}")
STATE_ROOT=$(realpath -m -- "${LAMPO_STATE_DIR:-$REPO/.run}")
HOME_DIR="$CACHE_ROOT/zipkin-$VERSION"
JAR="$HOME_DIR/zipkin-server-$VERSION-exec.jar"
STATE="$STATE_ROOT/zipkin"
PID_FILE="$STATE/zipkin.pid"
LOG="$STATE/zipkin.log"   # stdout/stderr of the JVM, truncated at every start
HEAP_OPTS=${LAMPO_ZIPKIN_HEAP_OPTS:--Xms64m -Xmx768m}  # 256 MB filled up under a system-test run
MAX_SPANS=${LAMPO_ZIPKIN_MAX_SPANS:-50000}
START_TIMEOUT=${LAMPO_ZIPKIN_START_TIMEOUT:-90}
STORAGE_WANTED=${LAMPO_ZIPKIN_STORAGE:-auto}
MYSQL_PORT=${LAMPO_MARIADB_PORT:-3307}
MYSQL_USER=${LAMPO_MARIADB_USER:-zipkin}
MYSQL_PASSWORD=${LAMPO_MARIADB_PASSWORD:-zipkin}
STOP_TIMEOUT=20

# settings of the shared helpers in lib.sh
TAG=zipkin
OWN_MARK="-Dlampo.zipkin.state=$STATE "   # in the command line of a Zipkin started by this script
LOCK_TIMEOUT=120
OUT_LOG=$LOG START_WHAT=Zipkin START_LOGS=$LOG READY_WORD=healthy READY_POLL=0.3
STOP_WHAT=Zipkin STOP_HOW="" STOPPED_NOTE=" (traces in MariaDB stay; in-memory ones are gone)"
STOP_POLL=0.25 STOP_POLLS_PER_S=4
# shellcheck source=deploy/local/lib.sh
source "$SCRIPT_DIR/lib.sh"

usage() { echo "usage: $0 {install|start|launch|stop|status|schema}" >&2; exit 2; }

# ---------------------------------------------------------------- helpers
healthy() {  # GET /health answers {"status":"UP",...}
  local body
  body=$(curl -fsS --max-time 2 "http://$HOST:$PORT/health" 2>/dev/null) || return 1
  [[ $body == *'"UP"'* ]]
}

# The storage to run with: mysql once MariaDB is installed (it must then answer: never a silent
# fall-back to memory), mem where it is not.
storage() {
  case $STORAGE_WANTED in
    mysql | mem) echo "$STORAGE_WANTED" ;;
    auto) if [[ -x /usr/sbin/mariadbd ]]; then echo mysql; else echo mem; fi ;;
    *) die "LAMPO_ZIPKIN_STORAGE must be auto, mysql or mem (got '$STORAGE_WANTED')" ;;
  esac
}

running_storage() {  # mysql or mem, from the /health of the running server ("MySQLStorage{...}")
  local body
  body=$(curl -fsS --max-time 2 "http://$HOST:$PORT/health" 2>/dev/null) || return 1
  case $body in
    *MySQLStorage*) echo mysql ;;
    *InMemoryStorage*) echo mem ;;
    *) return 1 ;;
  esac
}

need_mariadb() {  # Zipkin does not start on MySQL storage without its database
  port_open "$MYSQL_PORT" \
    || die "MariaDB does not answer on $HOST:$MYSQL_PORT (start it first: deploy/local/mariadb.sh start)"
}

need_curl() { command -v curl >/dev/null 2>&1 || die "curl not found on PATH (used for the /health check)"; }

# ---------------------------------------------------------------- install
do_install() {
  if [[ -s $JAR ]]; then
    say "Zipkin $VERSION already cached in $JAR"
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH (needed once to fetch Zipkin $VERSION)"
  install_lock "Zipkin $VERSION"
  if [[ -s $JAR ]]; then say "Zipkin $VERSION already cached in $JAR"; exec 8>&-; return 0; fi
  local tmp="$HOME_DIR/tmp.$$" mvn_log="$HOME_DIR/mvn.log"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  say "fetching io.zipkin:zipkin-server:$VERSION:jar:exec with Maven (~130 MB, once; log: $mvn_log)"
  # Run where no pom.xml is: dependency:copy needs no project.
  if ! (cd "$tmp" && mvn -q -B dependency:copy -Dartifact="io.zipkin:zipkin-server:$VERSION:jar:exec" \
        -DoutputDirectory="$tmp") >"$mvn_log" 2>&1; then
    rm -rf "$tmp"
    tail -n 20 "$mvn_log" >&2 || true
    die "mvn dependency:copy failed (see $mvn_log)"
  fi
  [[ -s $tmp/zipkin-server-$VERSION-exec.jar ]] || { rm -rf "$tmp"; die "mvn ran but zipkin-server-$VERSION-exec.jar is missing in $tmp"; }
  mv "$tmp/zipkin-server-$VERSION-exec.jar" "$JAR"
  rm -rf "$tmp"
  exec 8>&-
  say "installed $JAR"
}

# Zipkin's MySQL schema, as shipped in the jar (BOOT-INF/lib/zipkin-storage-mysql-v1-<version>.jar!/mysql.sql)
do_schema() {
  do_install >&2
  local py=${LAMPO_PYTHON:-python3}
  command -v "$py" >/dev/null 2>&1 || py=$REPO/.venv/bin/python
  "$py" - "$JAR" "$VERSION" <<'EOF' || die "no mysql.sql in $JAR"
import io, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as server:
    inner = server.read(f"BOOT-INF/lib/zipkin-storage-mysql-v1-{sys.argv[2]}.jar")
with zipfile.ZipFile(io.BytesIO(inner)) as storage:
    sys.stdout.write(storage.read("mysql.sql").decode())
EOF
}

# ---------------------------------------------------------------- readiness
ready_check() { healthy; }

wait_ready() {
  local pid=$1 start=$2 now
  wait_until_ready "$pid" "$start"
  now=$(date +%s)
  say "ready on http://$HOST:$PORT/zipkin/ (pid $pid) after $((now - start))s; log: $LOG"
}

# ---------------------------------------------------------------- commands
# Launches the JVM if it is not running; prints the pid. Caller holds the lock.
launch_locked() {
  local pid owner store have
  store=$(storage)
  if pid=$(running_pid); then
    have=$(running_storage) || have=$store   # still starting: keep it
    if [[ $have == "$store" ]]; then echo "$pid"; return 0; fi
    say "running (pid $pid) with $have storage; restarting it with $store storage" >&2
    stop_running "$pid" >&2
  fi
  rm -f "$PID_FILE"
  if port_open "$PORT"; then
    owner=$(port_owner "$PORT")
    die "port $HOST:$PORT is already in use by another process${owner:+ ($owner)}; stop it first"
  fi
  do_install >&2
  need_java
  [[ $store == mem ]] || need_mariadb
  # Zipkin reads its settings from the environment (STORAGE_TYPE, MEM_MAX_SPANS, MYSQL_*,
  # QUERY_PORT); armeria.ports[0].ip keeps it on loopback.
  # fd 9 (our lock) must not leak into the server, or the next run would block on it.
  # shellcheck disable=SC2086
  STORAGE_TYPE="$store" MEM_MAX_SPANS="$MAX_SPANS" QUERY_PORT="$PORT" \
    MYSQL_HOST="$HOST" MYSQL_TCP_PORT="$MYSQL_PORT" MYSQL_DB=zipkin MYSQL_USER="$MYSQL_USER" MYSQL_PASS="$MYSQL_PASSWORD" \
    setsid nohup java $HEAP_OPTS -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    "-Dlampo.zipkin.state=$STATE" -jar "$JAR" \
    --armeria.ports[0].ip="$HOST" --armeria.ports[0].port="$PORT" --armeria.ports[0].protocols=http \
    --logging.level.root=WARN --logging.level.zipkin2=INFO --spring.main.banner-mode=off \
    >"$LOG" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  if [[ $store == mem ]]; then
    local note=""
    [[ $STORAGE_WANTED == mem ]] || note="; MariaDB is not installed"
    say "starting Zipkin $VERSION (pid $pid, in-memory storage, at most $MAX_SPANS spans${note})" >&2
  else
    say "starting Zipkin $VERSION (pid $pid, MySQL storage on MariaDB $HOST:$MYSQL_PORT, database zipkin)" >&2
  fi
  echo "$pid"
}

stop_running() {  # stop_running PID: SIGTERM, then SIGKILL (caller holds the lock)
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * STOP_POLLS_PER_S; i++)); do alive "$pid" || break; sleep "$STOP_POLL"; done
  if alive "$pid"; then kill_pid "$pid" "$STOP_POLL"; fi
  rm -f "$PID_FILE"
}

storage_ok() { [[ $(running_storage) == "$(storage)" ]]; }

do_launch() {
  lock_state
  need_curl
  if healthy && running_pid >/dev/null && storage_ok; then say "already running on $HOST:$PORT"; return 0; fi
  launch_locked >/dev/null
}

do_start() {
  local pid start
  start=$(date +%s)
  lock_state
  need_curl
  if pid=$(running_pid) && healthy && storage_ok; then
    say "already running (pid $pid, $(storage) storage) on http://$HOST:$PORT/zipkin/; log: $LOG"
    return 0
  fi
  pid=$(launch_locked)
  wait_ready "$pid" "$start"
}

do_stop() { stop_ours; }

do_status() {
  show_status "on http://$HOST:$PORT/zipkin/ ($(running_storage || echo unknown) storage); log: $LOG" \
    "/health does not answer UP (starting or unhealthy); log: $LOG" healthy
}

[[ $# -eq 1 ]] || usage
case $1 in
  install) do_install ;;
  start) do_start ;;
  launch) do_launch ;;
  stop) do_stop ;;
  status) do_status ;;
  schema) do_schema ;;
  *) usage ;;
esac
