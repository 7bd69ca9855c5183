# shellcheck shell=bash
# Process management shared by deploy/local/{kafka,zipkin,postgres}.sh; sourced, never run.
# Only functions live here; they read the sourcing script's variables when called:
#   TAG        message prefix and script name ("kafka" -> "[kafka] ...", "another kafka.sh ...")
#   HOST       address the server listens on (port_open)
#   STATE      state directory (lock file, status message)
#   PID_FILE   pid file of the server
#   OWN_MARK   text in the command line of a server started by the script (is_ours, running_pid)
#   LOCK_TIMEOUT                seconds to wait for the state lock (lock_state)
#   HOME_DIR                    install directory (install_lock)
#   OUT_LOG, START_TIMEOUT, START_WHAT, START_LOGS, READY_WORD, READY_POLL  (wait_until_ready)
#   STOP_TIMEOUT, STOP_POLL, STOP_POLLS_PER_S, STOP_WHAT, STOP_HOW, STOPPED_NOTE   (stop_ours)
# shellcheck disable=SC2154  # the variables above are set by the sourcing script

say() { echo "[$TAG] $*"; }
die() { echo "[$TAG] ERROR: $*" >&2; exit 1; }

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

need_java() { command -v java >/dev/null 2>&1 || die "java not found on PATH (Java 17+ required)"; }

read_pid() { if [[ -f $PID_FILE ]]; then tr -dc '0-9' <"$PID_FILE"; fi; }

# True when $1 is a live server started by this script (its command line holds $OWN_MARK).
is_ours() {
  local pid=$1
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$OWN_MARK"
}

running_pid() {
  local pid
  pid=$(read_pid)
  if is_ours "$pid"; then echo "$pid"; return 0; fi
  # pid file lost? look for a server started with our marker
  pid=$(pgrep -f -- "$OWN_MARK" 2>/dev/null | head -n1 || true)
  if is_ours "$pid"; then echo "$pid" >"$PID_FILE" 2>/dev/null || true; echo "$pid"; return 0; fi
  return 1
}

lock_state() {  # one script at a time per state directory (fd 9)
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock -w "$LOCK_TIMEOUT" 9 || die "another $TAG.sh is busy with $STATE (lock $STATE/.lock)"
}

install_lock() {  # install_lock WHAT: one install at a time into $HOME_DIR (fd 8)
  mkdir -p "$HOME_DIR"
  exec 8>"$HOME_DIR/.install.lock"
  if ! flock -n 8; then
    say "another install of $1 is running; waiting for it"
    flock -w 1800 8 || die "timed out waiting for the other install (lock $HOME_DIR/.install.lock)"
  fi
}

# wait_until_ready PID START_EPOCH: returns once ready_check (defined by the script) passes; dies
# when PID exits or START_TIMEOUT seconds have passed since START_EPOCH.
wait_until_ready() {
  local pid=$1 start=$2 now
  while :; do
    if ! alive "$pid"; then
      rm -f "$PID_FILE"
      echo "----- last lines of $OUT_LOG -----" >&2
      tail -n 30 "$OUT_LOG" >&2 || true
      die "$START_WHAT (pid $pid) exited during startup; see $START_LOGS"
    fi
    if ready_check; then break; fi
    now=$(date +%s)
    if (( now - start >= START_TIMEOUT )); then
      die "$START_WHAT (pid $pid) not $READY_WORD after ${START_TIMEOUT}s; still running -- see $OUT_LOG (stop it with: $0 stop)"
    fi
    sleep "$READY_POLL"
  done
}

kill_pid() {  # kill_pid PID POLL: SIGKILL, then wait up to 20 polls for it to go
  local i
  kill -KILL "$1" 2>/dev/null || true
  for ((i = 0; i < 20; i++)); do alive "$1" || break; sleep "$2"; done
  if alive "$1"; then die "pid $1 survived SIGKILL"; fi
}

stop_ours() {  # SIGTERM, then SIGKILL after STOP_TIMEOUT seconds
  local pid i
  lock_state
  if ! pid=$(running_pid); then
    rm -f "$PID_FILE"
    say "not running"
    return 0
  fi
  say "stopping $STOP_WHAT (pid $pid$STOP_HOW)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * STOP_POLLS_PER_S; i++)); do
    alive "$pid" || break
    sleep "$STOP_POLL"
  done
  if alive "$pid"; then
    say "still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
    kill_pid "$pid" "$STOP_POLL"
  fi
  rm -f "$PID_FILE"
  say "stopped$STOPPED_NOTE"
}

# show_status RUNNING_NOTE UNHEALTHY_NOTE CHECK...: 0 when our server runs ("running (pid N)
# RUNNING_NOTE" if CHECK passes, else "... but UNHEALTHY_NOTE"), 3 when it does not.
show_status() {
  local pid
  if pid=$(running_pid); then
    if "${@:3}"; then
      say "running (pid $pid) $1"
    else
      say "running (pid $pid) but $2"
    fi
    return 0
  fi
  say "not running (state: $STATE)"
  return 3
}

check_traverse() {  # check_traverse DIR SERVER: the server's OS user ($OS_USER) must be able to enter every directory above DIR
  [[ $EUID -eq 0 ]] || return 0
  id -u "$OS_USER" >/dev/null 2>&1 || die "OS user '$OS_USER' does not exist (is $2 installed? try: $0 install)"
  local path=/ part
  local -a parts
  IFS='/' read -r -a parts <<<"${1%/*}"
  for part in "" "${parts[@]}"; do
    [[ -n $part ]] && path="${path%/}/$part"
    [[ -z $part && $path != / ]] && continue
    if ! runuser -u "$OS_USER" -- test -x "$path" 2>/dev/null; then
      die "OS user '$OS_USER' cannot enter directory $path ($(stat -c '%A %U:%G' "$path")); run 'chmod o+x $path' or set LAMPO_STATE_DIR to a directory it can reach"
    fi
  done
}
