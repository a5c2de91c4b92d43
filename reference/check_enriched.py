#!/usr/bin/env python3
"""Check our enriched ticks (tick-filter -> rolling-stats -> zscore-anomaly emit=all) against
pandas and an exact two-pass numpy computation, per shared/spec/analytics.md.

Why two references: pandas' time-based rolling mean/count is the public reference named by the
spec, but its online rolling std drifts (about 1e-8 for a constant window, past 1e-9 relative
for prices near 1e4 with tiny variance), so prev_std and z are checked against a two-pass
computation over each previous window, and pandas' std is only reported beside it.

With --basis return, z and anomaly are those of the spec's "Z-score on returns": each tick's log
return against the non-null returns of the previous window [t-W, t) of its symbol, checked
against pandas (np.log(p).diff(), rolling(W, closed="left")) and a two-pass computation, with
ret, ret_prev_mean, ret_prev_std and ret_prev_count compared too; the price statistics must be
unchanged.

Usage:
    check_enriched.py --input TICKS.jsonl --ours OURS.jsonl [--window 5m] [--min-count 20]
                      [--threshold 3.0] [--symbols A,B] [--basis price|return]
Exit status: 0 pass, 1 mismatch, 2 bad usage or unreadable input.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import time

import numpy as np
import pandas as pd
from ticklib import (
    EXIT_MISMATCH,
    EXIT_PASS,
    EXIT_USAGE,
    MISSING,
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

REL_TOL = 1e-9  # sma, vwap, prev_mean (relative); prev_std (relative to max(std, 1e-6*mean))
STD_FLOOR = 1e-6  # prev_std's tolerance scale is at least STD_FLOOR * prev_mean
Z_TOL = 1e-6  # z, absolute
FLAG_BAND = 1e-7  # |z| this close to the threshold may be flagged either way

RET_TOL = 1e-12  # ret and ret_prev_mean, absolute (the spec's tolerance for ret)

STAT_FIELDS = ("sma", "count", "vwap", "prev_mean", "prev_std", "prev_count", "z")
RET_FIELDS = ("ret", "ret_prev_mean", "ret_prev_std", "ret_prev_count")
INT_FIELDS = ("count", "prev_count", "ret_prev_count")


def late_mask(symbol: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """A tick is late when its ts is below the newest ts already seen for its symbol."""
    s = pd.Series(ts)
    prev_max = s.groupby(symbol).cummax().groupby(symbol).shift(1)
    return (s < prev_max).to_numpy()


def pandas_reference(
    sym: np.ndarray, ts: np.ndarray, price: np.ndarray, volume: np.ndarray, window_ms: int
) -> pd.DataFrame:
    """The spec's pandas calls on the in-order ticks, in the given (arrival) order.

    Rows are sorted stably by symbol first so that groupby().rolling()'s output (grouped,
    sorted keys, each group in original order) lines up with them positionally.
    """
    order = np.argsort(sym.astype(str), kind="stable")
    idx = pd.DatetimeIndex(pd.to_datetime(ts[order], unit="ms"), name="t")
    frame = pd.DataFrame(
        {"symbol": sym[order], "price": price[order], "volume": volume[order].astype(np.float64)}, index=idx
    )
    frame["pv"] = frame["price"] * frame["volume"]
    win = pd.Timedelta(window_ms, unit="ms")
    g = frame.groupby("symbol", sort=True)
    cur = g["price"].rolling(win)
    prev = g["price"].rolling(win, closed="left")
    sum_pv = g["pv"].rolling(win).sum().to_numpy()
    sum_v = g["volume"].rolling(win).sum().to_numpy()
    out = pd.DataFrame(
        {
            "sma": cur.mean().to_numpy(),
            "count": cur.count().to_numpy(),
            "vwap": np.where(sum_v > 0, sum_pv / np.where(sum_v > 0, sum_v, 1.0), np.nan),
            "prev_mean": prev.mean().to_numpy(),
            "prev_count": prev.count().fillna(0).to_numpy(),  # empty left-closed window -> NaN
            "pandas_prev_std": prev.std().to_numpy(),
        }
    )
    check_ts = cur.count().index.get_level_values("t")
    if not (check_ts == idx).all():
        raise AssertionError("groupby().rolling() output does not line up with the input rows")
    # back to the caller's order
    result = pd.DataFrame(index=range(len(ts)), columns=out.columns, dtype=np.float64)
    result.iloc[order] = out.to_numpy()
    return result


def two_pass_prev(ts: np.ndarray, price: np.ndarray, window_ms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact-as-possible mean/std (ddof=1) of each tick's previous window [t-W, t), one symbol.

    ts must be non-decreasing (a symbol's in-order ticks). The previous window depends only on
    t, so it is computed once per distinct ts (the ES data has ~6 ticks per stamp). Mean: numpy's
    pairwise sum, refined by the mean of the deviations; std: the corrected two-pass formula
    (sum d^2 - (sum d)^2/n)/(n-1). A window of identical prices has std exactly 0.
    Returns (mean, std, count) per tick (NaN where undefined).
    """
    uniq, first = np.unique(ts, return_index=True)
    lo = np.searchsorted(ts, uniq - window_ms, side="left")
    hi = first  # ts is sorted: the first index of t is where [.., t) ends
    u_mean = np.full(len(uniq), np.nan)
    u_std = np.full(len(uniq), np.nan)
    for k in range(len(uniq)):
        a, b = lo[k], hi[k]
        n = b - a
        if n == 0:
            continue
        x = price[a:b]
        if n == 1:
            u_mean[k] = x[0]
            continue
        xmin, xmax = x.min(), x.max()
        if xmin == xmax:
            u_mean[k] = xmin
            u_std[k] = 0.0
            continue
        m = x.mean()
        d = x - m
        s = d.sum()
        ss = np.dot(d, d)
        u_mean[k] = m + s / n
        u_std[k] = math.sqrt(max(ss - s * s / n, 0.0) / (n - 1))
    where = np.searchsorted(uniq, ts)
    return u_mean[where], u_std[where], (hi - lo)[where]


def return_reference(ticks: Ticks, keep: np.ndarray, window_ms: int, ref: dict[str, np.ndarray]) -> None:
    """ret and its previous-window statistics, per symbol on its non-late ticks in arrival order:
    pandas (the spec's calls) for the count and as information, two-pass numpy for mean/std."""
    n = len(ticks)
    for name in (*RET_FIELDS, "pandas_ret_prev_mean", "pandas_ret_prev_std"):
        ref[name] = np.full(n, np.nan)
    kept_idx = np.flatnonzero(keep)
    sym_kept = ticks.symbol[keep]
    for s in pd.unique(sym_kept):
        rows = kept_idx[sym_kept == s]
        ts, price = ticks.ts[rows], ticks.price[rows]
        r = np.log(pd.Series(price)).diff().to_numpy()
        ref["ret"][rows] = r
        series = pd.Series(r, index=pd.DatetimeIndex(pd.to_datetime(ts, unit="ms")))
        rolling = series.rolling(pd.Timedelta(window_ms, unit="ms"), closed="left")
        ref["ret_prev_count"][rows] = rolling.count().fillna(0).to_numpy()
        ref["pandas_ret_prev_mean"][rows] = rolling.mean().to_numpy()
        ref["pandas_ret_prev_std"][rows] = rolling.std().to_numpy()
        # Two-pass over the returns that exist (all but the symbol's first tick).
        mean, std, cnt = two_pass_prev(ts[1:], r[1:], window_ms)
        ref["ret_prev_mean"][rows[1:]] = mean
        ref["ret_prev_std"][rows[1:]] = std
        if not np.array_equal(cnt, ref["ret_prev_count"][rows[1:]]):
            raise AssertionError(f"{s}: pandas closed='left' return counts disagree with the two-pass windows")
    # The symbol's first tick has no earlier return: count 0, the rest null.


def reference(
    ticks: Ticks, window_ms: int, min_count: int, threshold: float, basis: str = "price"
) -> dict[str, np.ndarray]:
    """All reference columns for the valid ticks, in arrival order (NaN = null)."""
    n = len(ticks)
    late = late_mask(ticks.symbol, ticks.ts)
    keep = ~late
    pdref = pandas_reference(ticks.symbol[keep], ticks.ts[keep], ticks.price[keep], ticks.volume[keep], window_ms)

    ref = {
        name: np.full(n, np.nan) for name in (*STAT_FIELDS, "pandas_prev_std", "exact_prev_mean", "exact_prev_count")
    }
    for name in ("sma", "count", "vwap", "prev_mean", "prev_count", "pandas_prev_std"):
        ref[name][keep] = pdref[name].to_numpy()

    kept_idx = np.flatnonzero(keep)
    sym_kept = ticks.symbol[keep]
    for s in pd.unique(sym_kept):
        rows = kept_idx[sym_kept == s]  # arrival order == ts order for in-order ticks
        mean, std, cnt = two_pass_prev(ticks.ts[rows], ticks.price[rows], window_ms)
        ref["exact_prev_mean"][rows] = mean
        ref["prev_std"][rows] = std
        ref["exact_prev_count"][rows] = cnt

    if not np.array_equal(ref["exact_prev_count"][keep], ref["prev_count"][keep]):
        raise AssertionError("pandas closed='left' counts disagree with the searchsorted windows")

    if basis == "return":
        return_reference(ticks, keep, window_ms, ref)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (ref["ret"] - ref["ret_prev_mean"]) / ref["ret_prev_std"]
        std = ref["ret_prev_std"]
        z_ok = keep & ~np.isnan(ref["ret"]) & (ref["ret_prev_count"] >= min_count) & ~np.isnan(std) & (std != 0)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (ticks.price - ref["exact_prev_mean"]) / ref["prev_std"]
        z_ok = keep & (ref["prev_count"] >= min_count) & ~np.isnan(ref["prev_std"]) & (ref["prev_std"] != 0)
    ref["z"] = np.where(z_ok, z, np.nan)
    absz = np.abs(ref["z"])
    ref["anomaly"] = z_ok & (absz >= threshold)
    ref["anomaly_either"] = z_ok & (np.abs(absz - threshold) <= FLAG_BAND)
    ref["late"] = late
    return ref


def compare(ticks: Ticks, ours: list[dict | None], ref: dict[str, np.ndarray], mm: Mismatches) -> dict[str, float]:
    """Compare field by field; returns the max error per statistic (over rows both non-null)."""
    n = min(len(ticks), len(ours))
    errors: dict[str, float] = {}

    for i in range(n):
        rec, src = ours[i], ticks.records[i]
        if rec is None:
            mm.add(i, "line", "<not a JSON object>", "<enriched tick>")
            continue
        for key, val in src.items():
            got = rec.get(key, MISSING)
            if got is MISSING or got != val or isinstance(got, bool) != isinstance(val, bool):
                mm.add(i, key, got, val)
        if "volume" not in src and rec.get("volume", 0) != 0:
            mm.add(i, "volume", rec.get("volume"), 0)

    refn = {k: v[:n] for k, v in ref.items()}
    recs = ours[:n]
    mean_scale = np.abs(refn["exact_prev_mean"])
    fields = (*STAT_FIELDS, *RET_FIELDS) if "ret" in refn else STAT_FIELDS
    for name in fields:
        vals, null, bad = column(recs, name)
        want = refn[name]
        want_null = np.isnan(want)
        both = ~null & ~bad & ~want_null
        if name in INT_FIELDS:
            err = np.abs(vals - want)
            ok = err == 0
            errors[name] = float(err[both].max()) if both.any() else 0.0
        elif name == "z":
            err = np.abs(vals - want)
            ok = err <= Z_TOL
            errors[name] = float(err[both].max()) if both.any() else 0.0
        elif name == "prev_std":
            scale = np.maximum(np.abs(want), STD_FLOOR * mean_scale)
            err = rel_err(vals, want, scale)
            ok = err <= REL_TOL
            errors[name] = float(err[both].max()) if both.any() else 0.0
        elif name in ("ret", "ret_prev_mean"):
            err = np.abs(vals - want)
            ok = err <= RET_TOL
            errors[name] = float(err[both].max()) if both.any() else 0.0
        elif name == "ret_prev_std":
            # Returns are centred near 0: relative to the std, floored at the spec's ret tolerance.
            err = np.abs(vals - want) / np.maximum(np.abs(want), RET_TOL)
            ok = err <= REL_TOL
            errors[name] = float(err[both].max()) if both.any() else 0.0
        else:
            err = rel_err(vals, want)
            ok = err <= REL_TOL
            errors[name] = float(err[both].max()) if both.any() else 0.0
        wrong = bad | (null != want_null) | (both & ~ok)
        mm.add_rows(
            np.flatnonzero(wrong),
            name,
            lambda i, name=name: recs[i].get(name, MISSING) if recs[i] is not None else MISSING,
            lambda i, want=want, as_int=name in INT_FIELDS: py(want[i], as_int),
        )

    for name in ("anomaly", "late"):
        want = refn[name]
        got = [MISSING if r is None else r.get(name, MISSING) for r in recs]
        is_bool = np.array([isinstance(g, bool) for g in got], dtype=bool)
        val = np.array([g is True for g in got], dtype=bool)
        wrong = ~is_bool | (val != want.astype(bool))
        if name == "anomaly":
            wrong &= ~(is_bool & refn["anomaly_either"])
        mm.add_rows(np.flatnonzero(wrong), name, lambda i, got=got: got[i], lambda i, want=want: bool(want[i]))
    return errors


def write_reference(ticks: Ticks, ref: dict[str, np.ndarray], path: pathlib.Path) -> None:
    """Write the reference as enriched records: input fields, then the statistics."""

    def num(v: float, as_int: bool = False) -> object:
        if math.isnan(v):
            return None
        return int(v) if as_int else float(v)

    with open(path, "w", encoding="utf-8") as fh:
        for i, src in enumerate(ticks.records):
            rec = dict(src)
            for name in (*STAT_FIELDS, *RET_FIELDS) if "ret" in ref else STAT_FIELDS:
                rec[name] = num(ref[name][i], as_int=name in INT_FIELDS)
            rec["prev_mean"] = num(ref["exact_prev_mean"][i]) if rec["prev_mean"] is not None else None
            rec["anomaly"] = bool(ref["anomaly"][i])
            rec["late"] = bool(ref["late"][i])
            fh.write(json.dumps(rec, separators=(",", ":")) + "\n")


def info_deviation(ref: dict[str, np.ndarray]) -> tuple[float, float]:
    """How far pandas' online std and mean are from the two-pass values (information only)."""
    std = ref["prev_std"]
    pstd = ref["pandas_prev_std"]
    both = ~np.isnan(std) & ~np.isnan(pstd)
    scale = np.maximum(np.abs(std), STD_FLOOR * np.abs(ref["exact_prev_mean"]))
    std_dev = float(rel_err(pstd[both], std[both], scale[both]).max()) if both.any() else 0.0
    pm, em = ref["prev_mean"], ref["exact_prev_mean"]
    both = ~np.isnan(pm) & ~np.isnan(em)
    mean_dev = float(rel_err(pm[both], em[both]).max()) if both.any() else 0.0
    return std_dev, mean_dev


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Check enriched ticks against pandas + two-pass numpy (analytics.md).")
    ap.add_argument("--input", required=True, type=pathlib.Path, help="input ticks, JSON lines, arrival order")
    ap.add_argument("--ours", required=True, type=pathlib.Path, help="our enriched output, JSON lines")
    ap.add_argument("--window", default="5m", help="rolling window W (default 5m)")
    ap.add_argument("--min-count", type=int, default=20, help="fewest previous-window ticks for a z (default 20)")
    ap.add_argument(
        "--threshold", type=float, default=3.0, help="|z| at or above which a tick is an anomaly (default 3.0)"
    )
    ap.add_argument("--symbols", default=None, help="tick-filter watchlist, comma-separated (default: all)")
    ap.add_argument(
        "--basis", choices=("price", "return"), default="price", help="what z scores: price level or log return"
    )
    ap.add_argument(
        "--write-reference",
        type=pathlib.Path,
        default=None,
        help="also write the reference enriched records (JSON lines) here, e.g. to diff by hand",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        window_ms = parse_duration(args.window)
        if args.min_count < 0 or not math.isfinite(args.threshold) or args.threshold <= 0:
            raise UsageError("--min-count must be >= 0 and --threshold a positive number")
        symbols = {s for s in args.symbols.split(",") if s} if args.symbols else None
        ticks = read_ticks(args.input, symbols)
        ours, bad_lines = read_jsonl(args.ours)
    except UsageError as e:
        print(f"check_enriched: {e}", file=sys.stderr)
        return EXIT_USAGE

    t0 = time.perf_counter()
    ref = reference(ticks, window_ms, args.min_count, args.threshold, args.basis)
    ref_secs = time.perf_counter() - t0

    if args.write_reference is not None:
        write_reference(ticks, ref, args.write_reference)

    mm = Mismatches()
    if len(ours) != len(ticks):
        mm.add(-1, "row count", len(ours), len(ticks), where="output")
    errors = compare(ticks, ours, ref, mm)
    std_dev, mean_dev = info_deviation(ref)

    n = min(len(ticks), len(ours))
    ours_anom = sum(1 for r in ours[:n] if r is not None and r.get("anomaly") is True)
    dropped = sum(ticks.invalid.values())
    print(
        f"check_enriched: basis={args.basis} window={args.window} min_count={args.min_count} "
        f"threshold={args.threshold}"
    )
    print(
        f"rows checked: {n} (valid input ticks {len(ticks)}, output lines {len(ours)}, late {int(ref['late'].sum())}, "
        f"invalid input dropped {dropped}{' ' + str(ticks.invalid) if dropped else ''})"
    )
    print(
        "max error: "
        + ", ".join(
            f"{k} {'abs' if k in ('z', 'ret', 'ret_prev_mean', *INT_FIELDS) else 'rel'} {v:.3g}"
            for k, v in errors.items()
        )
    )
    print(
        f"anomalies: ours {ours_anom}, reference {int(ref['anomaly'].sum())} "
        f"(within {FLAG_BAND:g} of the threshold: {int(ref['anomaly_either'].sum())})"
    )
    print(
        f"info: pandas rolling std vs two-pass, max rel deviation {std_dev:.3g}; pandas mean vs two-pass {mean_dev:.3g}"
    )
    if args.basis == "return":
        std, pstd = ref["ret_prev_std"], ref["pandas_ret_prev_std"]
        both = ~np.isnan(std) & ~np.isnan(pstd) & (std > 0)
        dev = float((np.abs(pstd[both] - std[both]) / std[both]).max()) if both.any() else 0.0
        print(f"info: pandas rolling std of returns vs two-pass, max rel deviation {dev:.3g}")
    print(f"reference computed in {ref_secs:.1f} s")
    mm.report()
    ok = mm.total == 0 and bad_lines == 0
    print("PASS" if ok else "FAIL")
    return EXIT_PASS if ok else EXIT_MISMATCH


if __name__ == "__main__":
    sys.exit(main())
