#!/usr/bin/env bash
# Soak: `stockstream run --synthetic` over many ticks at full speed with its RSS sampled, to show
# that memory stays flat however long the pipeline runs (the modules' entry points reuse their
# buffers; the SDK's glue leaked every output batch and died after ~3.4M ticks).
#
#   scripts/soak.sh [TICKS] [DIR]     defaults: 50000000 ticks, a new temporary directory
#   SOAK_OUTPUTS=s3://bucket/prefix scripts/soak.sh ...   the outputs elsewhere (default DIR/outputs;
#                                     pass --s3-endpoint through SOAK_ARGS, or AWS_ENDPOINT_URL)
#
# Prints one line per sample (seconds, RSS in MiB) and a summary; the samples are kept in
# DIR/rss.csv and the run's closing line in DIR/run.log. Exits non-zero if the run fails or if
# the RSS of the last quarter exceeds that of the second quarter by more than 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."

ticks=${1:-50000000}
dir=${2:-$(mktemp -d)}
interval=${SOAK_INTERVAL:-5}
bin=target/release/stockstream
[ -x "$bin" ] || { echo "soak: build first (make build)" >&2; exit 1; }
mkdir -p "$dir"

# shellcheck disable=SC2086 # SOAK_ARGS is a list of flags
"$bin" run --synthetic --limit "$ticks" --rate 1000 --speed max --no-dashboard \
  --outputs "${SOAK_OUTPUTS:-$dir/outputs}" --truth "$dir/synthetic_truth.jsonl" ${SOAK_ARGS:-} \
  >"$dir/run.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT

start=$(date +%s)
echo "seconds,rss_mib" >"$dir/rss.csv"
while kill -0 "$pid" 2>/dev/null; do
  rss_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  if [ -n "$rss_kib" ]; then
    now=$(( $(date +%s) - start ))
    echo "$now,$(( rss_kib / 1024 ))" >>"$dir/rss.csv"
    echo "soak: ${now}s rss $(( rss_kib / 1024 )) MiB"
  fi
  sleep "$interval"
done
trap - EXIT
if ! wait "$pid"; then
  echo "soak: the run failed:" >&2
  tail -5 "$dir/run.log" >&2
  exit 1
fi
tail -1 "$dir/run.log"

python3 - "$dir/rss.csv" "$ticks" "$(( $(date +%s) - start ))" <<'EOF'
import csv, sys
rows = [(int(r["seconds"]), int(r["rss_mib"])) for r in csv.DictReader(open(sys.argv[1]))]
ticks, seconds = int(sys.argv[2]), int(sys.argv[3])
if len(rows) < 8:
    sys.exit(f"soak: only {len(rows)} samples; run more ticks")
q = len(rows) // 4
second = max(r for _, r in rows[q:2 * q])
last = max(r for _, r in rows[3 * q:])
print(f"soak: {ticks} ticks in {seconds} s ({ticks / max(seconds, 1):.0f} ticks/s); "
      f"{len(rows)} samples; RSS min {min(r for _, r in rows)} MiB, "
      f"max {max(r for _, r in rows)} MiB; max of 2nd quarter {second} MiB, "
      f"of last quarter {last} MiB ({last - second:+d} MiB)")
if last - second > 64:
    sys.exit("soak: RSS grew between the second and the last quarter")
EOF
