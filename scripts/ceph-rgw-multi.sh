#!/usr/bin/env bash
# Several radosgw processes on ONE Ceph cluster, so Suite sees independent S3 providers (storage network).
# usage: ceph-rgw-multi.sh start|stop|kill PORT|revive PORT
#   start  — makes sure the single-node cluster runs (scripts/start-ceph.sh, RGW on 17480), then starts a
#            radosgw on each port of RGW_MULTI_PORTS (default "17481 17482 17483") and creates one user per
#            port (uid net<PORT>, access key NET<PORT>ACCESSKEY, secret net-<PORT>-secret-key); the bucket is
#            the caller's (Suite creates it). Prints one line per provider:
#            "provider PORT http://127.0.0.1:PORT access=AK secret=SK"
#   kill   — SIGKILL the radosgw on PORT (a provider outage); revive — start it again.
# The RGW on 17480 is shared with the other S3 tests and is never killed by this script.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
D=${CEPH_DIR:-${TMPDIR:-/tmp}/suite-ceph}; C=$D/ceph.conf
PORTS=${RGW_MULTI_PORTS:-"17481 17482 17483"}
wait_port() {
  local i
  for i in $(seq $(( ${2:-30} * 10 ))); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
start_one() {
  local port=$1 name=client.rgw.net$1
  if [ -f "$D/run/rgw-$port.pid" ] && kill -0 "$(cat "$D/run/rgw-$port.pid")" 2>/dev/null; then return 0; fi
  [ -f "$D/$name.keyring" ] || ceph -c "$C" auth get-or-create "$name" mon 'allow rw' osd 'allow rwx' mgr 'allow rw' -o "$D/$name.keyring"
  mkdir -p "$D/rgw-$port"
  radosgw -c "$C" -n "$name" -f --rgw_frontends "beast endpoint=127.0.0.1:$port" --rgw_data "$D/rgw-$port" \
    > "$D/log/rgw-$port.out" 2>&1 9>&- &
  echo $! > "$D/run/rgw-$port.pid"
}
case "${1:-}" in
  start)
    [ "$(id -u)" = 0 ] || { echo "Ceph needs root" >&2; exit 4; }
    bash "$HERE/start-ceph.sh" >/dev/null
    exec 9>"${TMPDIR:-/tmp}/suite-ceph-multi.lock"  # two starters must not both spawn a radosgw per port
    flock 9
    for p in $PORTS; do start_one "$p"; done
    for p in $PORTS; do wait_port "$p" 60 || { echo "radosgw on $p did not start (see $D/log/rgw-$p.out)" >&2; exit 1; }; done
    for p in $PORTS; do
      ak=NET${p}ACCESSKEY; sk=net-$p-secret-key
      radosgw-admin -c "$C" user info --uid="net$p" >/dev/null 2>&1 \
        || radosgw-admin -c "$C" user create --uid="net$p" --display-name="net$p" --access-key="$ak" --secret="$sk" >/dev/null
      echo "provider $p http://127.0.0.1:$p access=$ak secret=$sk"
    done ;;
  stop)
    for p in $PORTS; do
      f=$D/run/rgw-$p.pid
      [ -f "$f" ] && { kill "$(cat "$f")" 2>/dev/null || true; rm -f "$f"; }
    done ;;
  kill)
    f=$D/run/rgw-$2.pid
    [ -f "$f" ] || { echo "no radosgw on $2" >&2; exit 1; }
    kill -9 "$(cat "$f")" 2>/dev/null || true; rm -f "$f" ;;
  revive)
    start_one "$2"; wait_port "$2" 60 ;;
  *) echo "usage: $0 start|stop|kill PORT|revive PORT" >&2; exit 2 ;;
esac
