#!/usr/bin/env bash
# Runs nginx in front of pushpoll, in the foreground, until Ctrl-C or SIGTERM:
#
#   scripts/proxy.sh --listen 127.0.0.1:8080 --upstream 127.0.0.1:3000 [--naive]
#
# deploy/nginx.conf is the config correct for all five transports; --naive uses
# deploy/nginx-naive.conf, the proxy lab's broken one (demos/proxy.html). The config is
# written into a fresh temporary directory with the addresses filled in (nginx reads no
# environment variables), together with the pid file, logs and temporary files, so it runs
# as root or not and leaves any system nginx alone. Installs Debian's nginx-light with
# apt-get when nginx is missing. Start the server with the proxy's origin allowed:
#   pushpoll --allow-origin http://127.0.0.1:8080
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

usage() {
  echo "usage: $0 --listen ADDR:PORT --upstream ADDR:PORT [--naive | --config FILE]" >&2
  exit 2
}

listen="" upstream="" config="$root/deploy/nginx.conf"
while [ $# -gt 0 ]; do
  case "$1" in
    --listen) [ $# -ge 2 ] || usage; listen="$2"; shift 2 ;;
    --upstream) [ $# -ge 2 ] || usage; upstream="$2"; shift 2 ;;
    --naive) config="$root/deploy/nginx-naive.conf"; shift ;;
    # Another config with the same placeholders (the tests use it for variants).
    --config) [ $# -ge 2 ] || usage; config="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
[ -n "$listen" ] && [ -n "$upstream" ] || usage
# The addresses go into the config verbatim: accept only HOST:PORT made of the characters an
# IPv4/IPv6 address or a host name can have, so no value can add a directive.
for value in "$listen" "$upstream"; do
  if ! [[ "$value" =~ ^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$ ]]; then
    echo "error: '$value' is not HOST:PORT" >&2
    exit 2
  fi
done

nginx_bin="$(command -v nginx || true)"
[ -n "$nginx_bin" ] || { [ -x /usr/sbin/nginx ] && nginx_bin=/usr/sbin/nginx; } || true
if [ -z "$nginx_bin" ]; then
  echo "==> installing nginx-light (apt-get)" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx-light >/dev/null; }; then
    echo "error: nginx is missing and nginx-light could not be installed" >&2
    exit 1
  fi
  nginx_bin=/usr/sbin/nginx
fi

rundir="$(mktemp -d "${TMPDIR:-/tmp}/pushpoll-proxy.XXXXXX")"
cleanup() { rm -rf "$rundir"; }
trap cleanup EXIT
sed -e "s|@LISTEN@|$listen|g" -e "s|@UPSTREAM@|$upstream|g" -e "s|@RUNDIR@|$rundir|g" \
  "$config" >"$rundir/nginx.conf"

echo "nginx ($(basename "$config")) on http://$listen -> http://$upstream (files in $rundir)" >&2
# nginx runs in the foreground (daemon off). INT/TERM are passed on to it (its master stops
# the worker and exits: "fast shutdown"); then the temporary directory goes.
# -e stderr: nginx's own messages (a bad address, a port in use) go to this terminal.
"$nginx_bin" -p "$rundir" -c "$rundir/nginx.conf" -e stderr &
nginx_pid=$!
stop() { kill -TERM "$nginx_pid" 2>/dev/null || true; }
trap stop INT TERM
status=0
wait "$nginx_pid" || status=$?
# A trapped signal interrupts `wait`; wait again for nginx itself to exit.
while kill -0 "$nginx_pid" 2>/dev/null; do wait "$nginx_pid" || status=$?; done
exit "$status"
