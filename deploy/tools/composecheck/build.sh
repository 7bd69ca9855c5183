#!/usr/bin/env bash
# Builds the compose-file validator (compose-go, the loader Docker Compose uses) once into the
# cache; prints its path. Go modules come from the Go module proxy.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${LAMPO_CACHE:-$HOME/.cache/lampo}/bin/composecheck"
stamp="$out.$(cat "$here/main.go" "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-12)"
if [ ! -x "$stamp" ]; then
  command -v go >/dev/null || { echo "[composecheck] Go is required to build the compose validator" >&2; exit 1; }
  mkdir -p "$(dirname "$out")"
  (cd "$here" && go build -o "$stamp" .) >&2
fi
ln -sf "$stamp" "$out"
echo "$out"
