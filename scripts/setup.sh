#!/usr/bin/env bash
# Installs what the build and the tests need, idempotently: quick when everything is present.
#   scripts/setup.sh          Rust targets and components (enough to build and run)
#   scripts/setup.sh --test   also the Python venv for the reference checks (pandas, PySpark)
#                             the Apache Kafka jars for the broker the Kafka tests start, and
#                             Chromium with playwright-core for the dashboard's browser test,
#                             and moto, the S3 server of the object-storage tests
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=false
[ "${1:-}" = "--test" ] && want_test=true

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust with rustup first" >&2
  exit 1
fi

installed_targets=$(rustup target list --installed 2>/dev/null || true)
for target in wasm32-wasip1 wasm32-unknown-unknown; do
  if ! grep -qx "$target" <<<"$installed_targets"; then
    echo "setup: adding Rust target $target"
    rustup target add "$target"
  fi
done
installed_components=$(rustup component list --installed 2>/dev/null || true)
for component in rustfmt clippy; do
  if ! grep -q "^$component" <<<"$installed_components"; then
    echo "setup: adding Rust component $component"
    rustup component add "$component"
  fi
done

if $want_test; then
  if ! command -v java >/dev/null 2>&1; then
    echo "setup: installing a Java runtime for PySpark"
    apt-get update -qq && apt-get install -y -qq default-jre-headless >/dev/null
  fi
  bash reference/setup-venv.sh >/dev/null
  # The Kafka tests start a real broker from the Apache Kafka jars (fetched once with Maven).
  if ! command -v mvn >/dev/null 2>&1; then
    echo "setup: installing Maven to fetch the Apache Kafka jars"
    apt-get update -qq && apt-get install -y -qq maven >/dev/null
  fi
  scripts/kafka-broker.sh fetch
  # The object-storage tests start an S3 server: moto, in a venv of its own.
  scripts/s3-server.sh setup
  # The dashboard's browser test: Debian's Chromium, driven by playwright-core from npm.
  if [ ! -x /usr/bin/chromium ]; then
    echo "setup: installing Chromium for the dashboard's browser test"
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  fi
  if [ ! -d dashboard/e2e/node_modules/playwright-core ]; then
    echo "setup: installing playwright-core"
    (cd dashboard/e2e && npm ci --no-audit --no-fund --silent)
  fi
fi
