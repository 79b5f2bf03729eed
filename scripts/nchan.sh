#!/usr/bin/env bash
# Runs nginx with the Nchan module (peers/nchan.conf), the peer target of
# `loadtest run|compare --peer nchan`, in the foreground until Ctrl-C or SIGTERM:
#
#   scripts/nchan.sh [--listen 127.0.0.1:PORT]
#
# Prints its URL (http://ADDR) as the first line of standard output, then runs. Without
# --listen it takes a free loopback port. Installs Debian's nginx-light and
# libnginx-mod-nchan with apt-get when they are missing. The config, pid file, logs and
# temporary files go into a fresh temporary directory (like scripts/proxy.sh), removed on exit.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

usage() {
  echo "usage: $0 [--listen ADDR:PORT]" >&2
  exit 2
}

listen=""
while [ $# -gt 0 ]; do
  case "$1" in
    --listen) [ $# -ge 2 ] || usage; listen="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done

need=()
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
[ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] || need+=(libnginx-mod-nchan)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]} (apt-get)" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null; }; then
    echo "error: could not install ${need[*]}" >&2
    exit 1
  fi
fi

if [ -z "$listen" ]; then
  # A free loopback port: bind port 0 and read what the kernel chose. Another process could
  # take it before nginx does; nginx then fails with "Address already in use" and so do we.
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  listen="127.0.0.1:$port"
fi
# The address goes into the config verbatim: HOST:PORT only, so no value can add a directive.
if ! [[ "$listen" =~ ^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$ ]]; then
  echo "error: '$listen' is not HOST:PORT" >&2
  exit 2
fi

rundir="$(mktemp -d "${TMPDIR:-/tmp}/pushpoll-nchan.XXXXXX")"
cleanup() { rm -rf "$rundir"; }
trap cleanup EXIT
sed -e "s|@LISTEN@|$listen|g" -e "s|@RUNDIR@|$rundir|g" "$root/peers/nchan.conf" >"$rundir/nginx.conf"

# Check the config before printing the URL, so a printed URL means a config nginx accepts.
/usr/sbin/nginx -t -q -p "$rundir" -c "$rundir/nginx.conf" -e stderr
echo "http://$listen"
echo "nginx + nchan on http://$listen (files in $rundir)" >&2
# INT/TERM are passed on to nginx (fast shutdown); then the temporary directory goes.
/usr/sbin/nginx -p "$rundir" -c "$rundir/nginx.conf" -e stderr &
nginx_pid=$!
stop() { kill -TERM "$nginx_pid" 2>/dev/null || true; }
trap stop INT TERM
status=0
wait "$nginx_pid" || status=$?
while kill -0 "$nginx_pid" 2>/dev/null; do wait "$nginx_pid" || status=$?; done
exit "$status"
