#!/usr/bin/env bash
# Builds the dashboard's front end into dashboard/dist (served by the dashboard server).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

app=dashboard/app
dist=dashboard/dist
target=wasm32-unknown-unknown
# Where `cargo install` puts wasm-bindgen, for shells that do not have it on PATH.
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
fi

# The CLI must be exactly the version of the wasm-bindgen crate in the lockfile.
version=$(grep -A1 '^name = "wasm-bindgen"$' "$app/Cargo.lock" | sed -n 's/^version = "\(.*\)"$/\1/p')
if [ -z "$version" ]; then
    echo "build.sh: no wasm-bindgen in $app/Cargo.lock" >&2
    exit 1
fi
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $version" ]; then
    echo "installing wasm-bindgen-cli $version (a few minutes, once)"
    cargo install wasm-bindgen-cli --version "$version" --locked --quiet
fi

cargo build --manifest-path "$app/Cargo.toml" --release --target "$target" --quiet
wasm="$app/target/$target/release/stockstream_dashboard_app.wasm"
bound="$dist/pkg/stockstream_dashboard_app_bg.wasm"
if [ ! -f "$bound" ] || [ "$wasm" -nt "$bound" ]; then
    wasm-bindgen --target web --no-typescript --out-dir "$dist/pkg" "$wasm"
fi
cp -R dashboard/static/. "$dist/"
echo "built $dist ($(du -k "$dist/pkg/stockstream_dashboard_app_bg.wasm" | cut -f1) KiB wasm)"
