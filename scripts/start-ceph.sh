#!/usr/bin/env bash
# Make sure a single-node Ceph RGW (S3) listens on 127.0.0.1:${RGW_PORT:-17480} for the S3 blob tests.
# Does nothing when the port is already open; otherwise (re)starts it with scripts/ceph-s3.sh
# (Debian ceph packages, needs root; about a minute on a fresh machine). The test fixture in
# tests/storage/test_s3.py calls this, so `make test` needs no extra step.
# Prints "S3 endpoint http://127.0.0.1:PORT  access=AK secret=SK" (keys: S3_AK / S3_SK or the kit defaults).
set -euo pipefail
KIT="$(cd "$(dirname "$0")" && pwd)/ceph-s3.sh"
PORT=${RGW_PORT:-17480}
AK=${S3_AK:-CEPHFILESACCESSKEY}; SK=${S3_SK:-ceph-files-secret-key-123}
# One starter at a time (parallel pytest workers, ceph-rgw-multi.sh): the second waits, then finds the port
# open. The daemons the kit starts must not inherit the lock's descriptor (9>&-), or it is never released.
exec 9>"${TMPDIR:-/tmp}/suite-ceph-$PORT.lock"
flock 9
# A full OSD blocks every write (Ceph stops at its full ratio) and would hang every S3 test after it:
# a cluster more than 80 % used (a bench left data behind) is started afresh — the kit wipes its state.
used_pct() {
  ceph -c "${CEPH_DIR:-${TMPDIR:-/tmp}/suite-ceph}/ceph.conf" df --format json 2>/dev/null \
    | python3 -c 'import json,sys; s=json.load(sys.stdin)["stats"]; print(int(100*s["total_used_raw_bytes"]/s["total_bytes"]))' \
    2>/dev/null || echo 0
}
if (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null; then
  used=$(timeout 30 bash -c "$(declare -f used_pct); used_pct" || echo 0)
  if [ "$used" -le 80 ]; then
    echo "S3 endpoint http://127.0.0.1:$PORT  access=$AK secret=$SK"
    exit 0
  fi
  echo "the test Ceph cluster is ${used} % full: starting it afresh" >&2
  bash "$(dirname "$KIT")/ceph-rgw-multi.sh" stop >/dev/null 2>&1 9>&- || true
fi
[ -f "$KIT" ] || { echo "missing $KIT" >&2; exit 3; }
[ "$(id -u)" = 0 ] || { echo "Ceph needs root" >&2; exit 4; }
# Half-running (port closed, daemons alive) makes the kit refuse to start: stop first.
bash "$KIT" stop >/dev/null 2>&1 9>&- || true
bash "$KIT" start 9>&-
