#!/usr/bin/env bash
# Says where the Fluvio binaries the live-cluster tests use are ($FLUVIO_BIN_DIR, then PATH);
# exits 1 when fluvio-run is in neither. Fluvio's server binaries are on no package registry:
# build them from the public Fluvio repository (README.md, Cluster mode).
set -euo pipefail
for name in fluvio-run fluvio; do
    found=""
    if [ -n "${FLUVIO_BIN_DIR:-}" ] && [ -x "$FLUVIO_BIN_DIR/$name" ]; then
        found="$FLUVIO_BIN_DIR/$name"
    elif command -v "$name" >/dev/null 2>&1; then
        found=$(command -v "$name")
    fi
    if [ -n "$found" ]; then
        echo "$name: $found"
    elif [ "$name" = fluvio-run ]; then
        echo "$name: not found (set FLUVIO_BIN_DIR)" >&2
        exit 1
    else
        echo "$name: not found (the fluvio CLI flow test will skip)"
    fi
done
