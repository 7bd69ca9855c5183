#!/usr/bin/env bash
# Local mail catcher: a real SMTP server (aiosmtpd, `python -m lampo.mail.catcher`) on
# 127.0.0.1:2525 that keeps every message it receives as an .eml file under .run/mail/ (the
# one-time codes and notices the privacy centre sends; nothing leaves the machine). The services
# send to it through LAMPO_SMTP_HOST/LAMPO_SMTP_PORT (deploy/local/services.sh passes them).
#
#   deploy/local/mail.sh start|stop|status
#
# Env: LAMPO_SMTP_PORT (2525), LAMPO_MAIL_DIR (default <state>/mail), LAMPO_STATE_DIR (default <repo>/.run).
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd -- "$SCRIPT_DIR/../.." && pwd -P)

HOST=127.0.0.1
PORT=${LAMPO_SMTP_PORT:-2525}
STATE_ROOT=$(realpath -m -- "${LAMPO_STATE_DIR:-$REPO/.run}")
STATE="$STATE_ROOT/mailcatcher"
MAIL_DIR=$(realpath -m -- "${LAMPO_MAIL_DIR:-$STATE_ROOT/mail}")
PID_FILE="$STATE/mail.pid"
LOG="$STATE/mail.log"
PY=${LAMPO_PYTHON:-$REPO/.venv/bin/python}
START_TIMEOUT=20

# settings of the shared helpers in lib.sh
TAG=mail
OWN_MARK="lampo.mail.catcher --port $PORT --dir $MAIL_DIR"   # in the command line of our server
LOCK_TIMEOUT=60
OUT_LOG=$LOG START_WHAT="the mail catcher" START_LOGS=$LOG READY_WORD=listening READY_POLL=0.2
STOP_WHAT="the mail catcher" STOP_HOW="" STOPPED_NOTE=" (the mail in $MAIL_DIR stays)"
STOP_TIMEOUT=10 STOP_POLL=0.1 STOP_POLLS_PER_S=10
# shellcheck source=deploy/local/lib.sh
source "$SCRIPT_DIR/lib.sh"

usage() { echo "usage: $0 {start|stop|status}" >&2; exit 2; }

ready_check() { port_open "$PORT"; }

do_start() {
  local pid start owner
  start=$(date +%s)
  lock_state
  if pid=$(running_pid) && port_open "$PORT"; then
    say "already running (pid $pid) on smtp://$HOST:$PORT; mail in $MAIL_DIR"
    return 0
  fi
  rm -f "$PID_FILE"
  if port_open "$PORT"; then
    owner=$(port_owner "$PORT")
    die "port $HOST:$PORT is already in use by another process${owner:+ ($owner)}; stop it first"
  fi
  [[ -x $PY ]] || die "$PY not found (run make install first)"
  mkdir -p "$MAIL_DIR"
  # fd 9 (our lock) must not leak into the server, or the next run would block on it.
  setsid nohup "$PY" -m lampo.mail.catcher --port "$PORT" --dir "$MAIL_DIR" --host "$HOST" \
    >"$LOG" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  wait_until_ready "$pid" "$start"
  say "ready on smtp://$HOST:$PORT (pid $pid); mail kept in $MAIL_DIR; log: $LOG"
}

do_stop() { stop_ours; }

do_status() {
  show_status "on smtp://$HOST:$PORT; mail in $MAIL_DIR ($(find "$MAIL_DIR" -maxdepth 1 -name '*.eml' 2>/dev/null | wc -l) messages)" \
    "port $PORT does not answer; log: $LOG" port_open "$PORT"
}

[[ $# -eq 1 ]] || usage
case $1 in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  *) usage ;;
esac
