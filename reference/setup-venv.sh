#!/usr/bin/env bash
# Create (or reuse) the reference venv at <repo>/.venv with pandas, numpy, pyarrow, PySpark
# and mlfinpy's tick data. Idempotent: a stamp file holding a hash of requirements.txt (plus the
# mlfinpy pin) makes a second run a no-op that finishes in well under a second.
# Prints the venv's python path on success. Works non-interactively (CI=true, no stdin).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
venv="$root/.venv"
req="$here/requirements.txt"
mlfinpy_pin="mlfinpy==0.1.2"
stamp="$venv/.stamp"
python="${PYTHON:-python3}"

want="$( { cat "$req"; echo "$mlfinpy_pin"; } | sha256sum | cut -d' ' -f1)"

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "$venv/bin/python"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "setup-venv: creating $venv" >&2
    "$python" -m venv "$venv" >&2
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
echo "setup-venv: installing $req" >&2
"$venv/bin/python" -m pip install --quiet -r "$req" </dev/null >&2
# mlfinpy's own dependencies (numba, scipy, statsmodels, matplotlib, old pandas/numpy pins) are
# heavy and unneeded: we only read its packaged tick_data.csv, never import it.
echo "setup-venv: installing $mlfinpy_pin (--no-deps)" >&2
"$venv/bin/python" -m pip install --quiet --no-deps "$mlfinpy_pin" </dev/null >&2

"$venv/bin/python" - <<'PY' >&2
import importlib.util, pathlib
import numpy, pandas, pyarrow, pyspark  # noqa: F401  (fail here rather than in a checker)
spec = importlib.util.find_spec("mlfinpy")
csv = pathlib.Path(spec.submodule_search_locations[0]) / "dataset" / "data" / "tick_data.csv"
assert csv.is_file(), csv
PY

echo "$want" > "$stamp"
echo "$venv/bin/python"
