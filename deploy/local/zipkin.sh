#!/usr/bin/env bash
# Local Zipkin server (tracing backend with a web UI) without Docker, in-memory storage.
# The executable jar io.zipkin:zipkin-server:<version>:jar:exec comes from Maven Central once and
# is cached; see deploy/local/README.md.
#
#   deploy/local/zipkin.sh install|start|launch|stop|status
#
# `launch` starts the server without waiting for it (a later `start` waits for readiness), so
# `make infra` can overlap its JVM start-up with PostgreSQL and Kafka.
#
# Env: LAMPO_ZIPKIN_PORT (9411), LAMPO_ZIPKIN_VERSION (3.6.1), LAMPO_ZIPKIN_HEAP_OPTS ("-Xms64m -Xmx768m"),
#      LAMPO_ZIPKIN_MAX_SPANS (in-memory span limit, 50000), LAMPO_ZIPKIN_START_TIMEOUT (90 s),
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
STOP_TIMEOUT=20

# settings of the shared helpers in lib.sh
TAG=zipkin
OWN_MARK="-Dlampo.zipkin.state=$STATE "   # in the command line of a Zipkin started by this script
LOCK_TIMEOUT=120
OUT_LOG=$LOG START_WHAT=Zipkin START_LOGS=$LOG READY_WORD=healthy READY_POLL=0.3
STOP_WHAT=Zipkin STOP_HOW="" STOPPED_NOTE=" (in-memory traces are gone)"
STOP_POLL=0.25 STOP_POLLS_PER_S=4
# shellcheck source=deploy/local/lib.sh
source "$SCRIPT_DIR/lib.sh"

usage() { echo "usage: $0 {install|start|launch|stop|status}" >&2; exit 2; }

# ---------------------------------------------------------------- helpers
healthy() {  # GET /health answers {"status":"UP",...}
  local body
  body=$(curl -fsS --max-time 2 "http://$HOST:$PORT/health" 2>/dev/null) || return 1
  [[ $body == *'"UP"'* ]]
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
  local pid owner
  if pid=$(running_pid); then echo "$pid"; return 0; fi
  rm -f "$PID_FILE"
  if port_open "$PORT"; then
    owner=$(port_owner "$PORT")
    die "port $HOST:$PORT is already in use by another process${owner:+ ($owner)}; stop it first"
  fi
  do_install >&2
  need_java
  # Zipkin reads its settings from the environment (STORAGE_TYPE, MEM_MAX_SPANS, QUERY_PORT);
  # armeria.ports[0].ip keeps it on loopback.
  # fd 9 (our lock) must not leak into the server, or the next run would block on it.
  # shellcheck disable=SC2086
  STORAGE_TYPE=mem MEM_MAX_SPANS="$MAX_SPANS" QUERY_PORT="$PORT" \
    setsid nohup java $HEAP_OPTS -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    "-Dlampo.zipkin.state=$STATE" -jar "$JAR" \
    --armeria.ports[0].ip="$HOST" --armeria.ports[0].port="$PORT" --armeria.ports[0].protocols=http \
    --logging.level.root=WARN --logging.level.zipkin2=INFO --spring.main.banner-mode=off \
    >"$LOG" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  say "starting Zipkin $VERSION (pid $pid, in-memory storage, at most $MAX_SPANS spans)" >&2
  echo "$pid"
}

do_launch() {
  lock_state
  need_curl
  if healthy && running_pid >/dev/null; then say "already running on $HOST:$PORT"; return 0; fi
  launch_locked >/dev/null
}

do_start() {
  local pid start
  start=$(date +%s)
  lock_state
  need_curl
  if pid=$(running_pid) && healthy; then
    say "already running (pid $pid) on http://$HOST:$PORT/zipkin/; log: $LOG"
    return 0
  fi
  pid=$(launch_locked)
  wait_ready "$pid" "$start"
}

do_stop() { stop_ours; }

do_status() {
  show_status "on http://$HOST:$PORT/zipkin/; log: $LOG" \
    "/health does not answer UP (starting or unhealthy); log: $LOG" healthy
}

[[ $# -eq 1 ]] || usage
case $1 in
  install) do_install ;;
  start) do_start ;;
  launch) do_launch ;;
  stop) do_stop ;;
  status) do_status ;;
  *) usage ;;
esac
