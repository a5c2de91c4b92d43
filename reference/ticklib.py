"""Shared helpers for the reference checkers: tick validation, durations, JSON lines, reporting.

Why a module: check_enriched.py and check_bars.py must agree with each other and with
spec/analytics.md on what a valid tick is (tick-filter drops the rest before any statistic) and
on how durations are written, so that logic lives here once.
"""

from __future__ import annotations

import json
import math
import pathlib
import re
import sys
from dataclasses import dataclass, field

import numpy as np

SYMBOL_RE = re.compile(r"[A-Za-z0-9._:-]{1,32}")
DURATION_RE = re.compile(r"([0-9]+)(ms|s|m|h|d)")
UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

EXIT_PASS, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments or unreadable files: the checker exits with status 2."""


def parse_duration(text: str) -> int:
    """Parse `<integer><ms|s|m|h|d>` (the project's duration form) into milliseconds (> 0)."""
    m = DURATION_RE.fullmatch(text.strip())
    if not m or int(m.group(1)) == 0:
        raise UsageError(f"bad duration {text!r}: expected a positive integer and a unit ms|s|m|h|d, e.g. 5m")
    return int(m.group(1)) * UNIT_MS[m.group(2)]


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: object) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def validate_tick(rec: object) -> str | None:
    """Return None for a valid tick, else the reason (analytics.md "Tick (raw record)")."""
    if not isinstance(rec, dict):
        return "not an object"
    sym = rec.get("symbol")
    if not isinstance(sym, str) or not SYMBOL_RE.fullmatch(sym):
        return "bad symbol"
    ts = rec.get("ts")
    if not _is_int(ts) or ts <= 0:
        return "bad ts"
    price = rec.get("price")
    if not _is_num(price) or price <= 0:
        return "bad price"
    if "volume" in rec:
        vol = rec["volume"]
        if not _is_int(vol) or vol < 0:
            return "bad volume"
    return None


@dataclass
class Ticks:
    """Valid ticks in arrival order, as columns, plus the raw records (for pass-through checks)."""

    records: list[dict]
    symbol: np.ndarray  # object (str)
    ts: np.ndarray  # int64, epoch ms
    price: np.ndarray  # float64
    volume: np.ndarray  # int64 (absent = 0)
    invalid: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)


def read_ticks(path: pathlib.Path, symbols: set[str] | None = None) -> Ticks:
    """Read input ticks, keeping the valid ones (and, with a watchlist, only its symbols).

    Unparsable lines and invalid records are counted by reason, never fatal: the tick-filter
    module drops them the same way.
    """
    records: list[dict] = []
    invalid: dict[str, int] = {}
    try:
        fh = open(path, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read input {path}: {e}") from e
    with fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                invalid["not JSON"] = invalid.get("not JSON", 0) + 1
                continue
            reason = validate_tick(rec)
            if reason is not None:
                invalid[reason] = invalid.get(reason, 0) + 1
                continue
            if symbols is not None and rec["symbol"] not in symbols:
                continue
            records.append(rec)
    return Ticks(
        records=records,
        symbol=np.array([r["symbol"] for r in records], dtype=object),
        ts=np.array([r["ts"] for r in records], dtype=np.int64),
        price=np.array([float(r["price"]) for r in records], dtype=np.float64),
        volume=np.array([r.get("volume", 0) for r in records], dtype=np.int64),
        invalid=invalid,
    )


def read_jsonl(path: pathlib.Path) -> tuple[list[dict | None], int]:
    """Read our output: one object per line. Returns (records, bad_lines); a bad line is None."""
    out: list[dict | None] = []
    bad = 0
    try:
        fh = open(path, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read output {path}: {e}") from e
    with fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                rec = None
            if not isinstance(rec, dict):
                rec = None
                bad += 1
            out.append(rec)
    return out, bad


MISSING = object()


def column(records: list[dict | None], name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Extract a numeric field: (values with NaN for null, null mask, bad mask).

    bad = the field is missing, the line was unparsable, or the value is not a number/null.
    """
    n = len(records)
    vals = np.full(n, np.nan)
    null = np.zeros(n, dtype=bool)
    bad = np.zeros(n, dtype=bool)
    for i, r in enumerate(records):
        v = MISSING if r is None else r.get(name, MISSING)
        if v is None:
            null[i] = True
        elif _is_num(v):
            vals[i] = v
        else:
            bad[i] = True
    return vals, null, bad


def rel_err(ours: np.ndarray, ref: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """|ours - ref| / scale (scale defaults to |ref|; 0/0 counts as 0)."""
    scale = np.abs(ref) if scale is None else scale
    diff = np.abs(ours - ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(diff == 0, 0.0, diff / scale)
    return out


class Mismatches:
    """Counts every mismatch per field and keeps the earliest ones (by row) for the report.

    add_rows() takes all wrong rows of one field at once and keeps only its first `limit`, so
    that a completely wrong output of 500k rows stays cheap to report.
    """

    def __init__(self, limit: int = 10) -> None:
        self.limit = limit
        self.by_field: dict[str, int] = {}
        self.samples: list[tuple[int, int, str, str, object, object]] = []
        self.total = 0
        self._seq = 0

    def add(self, row: int, fld: str, ours: object, ref: object, where: str | None = None) -> None:
        """One mismatch at `row` (0-based; reported 1-based as `where` or `row N`)."""
        self.total += 1
        self.by_field[fld] = self.by_field.get(fld, 0) + 1
        self._seq += 1
        self.samples.append((row, self._seq, where or f"row {row + 1}", fld, ours, ref))
        if len(self.samples) > 4 * self.limit:
            self.samples = sorted(self.samples)[: self.limit]

    def add_rows(self, rows, fld: str, ours_of, ref_of, where_of=None) -> None:
        """All mismatches of one field: rows is an increasing sequence of 0-based rows."""
        n = len(rows)
        if not n:
            return
        for r in list(rows[: self.limit]):
            self.add(int(r), fld, ours_of(int(r)), ref_of(int(r)), where_of(int(r)) if where_of else None)
        self.total += n - min(n, self.limit)
        self.by_field[fld] += n - min(n, self.limit)

    def report(self, out=sys.stdout) -> None:
        if not self.total:
            print("mismatches: 0", file=out)
            return
        per = ", ".join(f"{k}={v}" for k, v in sorted(self.by_field.items()))
        print(f"mismatches: {self.total} ({per})", file=out)
        first = sorted(self.samples)[: self.limit]
        print(f"first {len(first)}:", file=out)
        for _row, _seq, where, fld, ours, ref in first:
            print(f"  {where}  {fld}: ours={_fmt(ours)} reference={_fmt(ref)}", file=out)


def _fmt(v: object) -> str:
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return "null"
        return repr(float(v))
    if isinstance(v, np.integer):
        return str(int(v))
    if isinstance(v, np.bool_):
        return str(bool(v)).lower()
    if v is None or v is MISSING:
        return "null" if v is None else "<missing>"
    return json.dumps(v) if isinstance(v, (bool, str)) else str(v)


def py(v: object, as_int: bool = False) -> object:
    """A numpy scalar as a plain Python value, NaN as None (for mismatch messages)."""
    if isinstance(v, (float, np.floating)) and math.isnan(v):
        return None
    if as_int:
        return int(v)
    if isinstance(v, np.generic):
        return v.item()
    return v
