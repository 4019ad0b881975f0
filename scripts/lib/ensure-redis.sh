# shellcheck shell=bash
# Sourced by scripts/test, scripts/demo and scripts/redis-suite: makes sure redis-server,
# redis-cli and redis-benchmark are installed (Debian packages redis-server + redis-tools)
# and that this redis-server was built with TLS support.
#
# Functions:
#   as_root CMD...        run CMD as root (directly, or through sudo when not root)
#   apt_install PKG...    apt-get update once per process, then apt-get install -y PKG...
#   ensure_redis          install redis-server/redis-tools if any of the three programs is missing
#   ensure_redis_tls      fail with a clear message unless redis-server understands --tls-port
#   ensure_command CMD PKG  install PKG if CMD is not on PATH

_REDAUTH_APT_UPDATED=${_REDAUTH_APT_UPDATED:-0}

log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root to run '$*' (not root, and sudo is not installed)"
  fi
}

apt_install() {
  command -v apt-get >/dev/null 2>&1 ||
    die "apt-get not found: install these packages by hand: $*"
  if [ "$_REDAUTH_APT_UPDATED" != 1 ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    _REDAUTH_APT_UPDATED=1
  fi
  log "apt-get install -y $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

ensure_command() {
  command -v "$1" >/dev/null 2>&1 || apt_install "$2"
  command -v "$1" >/dev/null 2>&1 || die "'$1' is still missing after installing $2"
}

# The redis-server package starts its own service on 127.0.0.1:6379 when it is installed
# (where an init system runs). Tests use ephemeral ports, so it would only get in the way of
# scripts/demo, which listens on 6379: stop the service we just caused to start.
_stop_packaged_redis_service() {
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
    log "stopping the redis-server service the package started (it binds 127.0.0.1:6379)"
    as_root systemctl stop redis-server || true
  elif [ -x /etc/init.d/redis-server ] && [ -s /run/redis/redis-server.pid ]; then
    log "stopping the redis-server service the package started (it binds 127.0.0.1:6379)"
    as_root /etc/init.d/redis-server stop >/dev/null 2>&1 || true
  fi
}

ensure_redis() {
  local missing=0 prog
  for prog in redis-server redis-cli redis-benchmark; do
    command -v "$prog" >/dev/null 2>&1 || missing=1
  done
  if [ "$missing" = 1 ]; then
    apt_install redis-server redis-tools
    _stop_packaged_redis_service
  fi
  for prog in redis-server redis-cli redis-benchmark; do
    command -v "$prog" >/dev/null 2>&1 || die "'$prog' is still missing after installing redis-server redis-tools"
  done
}

# A redis-server without TLS rejects tls-port as an unknown directive; one with TLS gets past
# that and then fails on the missing certificate. Either way nothing stays running.
ensure_redis_tls() {
  local out
  out=$(redis-server --port 0 --tls-port 1 --save '' \
    --tls-cert-file /nonexistent/redauth-probe.pem --tls-key-file /nonexistent/redauth-probe.key \
    --tls-ca-cert-file /nonexistent/redauth-probe-ca.pem 2>&1 </dev/null || true)
  if printf '%s' "$out" | grep -q 'Bad directive'; then
    die "$(redis-server --version | head -n1) was built without TLS support; redauth's tests need a TLS-capable redis-server (Debian's redis-server package has it)"
  fi
  printf '%s' "$out" | grep -qi 'tls' ||
    die "could not tell whether redis-server supports TLS; its output was: $out"
}
