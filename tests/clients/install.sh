#!/usr/bin/env bash
# Installs the real client libraries the cluster client tests drive (tests/cluster_clients.rs):
# redis-py (and botocore, the AWS signer tests/aws_token_botocore.rs compares tokens with) in a
# virtualenv and ioredis with npm, both under .cache/clients/, pinned. Prints the python
# interpreter and the node module directory on two lines; with the argument `python`, installs
# and prints only the former. Does nothing when they are there already. Needs python3 (with
# venv) and npm; installs python3-venv with apt if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lib/ensure-redis.sh
source scripts/lib/ensure-redis.sh

REDIS_PY=7.1.0
BOTOCORE=1.44.8
IOREDIS=5.9.3
cache=$PWD/.cache/clients
venv=$cache/venv
node=$cache/node

mkdir -p "$cache"
# Test binaries run in parallel and several call this at once: one installs, the others wait
# (two pip installs into one virtualenv at once break each other).
exec 9>"$cache/.install.lock"
flock 9
if ! "$venv/bin/python" -c "import redis, botocore, sys; sys.exit(redis.__version__ != '$REDIS_PY' or botocore.__version__ != '$BOTOCORE')" 2>/dev/null; then
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$venv"; }
  "$venv/bin/pip" install -q --disable-pip-version-check "redis==$REDIS_PY" "botocore==$BOTOCORE" >&2
fi
if [ "${1:-}" = python ]; then
  echo "$venv/bin/python"
  exit 0
fi
if [ ! -f "$node/node_modules/ioredis/package.json" ] ||
  ! grep -q "\"version\": \"$IOREDIS\"" "$node/node_modules/ioredis/package.json"; then
  command -v npm >/dev/null 2>&1 || apt_install npm
  npm install --silent --no-audit --no-fund --prefix "$node" "ioredis@$IOREDIS" >&2
fi
echo "$venv/bin/python"
echo "$node/node_modules"
