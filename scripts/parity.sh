#!/usr/bin/env bash
# Parity on real market data: `stockstream transform` over the 500,000 E-mini S&P 500 trades of
# PyPI mlfinpy==0.1.2, checked against pandas/numpy (enriched) and PySpark (bars).
# Expects the release binary and the .wasm modules to be built (make parity does both).
set -euo pipefail
cd "$(dirname "$0")/.."

py=.venv/bin/python
work=.cache/parity
mkdir -p "$work"
ticks=.cache/es_ticks.jsonl
if [ ! -s "$ticks" ]; then
  "$py" reference/prepare_es_ticks.py "$ticks.tmp" && mv "$ticks.tmp" "$ticks"
fi
bin=target/release/stockstream

echo "parity: enriched chain (enrich: tick-filter, rolling-stats, zscore-anomaly fused) vs pandas/numpy"
"$bin" transform --transforms-file transforms/enriched.yaml --input "$ticks" --output "$work/enriched.jsonl"
"$py" reference/check_enriched.py --input "$ticks" --ours "$work/enriched.jsonl" \
  --window 5m --min-count 20 --threshold 3.0

echo "parity: enriched chain with basis: return (z of log returns) vs pandas/numpy"
"$bin" transform --transforms-file transforms/returns/enriched.yaml --input "$ticks" --output "$work/enriched-returns.jsonl"
"$py" reference/check_enriched.py --input "$ticks" --ours "$work/enriched-returns.jsonl" \
  --window 5m --min-count 20 --threshold 3.0 --basis return

echo "parity: bars-5m chain (bars: tick-filter, window-bars fused; 5m/1m) vs PySpark structured streaming"
"$bin" transform --transforms-file transforms/bars-5m.yaml --input "$ticks" --output "$work/bars.jsonl"
"$py" reference/check_bars.py --input "$ticks" --ours "$work/bars.jsonl" \
  --size 5m --slide 1m --lateness 0s
