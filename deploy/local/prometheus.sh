#!/usr/bin/env bash
# Prometheus tools from Debian's `prometheus` package: promtool (`make lint` checks and unit-tests
# the alert rules in deploy/prometheus/ with it) and the Prometheus server (docs/img's dashboard
# screenshot). Only `install`: the suite itself does not need a running Prometheus locally.
#   deploy/local/prometheus.sh install    # idempotent; quiet when promtool is already there
set -euo pipefail
TAG=prometheus
say() { echo "[$TAG] $*"; }
die() { echo "[$TAG] ERROR: $*" >&2; exit 1; }

do_install() {
  if command -v promtool >/dev/null 2>&1; then
    return 0
  fi
  local SUDO=()
  if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "promtool is not installed and installing needs root (no sudo)"
    SUDO=(sudo)
  fi
  command -v apt-get >/dev/null 2>&1 || die "promtool is not installed and apt-get is unavailable; install Debian's prometheus package by hand"
  say "installing Debian's prometheus package (promtool) with apt-get"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || die "apt-get update failed"
  # No recommends: the node exporter and the service's own start are not wanted here.
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null \
    || die "apt-get install prometheus failed"
  command -v promtool >/dev/null 2>&1 || die "apt-get installed prometheus but promtool is not on PATH"
  say "installed $(promtool --version 2>&1 | head -n1)"
}

case "${1:-}" in
  install) do_install ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
