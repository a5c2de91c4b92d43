#!/usr/bin/env bash
# Runs fuzz targets one after another: scripts/fuzz.sh SECONDS TARGET...
# Installs nightly Rust and cargo-fuzz when absent. Each target starts from the checked-in
# corpus (fuzz/corpus/TARGET) plus what earlier runs kept (target/fuzz-corpus/TARGET), and
# prints libFuzzer's final figures; a crash stops the script with the input in
# fuzz/targets/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=$1
shift

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: installing nightly Rust (libFuzzer's instrumentation needs it)"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

for target in "$@"; do
  work=target/fuzz-corpus/$target
  mkdir -p "$work"
  log=target/fuzz-corpus/$target.log
  echo "fuzz: $target for ${seconds}s (log: $log)"
  /usr/bin/time -v cargo +nightly fuzz run --fuzz-dir fuzz/targets "$target" "$work" "fuzz/corpus/$target" \
    -- -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    >"$log" 2>&1 || { tail -40 "$log"; exit 1; }
  grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|Done)|Maximum resident set size' "$log" || true
done
