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
# Env: LAMPO_ZIPKIN_PORT (9411), LAMPO_ZIPKIN_VERSION (3.6.1), LAMPO_ZIPKIN_HEAP_OPTS ("-Xms64m -Xmx256m"),
#      LAMPO_ZIPKIN_MAX_SPANS (in-memory span limit, 100000), LAMPO_ZIPKIN_START_TIMEOUT (90 s),
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
HEAP_OPTS=${LAMPO_ZIPKIN_HEAP_OPTS:--Xms64m -Xmx256m}
MAX_SPANS=${LAMPO_ZIPKIN_MAX_SPANS:-100000}
START_TIMEOUT=${LAMPO_ZIPKIN_START_TIMEOUT:-90}
STOP_TIMEOUT=20

say() { echo "[zipkin] $*"; }
die() { echo "[zipkin] ERROR: $*" >&2; exit 1; }
usage() { echo "usage: $0 {install|start|launch|stop|status}" >&2; exit 2; }

# ---------------------------------------------------------------- helpers
alive() {  # live process (zombies awaiting reaping count as gone)
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $st && $st != Z && $st != X ]]
}

port_open() { timeout 2 bash -c "</dev/tcp/$HOST/$1" 2>/dev/null; }

port_owner() {  # best effort: "java(pid=123)" or empty
  command -v ss >/dev/null 2>&1 || return 0
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*))' | head -n1 | sed 's/users:((//; s/))$//' || true
}

healthy() {  # GET /health answers {"status":"UP",...}
  local body
  body=$(curl -fsS --max-time 2 "http://$HOST:$PORT/health" 2>/dev/null) || return 1
  [[ $body == *'"UP"'* ]]
}

read_pid() { if [[ -f $PID_FILE ]]; then tr -dc '0-9' <"$PID_FILE"; fi; }

# True when $1 is a live Zipkin started by this script (its command line names our state dir).
is_ours() {
  local pid=$1
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-Dlampo.zipkin.state=$STATE "
}

running_pid() {
  local pid
  pid=$(read_pid)
  if is_ours "$pid"; then echo "$pid"; return 0; fi
  pid=$(pgrep -f -- "-Dlampo.zipkin.state=$STATE " 2>/dev/null | head -n1 || true)
  if is_ours "$pid"; then echo "$pid" >"$PID_FILE" 2>/dev/null || true; echo "$pid"; return 0; fi
  return 1
}

need_java() { command -v java >/dev/null 2>&1 || die "java not found on PATH (Java 17+ required)"; }
need_curl() { command -v curl >/dev/null 2>&1 || die "curl not found on PATH (used for the /health check)"; }

# ---------------------------------------------------------------- install
do_install() {
  if [[ -s $JAR ]]; then
    say "Zipkin $VERSION already cached in $JAR"
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH (needed once to fetch Zipkin $VERSION)"
  mkdir -p "$HOME_DIR"
  exec 8>"$HOME_DIR/.install.lock"
  if ! flock -n 8; then
    say "another install of Zipkin $VERSION is running; waiting for it"
    flock -w 1800 8 || die "timed out waiting for the other install (lock $HOME_DIR/.install.lock)"
  fi
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
wait_ready() {
  local pid=$1 start=$2 now
  while :; do
    if ! alive "$pid"; then
      rm -f "$PID_FILE"
      echo "----- last lines of $LOG -----" >&2
      tail -n 30 "$LOG" >&2 || true
      die "Zipkin (pid $pid) exited during startup; see $LOG"
    fi
    if healthy; then break; fi
    now=$(date +%s)
    if (( now - start >= START_TIMEOUT )); then
      die "Zipkin (pid $pid) not healthy after ${START_TIMEOUT}s; still running -- see $LOG (stop it with: $0 stop)"
    fi
    sleep 0.3
  done
  now=$(date +%s)
  say "ready on http://$HOST:$PORT/zipkin/ (pid $pid) after $((now - start))s; log: $LOG"
}

# ---------------------------------------------------------------- commands
# Launches the JVM if it is not running; prints the pid. Caller holds the lock.
launch_locked() {
  local pid p owner
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

lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock -w 120 9 || die "another zipkin.sh is busy with $STATE (lock $STATE/.lock)"
}

do_launch() {
  lock
  need_curl
  if healthy && running_pid >/dev/null; then say "already running on $HOST:$PORT"; return 0; fi
  launch_locked >/dev/null
}

do_start() {
  local pid start
  start=$(date +%s)
  lock
  need_curl
  if pid=$(running_pid) && healthy; then
    say "already running (pid $pid) on http://$HOST:$PORT/zipkin/; log: $LOG"
    return 0
  fi
  pid=$(launch_locked)
  wait_ready "$pid" "$start"
}

do_stop() {
  local pid i
  lock
  if ! pid=$(running_pid); then
    rm -f "$PID_FILE"
    say "not running"
    return 0
  fi
  say "stopping Zipkin (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 4; i++)); do
    alive "$pid" || break
    sleep 0.25
  done
  if alive "$pid"; then
    say "still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do alive "$pid" || break; sleep 0.25; done
    alive "$pid" && die "pid $pid survived SIGKILL"
  fi
  rm -f "$PID_FILE"
  say "stopped (in-memory traces are gone)"
}

do_status() {
  local pid
  if pid=$(running_pid); then
    if healthy; then
      say "running (pid $pid) on http://$HOST:$PORT/zipkin/; log: $LOG"
    else
      say "running (pid $pid) but /health does not answer UP (starting or unhealthy); log: $LOG"
    fi
    return 0
  fi
  say "not running (state: $STATE)"
  return 3
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
