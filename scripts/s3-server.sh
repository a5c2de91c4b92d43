#!/usr/bin/env bash
# An S3 server on loopback: moto in server mode (PyPI moto[server]), in a venv of its own.
#
#   scripts/s3-server.sh setup                 the venv, once (a stamp makes it a no-op after)
#   scripts/s3-server.sh run [--port PORT]     in the foreground, at http://127.0.0.1:PORT
#                                              (default 9000); objects live in its memory
#
# Then, for example:
#   curl -X PUT http://127.0.0.1:9000/stock        # a bucket (this server takes unsigned requests)
#   AWS_ACCESS_KEY_ID=any AWS_SECRET_ACCESS_KEY=any \
#     stockstream run --outputs s3://stock/run1 --s3-endpoint http://127.0.0.1:9000
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv="$root/.cache/s3-server/venv"
req="$root/scripts/s3-server/requirements.txt"
stamp="$venv/.stamp"

die() { echo "s3-server: $*" >&2; exit 1; }

setup() {
  local want
  want=$(sha256sum "$req" | cut -d' ' -f1)
  if [ -x "$venv/bin/moto_server" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  echo "s3-server: installing $(grep -v '^#' "$req" | xargs) into $venv" >&2
  [ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv" >&2
  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
    "$venv/bin/python" -m pip install --quiet -r "$req" </dev/null >&2
  echo "$want" > "$stamp"
}

command=${1:-}
[ -n "$command" ] || die "usage: $0 setup|run [--port PORT]"
shift
case "$command" in
  setup) setup ;;
  run)
    port=9000
    while [ $# -gt 0 ]; do
      case "$1" in
        --port) port=$2; shift 2 ;;
        *) die "unknown option $1" ;;
      esac
    done
    setup
    exec "$venv/bin/moto_server" -H 127.0.0.1 -p "$port"
    ;;
  *) die "unknown command $command (setup or run)" ;;
esac
