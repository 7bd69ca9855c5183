#!/usr/bin/env bash
# `make test-faults`: the fault tests against a broker and a database of their own (never the
# shared ones on 9092/5432, which the tests would otherwise stop and restart under other users).
# Starts a fresh Kafka (its data wiped, so "replay from offset 0" replays only this run's records)
# and PostgreSQL under LAMPO_STATE_DIR=.run/faults, provisions the topics, runs pytest
# tests/faults (extra arguments are passed on), and stops both afterwards, also on failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

export LAMPO_STATE_DIR="${LAMPO_FAULTS_STATE_DIR:-$PWD/.run/faults}"
export LAMPO_KAFKA_PORT="${LAMPO_FAULTS_KAFKA_PORT:-19092}"
export LAMPO_KAFKA_CONTROLLER_PORT="${LAMPO_FAULTS_KAFKA_CONTROLLER_PORT:-19093}"
export LAMPO_PG_PORT="${LAMPO_FAULTS_PG_PORT:-15432}"
export LAMPO_KAFKA_BOOTSTRAP="127.0.0.1:$LAMPO_KAFKA_PORT"
export LAMPO_PG_URL="postgresql://lampo:lampo@127.0.0.1:$LAMPO_PG_PORT/postgres"
export LAMPO_ZIPKIN_PORT="${LAMPO_FAULTS_ZIPKIN_PORT:-19411}"  # nothing listens: spans stay with the test's OTLP receiver
export LAMPO_KAFKA_HEAP_OPTS="${LAMPO_KAFKA_HEAP_OPTS:--Xms128m -Xmx384m}"
export LAMPO_FAULTS=1  # tests/faults/conftest.py skips everything without it
unset LAMPO_ZIPKIN_ENDPOINT OTEL_EXPORTER_OTLP_ENDPOINT

stop_infra() {
  deploy/local/kafka.sh stop || true
  deploy/local/postgres.sh stop || true
}
trap 'rc=$?; echo "[faults] stopping the fault-test broker and database"; stop_infra; exit $rc' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

t0=$SECONDS
stop_infra  # a previous run that was killed may have left them running
rm -rf "$LAMPO_STATE_DIR/kafka" "$LAMPO_STATE_DIR/logs"
mkdir -p "$LAMPO_STATE_DIR/logs"
deploy/local/postgres.sh start
deploy/local/kafka.sh start
.venv/bin/lampo topics provision
echo "[faults] infrastructure ready after $((SECONDS - t0)) s (kafka :$LAMPO_KAFKA_PORT, postgres :$LAMPO_PG_PORT)"
.venv/bin/python -m pytest -p no:cacheprovider tests/faults "$@"
echo "[faults] finished in $((SECONDS - t0)) s; service logs: $LAMPO_STATE_DIR/logs/"
