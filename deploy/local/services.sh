#!/usr/bin/env bash
# Starts, stops and reports the suite's services in the background (one process each, with a
# pid file and a log file under .run/services/). Only installed services are started.
#
# REPLICAS=n (default 1) starts n instances of every service in one consumer group and one
# database: instance 0 is <name> (pid/log <name>.pid, <name>.log, the port of services.txt),
# instance i is <name>.<i> (<name>.<i>.pid, <name>.<i>.log, port + i * REPLICA_PORT_STEP, default
# 100: registry.1 on 8201). The other services call instance 0. Inbound topics have 6 partitions
# (lampo topics provision), so up to 6 instances of a consumer share the work.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
state="${LAMPO_STATE_DIR:-$repo/.run}"
dir="$state/services"
mkdir -p "$dir"
bin="$repo/.venv/bin"
# How a service process runs (deploy/runtime.env, as docker-compose.yml): the caller's value wins.
while IFS='=' read -r setting value; do
  if [[ "$setting" =~ ^[A-Z][A-Z0-9_]*$ ]]; then export "$setting=${!setting:-$value}"; fi
done < "$repo/deploy/runtime.env"

master_key() {
  local f="$state/master.key"
  if [ ! -s "$f" ]; then
    (umask 077; "$bin/lampo" keygen > "$f")
    echo "[services] created a local master key in $f (keep it: without it the data keys are unreadable)" >&2
  fi
  cat "$f"
}

# The web pages' session-cookie key (lampo.web), one for every instance (.run/web-session.key,
# 0600, made once): a session opened on one instance holds on the others.
web_session_key() {
  local f="$state/web-session.key"
  if [ ! -s "$f" ]; then
    (umask 077; "$bin/python" -c 'import secrets; print(secrets.token_hex(32))' > "$f")
  fi
  cat "$f"
}

# HTTP credentials: each caller (every service, the portal, the outside channel that submits
# requests, and the marketing system, which reads the direct-marketing audience) has its own token in .run/api/<caller>.token (0600, made once). A service presents its
# own (LAMPO_API_TOKEN) and answers the callers `answers` names (LAMPO_API_CLIENTS, JSON).
api_token() {
  local f="$state/api/$1.token"
  if [ ! -s "$f" ]; then
    (umask 077; mkdir -p "$state/api"; "$bin/python" -c 'import secrets; print(secrets.token_urlsafe(32))' > "$f")
  fi
  cat "$f"
}

# Authenticity (lampo.signing, docs/SECURITY.md): one Ed25519 key per signer, kept in
# .run/keys/<signer>.key (the DSAR service signs as "coordinator"); every service trusts every
# signer's public key, and the public keys listed in .run/keys/<signer>.previous while a key is
# being rotated.
signer_of() { if [ "$1" = dsar ]; then echo coordinator; else echo "$1"; fi; }

signing_key() {
  local f="$state/keys/$1.key"
  if [ ! -s "$f" ]; then
    (umask 077; mkdir -p "$state/keys"; "$bin/lampo" signing-keygen | head -1 > "$f")
    echo "[services] created the signing key of $1 in $f" >&2
  fi
  cat "$f"
}

trusted_keys() {
  local signers=()
  while read -r name _; do
    [ -x "$bin/lampo-$name" ] || continue
    signing_key "$(signer_of "$name")" > /dev/null
    signers+=("$(signer_of "$name")")
  done < <(services)
  "$bin/python" - "$state/keys" "${signers[@]}" <<'EOF'
import json, pathlib, sys
from lampo.signing import private_key, public_of
keys = pathlib.Path(sys.argv[1])
trusted = {}
for signer in sys.argv[2:]:
    previous = keys / f"{signer}.previous"
    old = previous.read_text().split() if previous.exists() else []
    trusted[signer] = [public_of(private_key((keys / f"{signer}.key").read_text())), *old]
print(json.dumps(trusted, separators=(",", ":")))
EOF
}

answers() {
  case "$1" in
    registry) echo "staff dsar marketing portal" ;;
    dsar) echo "staff portal" ;;
    consent) echo "dsar portal staff" ;;  # staff: its console's reads
    billing|recordings) echo "dsar staff" ;;
    *) echo "" ;;
  esac
}

# What a service needs besides the common environment (NAME=value words).
service_env() {
  case "$1" in
    # The privacy centre on plain http locally: its cookie without Secure, the stand-in of strong
    # electronic identification on (it says on its page that it is one), links in mail to itself.
    portal) echo "LAMPO_WEB_INSECURE_COOKIES=1 LAMPO_STRONG_ID_STANDIN=1 LAMPO_PORTAL_URL=http://127.0.0.1:$2" ;;
    *) echo "" ;;
  esac
}

api_clients() {
  local json="" sep="" caller
  for caller in $(answers "$1"); do
    json+="$sep\"$caller\": \"$(api_token "$caller")\""
    sep=", "
  done
  echo "{$json}"
}

# One PostgreSQL role per service (lampo db provision): each role's password is derived from
# this local secret; the services connect as lampo_<name>, never as the administrator.
pg_secret() {
  local f="$state/pg-roles.key"
  if [ ! -s "$f" ]; then
    (umask 077; "$bin/python" -c 'import secrets; print(secrets.token_hex(32))' > "$f")
  fi
  echo "$f"
}

services() { grep -v '^#' "$repo/deploy/local/services.txt" | awk 'NF==2'; }

replicas="${REPLICAS:-1}"
step="${REPLICA_PORT_STEP:-100}"
if ! [[ "$replicas" =~ ^[1-9][0-9]*$ ]]; then echo "[services] REPLICAS must be a positive number, not '$replicas'" >&2; exit 2; fi

# Instance ids of a service: <name> for instance 0, <name>.<i> after it.
instance() { if [ "$2" -eq 0 ]; then echo "$1"; else echo "$1.$2"; fi; }

# Every instance of a service that has a pid file (whatever REPLICAS it was started with).
instances_of() {
  local f
  for f in "$dir/$1.pid" "$dir/$1".*.pid; do [ -f "$f" ] && basename "$f" .pid; done
  return 0
}

alive() { [ -f "$dir/$1.pid" ] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

start() {
  local key; key="$(master_key)"
  api_token portal >/dev/null  # the portal's credential, for whoever plays the portal
  api_token marketing >/dev/null  # the marketing system's, for the direct-marketing audience
  local trusted; trusted="$(trusted_keys)"
  local secret; secret="$(pg_secret)"
  local websession; websession="$(web_session_key)"
  local started=()
  while read -r name base; do
    [ -x "$bin/lampo-$name" ] || continue
    local provisioned=""
    for i in $(seq 0 $((replicas - 1))); do
      local id port; id="$(instance "$name" "$i")"; port=$((base + i * step))
      if alive "$id"; then echo "[services] $id already running (pid $(cat "$dir/$id.pid"))"; continue; fi
      if [ -z "$provisioned" ]; then
        # as the administrator of LAMPO_PG_URL (LAMPO_PG_ADMIN_URL): role and database of the
        # service (and its keys database, apart from the data: docs/KEYS-AND-BACKUPS.md)
        "$bin/lampo" db provision "$name" --keys --secret-file "$secret" >/dev/null
        provisioned=yes
      fi
      LAMPO_PG_ROLE="lampo_$name" LAMPO_PG_ROLE_PASSWORD="$("$bin/lampo" db password "$name" --secret-file "$secret")" \
      LAMPO_KEYS_DATABASE="lampo_${name}_keys" \
      LAMPO_SIGNING_KEY="$(signing_key "$(signer_of "$name")")" LAMPO_SIGNER="$(signer_of "$name")" LAMPO_TRUSTED_KEYS="$trusted" \
      LAMPO_SMTP_HOST="${LAMPO_SMTP_HOST:-127.0.0.1}" LAMPO_SMTP_PORT="${LAMPO_SMTP_PORT:-2525}" \
      LAMPO_WEB_SESSION_KEY="$websession" LAMPO_MASTER_KEY="$key" LAMPO_API_TOKEN="$(api_token "$name")" LAMPO_API_CLIENTS="$(api_clients "$name")" LAMPO_HTTP_PORT="$port" OTEL_SERVICE_NAME="lampo-$name" LAMPO_ZIPKIN_ENDPOINT="${LAMPO_ZIPKIN_ENDPOINT-http://127.0.0.1:${LAMPO_ZIPKIN_PORT:-9411}/api/v2/spans}" \
        env $(service_env "$name" "$port") setsid nohup "$bin/lampo-$name" >>"$dir/$id.log" 2>&1 < /dev/null &
      echo $! > "$dir/$id.pid"
      started+=("$id:$port")
    done
  done < <(services)
  for entry in "${started[@]}"; do
    local id="${entry%%:*}" port="${entry##*:}"
    local deadline=$((SECONDS + 90))
    until curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1; do
      if ! alive "$id"; then echo "[services] $id exited; last lines of $dir/$id.log:"; tail -20 "$dir/$id.log"; exit 1; fi
      if [ $SECONDS -gt $deadline ]; then echo "[services] $id not ready after 90 s; see $dir/$id.log"; exit 1; fi
      sleep 0.5
    done
    echo "[services] $id ready on http://127.0.0.1:$port (log: $dir/$id.log)"
    # migrated: the audit log and its triggers go to lampo_audit_owner (INSERT and SELECT left)
    if [ "$id" = staff ]; then "$bin/lampo" db protect-audit staff >/dev/null; fi
  done
}

stop() {
  while read -r name _; do
    local id
    for id in $(instances_of "$name"); do
      if alive "$id"; then
        local pid; pid="$(cat "$dir/$id.pid")"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        echo "[services] $id stopped"
      fi
      rm -f "$dir/$id.pid"
    done
  done < <(services)
}

status() {
  local rc=0
  while read -r name base; do
    [ -x "$bin/lampo-$name" ] || continue
    local ids; ids="$(instances_of "$name")"
    if [ -z "$ids" ]; then echo "[services] $name not running"; rc=3; continue; fi
    local id
    for id in $ids; do
      local i="${id#"$name"}"; i="${i#.}"; local port=$((base + ${i:-0} * step))
      if alive "$id"; then echo "[services] $id running (pid $(cat "$dir/$id.pid"), port $port)"; else echo "[services] $id not running"; rc=3; fi
    done
  done < <(services)
  return $rc
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 {start|stop|status}" >&2; exit 2 ;;
esac
