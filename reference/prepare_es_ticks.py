#!/usr/bin/env python3
"""Turn mlfinpy's packaged E-mini S&P 500 trades into project tick JSON lines.

Why: the parity runs need real, dense tick data that installs from a package registry. mlfinpy
0.1.2 ships 500,000 ES futures trades (`DateTime,Price,Volume`, millisecond stamps without a
zone, which we treat as UTC). This writes one tick per line, in file (= arrival) order:

    {"symbol":"ES","ts":1378054800083,"price":1640.25,"volume":8}

mlfinpy is installed with --no-deps, so it is never imported (its __init__ needs numba); the
CSV is found through the package's import spec instead.
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import sys

import numpy as np
import pandas as pd


def tick_csv_path() -> pathlib.Path:
    """Locate mlfinpy/dataset/data/tick_data.csv without importing mlfinpy."""
    spec = importlib.util.find_spec("mlfinpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("mlfinpy is not installed: run reference/setup-venv.sh")
    path = pathlib.Path(next(iter(spec.submodule_search_locations))) / "dataset" / "data" / "tick_data.csv"
    if not path.is_file():
        raise SystemExit(f"mlfinpy is installed but {path} is missing")
    return path


def load_ticks(path: pathlib.Path, symbol: str) -> pd.DataFrame:
    """Read the CSV and return symbol/ts(epoch ms)/price/volume in file order."""
    raw = pd.read_csv(path, dtype={"DateTime": str, "Price": np.float64, "Volume": np.int64})
    stamps = pd.to_datetime(raw["DateTime"], format="%Y-%m-%d %H:%M:%S.%f", utc=True)
    # pandas 3 infers the resolution of parsed strings (microseconds here, not nanoseconds), so
    # never reinterpret the raw int64: convert explicitly to milliseconds.
    ts_ms = stamps.dt.as_unit("ms").astype("int64")
    return pd.DataFrame(
        {"symbol": symbol, "ts": ts_ms.to_numpy(), "price": raw["Price"].to_numpy(), "volume": raw["Volume"].to_numpy()}
    )


def write_jsonl(df: pd.DataFrame, out: pathlib.Path) -> None:
    """Write compact JSON lines; floats use Python's shortest round-trip repr."""
    sym = df["symbol"].iloc[0] if len(df) else ""
    prefix = '{"symbol":"' + sym + '","ts":'
    lines = [
        f'{prefix}{t},"price":{p!r},"volume":{v}}}\n'
        for t, p, v in zip(df["ts"].tolist(), df["price"].tolist(), df["volume"].tolist())
    ]
    with open(out, "w", encoding="utf-8") as fh:
        fh.writelines(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=pathlib.Path, help="output JSON lines file")
    ap.add_argument("--symbol", default="ES", help="symbol to stamp on every tick (default ES)")
    args = ap.parse_args(argv)
    df = load_ticks(tick_csv_path(), args.symbol)
    if not (df["price"] > 0).all() or not (df["volume"] >= 0).all() or not (df["ts"] > 0).all():
        raise SystemExit("unexpected invalid tick in tick_data.csv")
    write_jsonl(df, args.out)
    print(f"wrote {len(df)} ticks to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
