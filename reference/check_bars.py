#!/usr/bin/env python3
"""Check our window-bars output against PySpark structured streaming and pandas, per
shared/spec/analytics.md ("Windowed bars").

Why both: Spark's `groupBy(window(ts, size, slide), symbol)` in append mode with a watermark is
the public reference for which windows exist, when they are final, and their
count/high/low/volume/mean/std/vwap; but Spark's first/last are not deterministic in streaming,
so open/close are checked against pandas (first/last tick of the window by ts, then arrival
order). An exact two-pass numpy computation of every window is reported beside Spark for
information.

Late ticks: the spec leaves a tick out entirely when its ts is below the watermark at arrival
(watermark = largest ts seen so far, all symbols, minus lateness). Spark's own late-row filter
only drops a (tick, window) pair whose window has already closed (window end <= watermark), so
a late tick still lands in the windows that are open. By default the checker therefore removes
the spec's late ticks before Spark sees the stream (this changes no watermark: a late tick is
never a new maximum); `--spark-input raw` feeds Spark every valid tick instead, to show Spark's
native behaviour.

Usage:
    check_bars.py --input TICKS.jsonl --ours BARS.jsonl [--size 5m] [--slide 1m] [--lateness 0s]
                  [--ticks-per-file N] [--symbols A,B] [--spark-input filtered|raw]
Exit status: 0 pass, 1 mismatch, 2 bad usage, unreadable input or a failed Spark run.
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import shutil
import sys
import tempfile
import time
import warnings
from datetime import datetime

import numpy as np
import pandas as pd
from ticklib import (
    EXIT_MISMATCH,
    EXIT_PASS,
    EXIT_USAGE,
    Mismatches,
    Ticks,
    UsageError,
    column,
    parse_duration,
    py,
    read_jsonl,
    read_ticks,
    rel_err,
)

REL_TOL = 1e-9
STD_FLOOR = 1e-6  # std's tolerance scale is at least STD_FLOOR * mean (as for prev_std)
EXACT_FIELDS = ("count", "high", "low", "volume")
REL_FIELDS = ("mean", "std", "vwap")
BAR_FIELDS = ("open", "high", "low", "close", "volume", "vwap", "mean", "std", "count")

LOG4J2 = """\
status = error
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
"""


# ----------------------------------------------------------------------------- spec semantics


def late_mask(ts: np.ndarray, lateness_ms: int) -> np.ndarray:
    """Late = ts below the watermark at arrival; watermark = max ts seen before (all symbols) - lateness."""
    if len(ts) == 0:
        return np.zeros(0, dtype=bool)
    prev_max = np.empty_like(ts)
    prev_max[0] = np.iinfo(np.int64).min + lateness_ms  # nothing seen yet: nothing is late
    prev_max[1:] = np.maximum.accumulate(ts)[:-1]
    return ts < prev_max - lateness_ms


def explode_windows(ts: np.ndarray, size_ms: int, slide_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """(tick index, window start) for every window [s, s+size) with s % slide == 0 and s <= t < s+size."""
    m_hi = ts // slide_ms
    m_lo = (ts - size_ms) // slide_ms + 1
    counts = (m_hi - m_lo + 1).astype(np.int64)
    tick = np.repeat(np.arange(len(ts)), counts)
    offset = np.arange(len(tick)) - np.repeat(np.cumsum(counts) - counts, counts)
    return tick, (m_lo[tick] + offset) * slide_ms


def pandas_bars(ticks: Ticks, keep: np.ndarray, size_ms: int, slide_ms: int, final_wm: int) -> pd.DataFrame:
    """Reference bars from the non-late ticks: pandas for open/close (and count/high/low/volume),
    two-pass numpy for mean/std. Only windows with end <= final watermark (what append mode
    has emitted at the end of the stream)."""
    idx = np.flatnonzero(keep)
    tick, start = explode_windows(ticks.ts[idx], size_ms, slide_ms)
    rows = idx[tick]
    final = start + size_ms <= final_wm
    rows, start = rows[final], start[final]
    frame = pd.DataFrame(
        {
            "symbol": ticks.symbol[rows],
            "window_start": start,
            "ts": ticks.ts[rows],
            "arrival": rows,
            "price": ticks.price[rows],
            "volume": ticks.volume[rows],
        }
    )
    frame["pv"] = frame["price"] * frame["volume"]
    frame = frame.sort_values(["symbol", "window_start", "ts", "arrival"], kind="stable", ignore_index=True)
    g = frame.groupby(["symbol", "window_start"], sort=False)
    bars = g.agg(
        open=("price", "first"),
        close=("price", "last"),
        count=("price", "size"),
        high=("price", "max"),
        low=("price", "min"),
        volume=("volume", "sum"),
        sum_pv=("pv", "sum"),
    ).reset_index()

    # two-pass mean/std over the same (sorted) groups
    x = frame["price"].to_numpy()
    bounds = np.flatnonzero(
        np.r_[
            True,
            (frame["symbol"].to_numpy()[1:] != frame["symbol"].to_numpy()[:-1])
            | (frame["window_start"].to_numpy()[1:] != frame["window_start"].to_numpy()[:-1]),
        ]
    )
    n = np.diff(np.r_[bounds, len(x)]).astype(np.float64)
    if len(bounds):
        m = np.add.reduceat(x, bounds) / n
        d = x - np.repeat(m, n.astype(np.int64))
        s = np.add.reduceat(d, bounds)
        ss = np.add.reduceat(d * d, bounds)
        mean = m + s / n
        with np.errstate(divide="ignore", invalid="ignore"):
            var = np.maximum(ss - s * s / n, 0.0) / (n - 1)
        std = np.where(n >= 2, np.sqrt(var), np.nan)
        const = np.maximum.reduceat(x, bounds) == np.minimum.reduceat(x, bounds)
        std = np.where(const & (n >= 2), 0.0, std)
        mean = np.where(const, x[bounds], mean)
    else:
        mean = std = np.zeros(0)
    bars["mean"] = mean
    bars["std"] = std
    bars["window_end"] = bars["window_start"] + size_ms
    vol = bars["volume"].to_numpy()
    bars["vwap"] = np.where(vol > 0, bars["sum_pv"].to_numpy() / np.where(vol > 0, vol, 1), np.nan)
    return bars.set_index(["symbol", "window_start", "window_end"])


def spark_windows_of_late_ticks(ticks: Ticks, late: np.ndarray, size_ms: int, slide_ms: int, lateness_ms: int) -> int:
    """How many (late tick, window) pairs Spark's own filter would keep (window end > watermark)."""
    idx = np.flatnonzero(late)
    if not len(idx):
        return 0
    prev_max = np.maximum.accumulate(ticks.ts)
    wm = np.r_[np.iinfo(np.int64).min, prev_max[:-1]][idx] - lateness_ms
    tick, start = explode_windows(ticks.ts[idx], size_ms, slide_ms)
    return int(np.sum(start + size_ms > wm[tick]))


# ----------------------------------------------------------------------------- Spark


def spark_interval(ms: int) -> str:
    return f"{ms} milliseconds"


def write_stream_files(ticks: Ticks, rows: np.ndarray, per_file: int, folder: pathlib.Path) -> int:
    """Split the ticks into files of `per_file` lines that Spark's file source reads in order.

    The file source orders new files by modification time, so names are zero-padded and the
    mtimes strictly increasing (one second apart, in the past).
    """
    folder.mkdir(parents=True)
    nfiles = max(1, math.ceil(len(rows) / per_file))
    base = time.time() - nfiles - 60
    for f in range(nfiles):
        chunk = rows[f * per_file : (f + 1) * per_file]
        path = folder / f"ticks-{f:06d}.json"
        with open(path, "w", encoding="utf-8") as fh:
            fh.writelines(
                f'{{"symbol":"{ticks.symbol[i]}","ts":{ticks.ts[i]},"price":{float(ticks.price[i])!r},"volume":{ticks.volume[i]}}}\n'
                for i in chunk
            )
        os.utime(path, (base + f, base + f))
    return nfiles


def run_spark(
    src: pathlib.Path, work: pathlib.Path, size_ms: int, slide_ms: int, lateness_ms: int, final_wm: int
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Run the streaming aggregation to the end of the files; return its append-mode output."""
    warnings.filterwarnings("ignore", category=FutureWarning)  # "PySpark does not yet fully support pandas >= 3"
    log4j = work / "log4j2.properties"
    log4j.write_text(LOG4J2)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    t0 = time.perf_counter()
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("stockstream-check-bars")
        .config("spark.driver.memory", "4g")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={log4j.as_uri()}")
        .config("spark.local.dir", str(work / "spark-local"))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    t_started = time.perf_counter()
    schema = T.StructType(
        [
            T.StructField("symbol", T.StringType()),
            T.StructField("ts", T.LongType()),
            T.StructField("price", T.DoubleType()),
            T.StructField("volume", T.LongType()),
        ]
    )
    stream = (
        spark.readStream.schema(schema)
        .option("maxFilesPerTrigger", 1)
        .json(str(src))
        .withColumn("event_time", F.timestamp_millis("ts"))
        .withWatermark("event_time", spark_interval(lateness_ms))
        .groupBy(F.window("event_time", spark_interval(size_ms), spark_interval(slide_ms)), "symbol")
        .agg(
            F.count(F.lit(1)).alias("count"),
            F.max("price").alias("high"),
            F.min("price").alias("low"),
            F.sum("volume").alias("volume"),
            F.sum(F.col("price") * F.col("volume")).alias("sum_pv"),
            F.avg("price").alias("mean"),
            F.stddev("price").alias("std"),
        )
        .select(
            "symbol",
            F.unix_millis(F.col("window.start")).alias("window_start"),
            F.unix_millis(F.col("window.end")).alias("window_end"),
            "count",
            "high",
            "low",
            "volume",
            "sum_pv",
            "mean",
            "std",
        )
    )
    query = (
        stream.writeStream.outputMode("append")
        .format("memory")
        .queryName("spark_bars")
        .option("checkpointLocation", str(work / "checkpoint"))
        .start()
    )
    # processAllAvailable() returns once the files are consumed; the windows closed by the last
    # watermark are evicted by a following no-data batch, so wait until a batch has used it.
    deadline = time.monotonic() + 120
    while True:
        query.processAllAvailable()
        progress = query.lastProgress or {}
        wm_text = (progress.get("eventTime") or {}).get("watermark")
        used = int(datetime.fromisoformat(wm_text).timestamp() * 1000) if wm_text else None
        if used == final_wm or final_wm <= 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    batches = len(query.recentProgress)
    t_done = time.perf_counter()
    rows = spark.sql("SELECT * FROM spark_bars").collect()
    query.stop()
    spark.stop()
    t_end = time.perf_counter()
    out = pd.DataFrame(
        [r.asDict() for r in rows],
        columns=["symbol", "window_start", "window_end", "count", "high", "low", "volume", "sum_pv", "mean", "std"],
    )
    out["std"] = out["std"].astype(np.float64)
    vol = out["volume"].to_numpy(dtype=np.float64)
    out["vwap"] = np.where(vol > 0, out["sum_pv"].to_numpy(dtype=np.float64) / np.where(vol > 0, vol, 1), np.nan)
    timing = {
        "startup": t_started - t0,
        "stream": t_done - t_started,
        "total": t_end - t0,
        "batches": batches,
        "final_watermark_used": used if used is not None else -1,
    }
    return out.set_index(["symbol", "window_start", "window_end"]), timing


# ----------------------------------------------------------------------------- comparison


def our_bars(ours: list[dict | None], mm: Mismatches) -> pd.DataFrame:
    """Our records as a frame (row = 0-based line), checking types, duplicates and order."""
    keys = []
    for i, r in enumerate(ours):
        if r is None:
            mm.add(i, "line", "<not a JSON object>", "<bar>")
            keys.append((None, None, None))
            continue
        k = (r.get("symbol"), r.get("window_start"), r.get("window_end"))
        if not isinstance(k[0], str) or not all(isinstance(v, int) and not isinstance(v, bool) for v in k[1:]):
            mm.add(i, "key", list(k), "symbol string, window_start/window_end integers")
            k = (None, None, None)
        keys.append(k)
    frame = pd.DataFrame(keys, columns=["symbol", "window_start", "window_end"])
    frame["row"] = np.arange(len(ours))
    for name in BAR_FIELDS:
        vals, _null, bad = column(ours, name)
        frame[name] = vals
        frame[name + "_bad"] = bad
    valid = frame["symbol"].notna()
    dup = frame[valid].duplicated(["symbol", "window_start", "window_end"], keep="first")
    for i in frame[valid][dup]["row"]:
        mm.add(int(i), "duplicate", list(keys[i]), "each window emitted once")
    # emission order: window_end, then symbol (byte order)
    prev = None
    for i, k in enumerate(keys):
        if k[0] is None:
            continue
        cur = (k[2], k[0].encode())
        if prev is not None and cur < prev:
            mm.add(i, "order", f"{k[0]} end={k[2]}", f"after {prev[1].decode()} end={prev[0]}")
        prev = cur
    frame = frame[valid].astype({"window_start": np.int64, "window_end": np.int64})
    return frame.drop_duplicates(["symbol", "window_start", "window_end"]).set_index(
        ["symbol", "window_start", "window_end"]
    )


def compare(ours: pd.DataFrame, spark: pd.DataFrame, ref: pd.DataFrame, mm: Mismatches) -> dict[str, float]:
    """Key sets vs Spark; count/high/low/volume exact and mean/std/vwap relative vs Spark;
    open/close vs pandas. Returns the max error per field."""
    missing = spark.index.difference(ours.index)
    extra = ours.index.difference(spark.index)
    for k in missing:
        mm.add(len(ours) + 10**9, "window", "<absent>", f"{k[0]} [{k[1]}, {k[2]})", where="missing")
    for k in extra:
        row = int(ours.loc[k, "row"])
        mm.add(row, "window", f"{k[0]} [{k[1]}, {k[2]})", "<not emitted by Spark>")
    common = ours.index.intersection(spark.index)
    o = ours.loc[common].sort_values("row")
    s = spark.loc[o.index]
    r = ref.reindex(o.index)
    rows = o["row"].to_numpy()

    def where(j: int) -> str:
        k = o.index[j]
        return f"row {rows[j] + 1} ({k[0]} [{k[1]}, {k[2]}))"

    errors: dict[str, float] = {}
    for name in BAR_FIELDS:
        got = o[name].to_numpy(dtype=np.float64)
        bad = o[name + "_bad"].to_numpy()
        src = r if name in ("open", "close") else s
        want = src[name].to_numpy(dtype=np.float64)
        got_null, want_null = np.isnan(got) & ~bad, np.isnan(want)
        both = ~np.isnan(got) & ~want_null
        if name in ("open", "close", *EXACT_FIELDS):
            err = np.abs(got - want)
            ok = err == 0
        elif name == "std":
            scale = np.maximum(np.abs(want), STD_FLOOR * np.abs(s["mean"].to_numpy(dtype=np.float64)))
            err = rel_err(got, want, scale)
            ok = err <= REL_TOL
        else:
            err = rel_err(got, want)
            ok = err <= REL_TOL
        errors[name] = float(err[both].max()) if both.any() else 0.0
        wrong = bad | (got_null != want_null) | (both & ~ok)
        for j in np.flatnonzero(wrong)[: mm.limit]:
            mm.add(
                int(rows[j]),
                name,
                py(got[j], name in ("count", "volume")) if not bad[j] else "<missing or not a number>",
                py(want[j], name in ("count", "volume")),
                where=where(j),
            )
        if wrong.sum() > mm.limit:
            extra_n = int(wrong.sum()) - mm.limit
            mm.total += extra_n
            mm.by_field[name] = mm.by_field.get(name, 0) + extra_n
    return errors


def spark_vs_exact(spark: pd.DataFrame, ref: pd.DataFrame) -> tuple[int, int, dict[str, float]]:
    """Information: do Spark and the pandas/numpy reference agree (keys, exact fields, max rel dev)?"""
    key_diff = len(spark.index.symmetric_difference(ref.index))
    common = spark.index.intersection(ref.index)
    s, r = spark.loc[common], ref.loc[common]
    exact_diff = int(
        sum((s[f].to_numpy(dtype=np.float64) != r[f].to_numpy(dtype=np.float64)).sum() for f in EXACT_FIELDS)
    )
    dev = {}
    for f in REL_FIELDS:
        a, b = s[f].to_numpy(dtype=np.float64), r[f].to_numpy(dtype=np.float64)
        both = ~np.isnan(a) & ~np.isnan(b)
        scale = np.maximum(np.abs(b), STD_FLOOR * np.abs(r["mean"].to_numpy())) if f == "std" else None
        e = rel_err(a, b, scale)
        dev[f] = float(e[both].max()) if both.any() else 0.0
        exact_diff += int((np.isnan(a) != np.isnan(b)).sum())
    return key_diff, exact_diff, dev


def write_reference(ref: pd.DataFrame, path: pathlib.Path) -> None:
    """Write the reference bars as our records, in emission order (window_end, then symbol bytes)."""
    import json

    frame = ref.reset_index()
    frame["_sym"] = frame["symbol"].map(lambda v: v.encode())
    frame = frame.sort_values(["window_end", "_sym"], kind="stable")

    def num(v: float) -> float | None:
        return None if math.isnan(v) else float(v)

    with open(path, "w", encoding="utf-8") as fh:
        for r in frame.itertuples(index=False):
            rec = {
                "symbol": r.symbol,
                "window_start": int(r.window_start),
                "window_end": int(r.window_end),
                "open": float(r.open),
                "high": float(r.high),
                "low": float(r.low),
                "close": float(r.close),
                "volume": int(r.volume),
                "vwap": num(r.vwap),
                "mean": num(r.mean),
                "std": num(r.std),
                "count": int(r.count),
            }
            fh.write(json.dumps(rec, separators=(",", ":")) + "\n")


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Check window bars against PySpark streaming + pandas (analytics.md).")
    ap.add_argument("--input", required=True, type=pathlib.Path, help="input ticks, JSON lines, arrival order")
    ap.add_argument("--ours", required=True, type=pathlib.Path, help="our bars output, JSON lines")
    ap.add_argument("--size", default="5m", help="window length (default 5m)")
    ap.add_argument("--slide", default="1m", help="window step (default 1m)")
    ap.add_argument("--lateness", default="0s", help="watermark delay (default 0s)")
    ap.add_argument(
        "--ticks-per-file",
        type=int,
        default=None,
        help="ticks per file of Spark's stream (default: ceil(n/20), so 1 for up to 20 ticks)",
    )
    ap.add_argument("--symbols", default=None, help="tick-filter watchlist, comma-separated (default: all)")
    ap.add_argument(
        "--spark-input",
        choices=("filtered", "raw"),
        default="filtered",
        help="filtered (default): Spark gets the ticks minus the spec's late ones; "
        "raw: every valid tick, Spark's own late handling (differs from the spec)",
    )
    ap.add_argument(
        "--write-reference",
        type=pathlib.Path,
        default=None,
        help="also write the pandas/two-pass reference bars (our record form and order) here",
    )
    ap.add_argument("--keep-temp", action="store_true", help="keep the temp dir (stream files, checkpoint)")
    return ap.parse_args(argv)


def parse_lateness(text: str) -> int:
    """Lateness may be 0 (parse_duration only takes positive durations)."""
    stripped = text.strip()
    if stripped in ("0", "0ms", "0s", "0m", "0h", "0d"):
        return 0
    return parse_duration(stripped)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        size_ms, slide_ms = parse_duration(args.size), parse_duration(args.slide)
        lateness_ms = parse_lateness(args.lateness)
        if slide_ms > size_ms:
            raise UsageError("--slide must not exceed --size")
        if args.ticks_per_file is not None and args.ticks_per_file < 1:
            raise UsageError("--ticks-per-file must be >= 1")
        symbols = {s for s in args.symbols.split(",") if s} if args.symbols else None
        ticks = read_ticks(args.input, symbols)
        ours_recs, bad_lines = read_jsonl(args.ours)
    except UsageError as e:
        print(f"check_bars: {e}", file=sys.stderr)
        return EXIT_USAGE
    if len(ticks) == 0:
        print("check_bars: no valid ticks in the input", file=sys.stderr)
        return EXIT_USAGE

    late = late_mask(ticks.ts, lateness_ms)
    final_wm = int(ticks.ts.max()) - lateness_ms
    t0 = time.perf_counter()
    ref = pandas_bars(ticks, ~late, size_ms, slide_ms, final_wm)
    ref_secs = time.perf_counter() - t0

    if args.write_reference is not None:
        write_reference(ref, args.write_reference)

    feed = np.flatnonzero(~late) if args.spark_input == "filtered" else np.arange(len(ticks))
    per_file = args.ticks_per_file or max(1, math.ceil(len(feed) / 20))
    tmp = tempfile.mkdtemp(prefix="check-bars-")
    work = pathlib.Path(tmp)
    nfiles = write_stream_files(ticks, feed, per_file, work / "stream")
    try:
        spark, timing = run_spark(work / "stream", work, size_ms, slide_ms, lateness_ms, final_wm)
    except Exception as e:  # no Java, JVM start-up failure, ...: the check could not run
        print(f"check_bars: the Spark run failed: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if not args.keep_temp:
            shutil.rmtree(work, ignore_errors=True)

    mm = Mismatches()
    ours = our_bars(ours_recs, mm)
    if timing["final_watermark_used"] != final_wm:
        mm.add(-1, "spark", f"final watermark {timing['final_watermark_used']}", f"{final_wm}", where="spark run")
    errors = compare(ours, spark, ref, mm)
    key_diff, exact_diff, dev = spark_vs_exact(spark, ref)

    print(f"check_bars: size={args.size} slide={args.slide} lateness={args.lateness} spark-input={args.spark_input}")
    dropped = sum(ticks.invalid.values())
    print(
        f"ticks: {len(ticks)} valid ({dropped} invalid dropped), {int(late.sum())} late (spec), "
        f"final watermark {final_wm}; late (tick, open window) pairs Spark alone would keep: "
        f"{spark_windows_of_late_ticks(ticks, late, size_ms, slide_ms, lateness_ms)}"
    )
    print(f"windows: ours {len(ours_recs)} lines, Spark {len(spark)}, pandas reference {len(ref)}")
    print(
        "max error vs Spark/pandas: "
        + ", ".join(f"{k} {'rel' if k in REL_FIELDS else 'abs'} {v:.3g}" for k, v in errors.items())
    )
    print(
        f"info: Spark vs pandas/two-pass reference: {key_diff} window-set differences, {exact_diff} differing "
        f"count/high/low/volume/null-ness values, max rel deviation "
        + ", ".join(f"{k} {v:.3g}" for k, v in dev.items())
    )
    print(
        f"spark: {nfiles} files of <= {per_file} ticks, {timing['batches']} micro-batches; session start "
        f"{timing['startup']:.1f} s, stream {timing['stream']:.1f} s, total {timing['total']:.1f} s; "
        f"pandas reference {ref_secs:.1f} s"
    )
    mm.report()
    ok = mm.total == 0 and bad_lines == 0
    print("PASS" if ok else "FAIL")
    return EXIT_PASS if ok else EXIT_MISMATCH


if __name__ == "__main__":
    sys.exit(main())
