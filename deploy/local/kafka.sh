#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, broker+controller) without Docker.
# The broker's jars come from Maven Central via kafka/pom.xml; see deploy/local/README.md.
#
#   deploy/local/kafka.sh install|start|stop|status
#
# Env: LAMPO_KAFKA_PORT (9092), LAMPO_KAFKA_CONTROLLER_PORT (9093),
#      LAMPO_CACHE (jar cache, default ~/.cache/lampo), LAMPO_STATE_DIR (default <repo>/.run),
#      LAMPO_PYTHON (python with aiokafka for an extra readiness check, default <repo>/.venv/bin/python),
#      LAMPO_KAFKA_HEAP_OPTS (default "-Xms256m -Xmx512m"), LAMPO_KAFKA_START_TIMEOUT (default 120 s).
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd -- "$SCRIPT_DIR/../.." && pwd -P)
POM="$SCRIPT_DIR/kafka/pom.xml"

HOST=127.0.0.1
PORT=${LAMPO_KAFKA_PORT:-9092}
CONTROLLER_PORT=${LAMPO_KAFKA_CONTROLLER_PORT:-9093}
CACHE_ROOT=$(realpath -m -- "${LAMPO_CACHE:-$HOME/.cache/lampo}")
STATE_ROOT=$(realpath -m -- "${LAMPO_STATE_DIR:-$REPO/.run}")
STATE="$STATE_ROOT/kafka"
DATA="$STATE/data"
LOGS="$STATE/logs"
CONF="$STATE/server.properties"
LOG4J_CONF="$STATE/log4j2.properties"
LOG4J_TOOLS_CONF="$STATE/log4j2-tools.properties"
PID_FILE="$STATE/kafka.pid"
OUT_LOG="$LOGS/kafka.out"      # stdout/stderr of the JVM, truncated at every start
SERVER_LOG="$LOGS/server.log"  # log4j file appender (rolling)
HEAP_OPTS=${LAMPO_KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}
START_TIMEOUT=${LAMPO_KAFKA_START_TIMEOUT:-120}
STOP_TIMEOUT=60

say() { echo "[kafka] $*"; }
die() { echo "[kafka] ERROR: $*" >&2; exit 1; }

usage() { echo "usage: $0 {install|start|stop|status}" >&2; exit 2; }

kafka_version() {
  [[ -f $POM ]] || die "missing $POM"
  local v
  v=$(sed -n 's:.*<kafka.version>[[:space:]]*\([^<[:space:]]*\)[[:space:]]*</kafka.version>.*:\1:p' "$POM" | head -n1)
  [[ -n $v ]] || die "cannot read <kafka.version> from $POM"
  echo "$v"
}

VERSION=$(kafka_version)
HOME_DIR="$CACHE_ROOT/kafka-$VERSION"
LIBS="$HOME_DIR/libs"
MARKER="$HOME_DIR/.libs-complete"   # holds the sha256 of the pom the jars were resolved from

pom_sum() { sha256sum "$POM" | cut -d' ' -f1; }

installed() { [[ -f $MARKER && $(cat "$MARKER") == "$(pom_sum)" && -d $LIBS ]]; }

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

read_pid() { if [[ -f $PID_FILE ]]; then tr -dc '0-9' <"$PID_FILE"; fi; }

# True when $1 is a live Kafka broker started from our config.
is_our_broker() {
  local pid=$1
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "kafka.Kafka $CONF"
}

running_pid() {
  local pid
  pid=$(read_pid)
  if is_our_broker "$pid"; then echo "$pid"; return 0; fi
  # pid file lost? look for a broker started with our exact config path
  pid=$(pgrep -f -- "kafka.Kafka $CONF" 2>/dev/null | head -n1 || true)
  if is_our_broker "$pid"; then echo "$pid" >"$PID_FILE" 2>/dev/null || true; echo "$pid"; return 0; fi
  return 1
}

need_java() { command -v java >/dev/null 2>&1 || die "java not found on PATH (Java 17+ required)"; }

# ---------------------------------------------------------------- install
do_install() {
  if installed; then
    say "Kafka $VERSION jars already cached in $LIBS"
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH (needed once to fetch Kafka $VERSION jars)"
  mkdir -p "$HOME_DIR"
  exec 8>"$HOME_DIR/.install.lock"
  if ! flock -n 8; then
    say "another install of Kafka $VERSION is running; waiting for it"
    flock -w 1800 8 || die "timed out waiting for the other install (lock $HOME_DIR/.install.lock)"
  fi
  if installed; then say "Kafka $VERSION jars already cached in $LIBS"; exec 8>&-; return 0; fi
  local tmp="$HOME_DIR/libs.tmp.$$" mvn_log="$HOME_DIR/mvn.log"
  rm -rf "$tmp"
  say "resolving Kafka $VERSION jars with Maven into $LIBS (first time can take minutes; log: $mvn_log)"
  if ! (cd "$SCRIPT_DIR/kafka" && mvn -q -B -f "$POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp") >"$mvn_log" 2>&1; then
    rm -rf "$tmp"
    tail -n 20 "$mvn_log" >&2 || true
    die "mvn dependency:copy-dependencies failed (see $mvn_log)"
  fi
  compgen -G "$tmp/kafka_2.13-$VERSION.jar" >/dev/null || { rm -rf "$tmp"; die "mvn ran but kafka_2.13-$VERSION.jar is missing in $tmp"; }
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  pom_sum >"$MARKER"
  exec 8>&-
  say "installed $(find "$LIBS" -name '*.jar' | wc -l) jars into $LIBS"
}

# ---------------------------------------------------------------- config
write_configs() {
  mkdir -p "$DATA" "$LOGS"
  cat >"$CONF.tmp" <<EOF
# Generated by deploy/local/kafka.sh -- edits are overwritten at every start.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Topics are created explicitly by the services (partitions/configs of our choosing).
auto.create.topics.enable=false
# Lighter on 2 cores
num.network.threads=2
num.io.threads=2
background.threads=2
group.coordinator.threads=1
offsets.topic.num.partitions=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.num.partitions=1
log.cleaner.dedupe.buffer.size=16777216
EOF
  mv "$CONF.tmp" "$CONF"

  cat >"$LOG4J_CONF.tmp" <<'EOF'
# Generated by deploy/local/kafka.sh (broker logging: console -> kafka.out, file -> server.log)
status = warn
name = lampo-kafka
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
rootLogger.appenderRef.file.ref = FILE
# quiet noisy loggers
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
logger.appinfo.name = org.apache.kafka.common.utils.AppInfoParser
logger.appinfo.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.metrics.name = org.apache.kafka.common.metrics
logger.metrics.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.reqchan.name = kafka.network.RequestChannel$
logger.reqchan.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
logger.storage.name = org.apache.kafka.storage.internals.log
logger.storage.level = WARN
logger.unifiedlog.name = kafka.log.UnifiedLog
logger.unifiedlog.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
logger.loader.name = org.apache.kafka.image.loader.MetadataLoader
logger.loader.level = WARN
logger.reaper.name = kafka.server.ClientQuotaManager$ThrottledChannelReaper
logger.reaper.level = WARN
logger.purgatory.name = org.apache.kafka.server.purgatory
logger.purgatory.level = WARN
EOF
  mv "$LOG4J_CONF.tmp" "$LOG4J_CONF"

  cat >"$LOG4J_TOOLS_CONF.tmp" <<'EOF'
# Generated by deploy/local/kafka.sh (StorageTool: warnings to stderr only)
status = warn
name = lampo-kafka-tools
appender.console.type = Console
appender.console.name = STDERR
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
EOF
  mv "$LOG4J_TOOLS_CONF.tmp" "$LOG4J_TOOLS_CONF"
}

storage_tool() {
  java -Xmx256m -cp "$LIBS/*" -Dlog4j2.configurationFile="$LOG4J_TOOLS_CONF" kafka.tools.StorageTool "$@"
}

format_storage() {
  if [[ -f $DATA/meta.properties ]]; then
    return 0
  fi
  if [[ -n $(ls -A "$DATA" 2>/dev/null) ]]; then
    die "$DATA is not empty but has no meta.properties; remove it (rm -rf '$DATA') to reformat"
  fi
  local id
  id=$(storage_tool random-uuid 2>>"$LOGS/format.log" | tail -n1) || die "StorageTool random-uuid failed (see $LOGS/format.log)"
  [[ $id =~ ^[A-Za-z0-9_-]{22}$ ]] || die "StorageTool random-uuid printed an unexpected cluster id: '$id'"
  say "formatting storage in $DATA (cluster id $id)"
  storage_tool format -t "$id" -c "$CONF" --standalone >>"$LOGS/format.log" 2>&1 \
    || { tail -n 20 "$LOGS/format.log" >&2; die "StorageTool format failed (see $LOGS/format.log)"; }
  [[ -f $DATA/meta.properties ]] || die "format finished but $DATA/meta.properties is missing"
}

# ---------------------------------------------------------------- readiness
PY=""
pick_python() {
  local c
  for c in "${LAMPO_PYTHON:-}" "$REPO/.venv/bin/python"; do
    if [[ -n $c && -x $c ]] && "$c" -c 'import aiokafka' >/dev/null 2>&1; then PY=$c; return 0; fi
  done
  return 0
}

admin_check() {  # client-level check; returns 0 when describe_cluster answers
  [[ -n $PY ]] || return 0
  timeout 20 "$PY" - "$HOST:$PORT" <<'EOF' >/dev/null 2>&1
import asyncio, sys
from aiokafka.admin import AIOKafkaAdminClient
async def main():
    admin = AIOKafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=5000)
    await admin.start()
    try:
        info = await admin.describe_cluster()
        assert info.get("brokers"), info
    finally:
        await admin.close()
asyncio.run(main())
EOF
}

wait_ready() {
  local pid=$1 start=$2 now
  pick_python
  while :; do
    if ! alive "$pid"; then
      rm -f "$PID_FILE"
      echo "----- last lines of $OUT_LOG -----" >&2
      tail -n 30 "$OUT_LOG" >&2 || true
      die "broker (pid $pid) exited during startup; see $OUT_LOG and $SERVER_LOG"
    fi
    if port_open "$PORT" && grep -q 'Kafka Server started' "$OUT_LOG" 2>/dev/null; then
      if admin_check; then break; fi
    fi
    now=$(date +%s)
    if (( now - start >= START_TIMEOUT )); then
      die "broker (pid $pid) not ready after ${START_TIMEOUT}s; still running -- see $OUT_LOG (stop it with: $0 stop)"
    fi
    sleep 0.5
  done
  now=$(date +%s)
  say "ready on $HOST:$PORT (pid $pid) after $((now - start))s${PY:+, describe_cluster OK}"
}

# ---------------------------------------------------------------- commands
do_start() {
  local pid start
  start=$(date +%s)
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock -w 180 9 || die "another kafka.sh is busy with $STATE (lock $STATE/.lock)"

  if pid=$(running_pid); then
    if port_open "$PORT"; then
      say "already running (pid $pid) on $HOST:$PORT; log: $SERVER_LOG"
      return 0
    fi
    say "broker pid $pid is alive but $HOST:$PORT is not open yet; waiting"
    wait_ready "$pid" "$start"
    say "log: $SERVER_LOG"
    return 0
  fi
  rm -f "$PID_FILE"

  local p owner
  for p in "$PORT" "$CONTROLLER_PORT"; do
    if port_open "$p"; then
      owner=$(port_owner "$p")
      die "port $HOST:$p is already in use by another process${owner:+ ($owner)}; stop it first"
    fi
  done

  do_install
  need_java
  write_configs
  format_storage

  say "starting Kafka $VERSION (state: $STATE)"
  # fd 9 (our lock) must not leak into the broker, or the next run would block on it.
  # shellcheck disable=SC2086
  setsid nohup java $HEAP_OPTS \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J_CONF" -Dkafka.logs.dir="$LOGS" \
    -cp "$LIBS/*" kafka.Kafka "$CONF" >"$OUT_LOG" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  say "pid $pid; log: $SERVER_LOG (stdout: $OUT_LOG)"
  wait_ready "$pid" "$start"
}

do_stop() {
  local pid i
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock -w 180 9 || die "another kafka.sh is busy with $STATE (lock $STATE/.lock)"
  if ! pid=$(running_pid); then
    rm -f "$PID_FILE"
    say "not running"
    return 0
  fi
  say "stopping broker (pid $pid, SIGTERM: controlled shutdown)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 2; i++)); do
    alive "$pid" || break
    sleep 0.5
  done
  if alive "$pid"; then
    say "still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do alive "$pid" || break; sleep 0.5; done
    alive "$pid" && die "pid $pid survived SIGKILL"
  fi
  rm -f "$PID_FILE"
  say "stopped; log: $SERVER_LOG"
}

do_status() {
  local pid
  if pid=$(running_pid); then
    if port_open "$PORT"; then
      say "running (pid $pid) on $HOST:$PORT; log: $SERVER_LOG"
    else
      say "running (pid $pid) but $HOST:$PORT is not open (starting or unhealthy); log: $SERVER_LOG"
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
  stop) do_stop ;;
  status) do_status ;;
  *) usage ;;
esac
