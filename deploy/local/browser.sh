#!/usr/bin/env bash
# What the browser tests (tests/browser/) and deploy/tools/screenshots.py need beside Playwright
# for Python (requirements.txt): Debian's `chromium`, which Playwright drives as a system browser
# (its own browser download is not used), and axe-core from npm, the accessibility engine the
# tests inject into every page, at the version pinned here.
#   deploy/local/browser.sh install    # idempotent; quiet when both are already there
#   deploy/local/browser.sh axe        # prints the path of the installed axe.min.js (the tests read it)
set -euo pipefail
TAG=browser
AXE_VERSION=4.14.1
CACHE="${LAMPO_CACHE:-$HOME/.cache/lampo}"
AXE_DIR="$CACHE/axe-core-$AXE_VERSION"
AXE_JS="$AXE_DIR/node_modules/axe-core/axe.min.js"
say() { echo "[$TAG] $*"; }
die() { echo "[$TAG] ERROR: $*" >&2; exit 1; }

install_chromium() {
  if command -v chromium >/dev/null 2>&1; then
    return 0
  fi
  local SUDO=()
  if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "chromium is not installed and installing needs root (no sudo)"
    SUDO=(sudo)
  fi
  command -v apt-get >/dev/null 2>&1 || die "chromium is not installed and apt-get is unavailable; install Debian's chromium by hand"
  say "installing Debian's chromium with apt-get"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || die "apt-get update failed"
  # No recommends: the browser alone, headless (its fonts come as dependencies).
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null \
    || die "apt-get install chromium failed"
  command -v chromium >/dev/null 2>&1 || die "apt-get installed chromium but it is not on PATH"
  say "installed $(chromium --version 2>/dev/null | head -n1)"
}

install_axe() {
  if [[ -s $AXE_JS ]]; then
    return 0
  fi
  command -v npm >/dev/null 2>&1 || die "axe-core is not installed and npm is unavailable (Debian: apt-get install npm)"
  say "installing axe-core $AXE_VERSION from npm into $AXE_DIR"
  mkdir -p "$CACHE"
  local tmp
  tmp=$(mktemp -d "$CACHE/.axe-core.XXXXXX")
  chmod 755 "$tmp"
  # Into a fresh directory first, moved into place whole: a half-finished install is never taken
  # for a finished one. No package-lock (it would record download addresses).
  if ! npm install --silent --no-audit --no-fund --no-package-lock --prefix "$tmp" "axe-core@$AXE_VERSION" >/dev/null; then
    rm -rf "$tmp"
    die "npm install axe-core@$AXE_VERSION failed"
  fi
  [[ -s $tmp/node_modules/axe-core/axe.min.js ]] || { rm -rf "$tmp"; die "npm installed axe-core but axe.min.js is missing"; }
  rm -rf "$AXE_DIR"
  mv "$tmp" "$AXE_DIR"
  say "installed axe-core $AXE_VERSION"
}

case "${1:-}" in
  install) install_chromium; install_axe ;;
  axe) [[ -s $AXE_JS ]] || die "axe-core $AXE_VERSION is not installed (run: $0 install)"; echo "$AXE_JS" ;;
  *) echo "usage: $0 install|axe" >&2; exit 2 ;;
esac
