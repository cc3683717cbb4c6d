#!/usr/bin/env bash
# Starts the services the tests use when they are not running (needs root; `make test` calls it as root):
# PostgreSQL on 127.0.0.1:5432 (user postgres, no password from loopback), Redis on 127.0.0.1:6379 and
# Ceph RGW (S3) on 127.0.0.1:${RGW_PORT:-17480} (scripts/start-ceph.sh; about a minute the first time).
# Each step returns at once when its port already answers. One line and a non-zero exit when one fails.
set -u
cd "$(dirname "$0")/.."
fail() {
  echo "start-test-services: $1" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || fail "needs root"

# --- PostgreSQL --------------------------------------------------------------------------------------
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
  [ -n "$version" ] || fail "no PostgreSQL cluster in /etc/postgresql (apt-get install postgresql)"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || fail "pg_ctlcluster $version main start failed"
  for _ in $(seq 60); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.5; done
  pg_isready -h 127.0.0.1 -p 5432 -q || fail "PostgreSQL did not come up on 127.0.0.1:5432"
fi
# The tests connect as postgres from loopback without a password (SUITE_TEST_POSTGRES overrides). A
# fresh Debian cluster asks for one (scram-sha-256): allow exactly that user from 127.0.0.1 on this test
# machine, and say so.
if [ -z "${SUITE_TEST_POSTGRES:-}" ] && ! psql -h 127.0.0.1 -U postgres -w -Atc 'select 1' >/dev/null 2>&1; then
  hba=$(su postgres -c "psql -Atc 'show hba_file'" 2>/dev/null) || fail "cannot ask PostgreSQL for its pg_hba.conf"
  sed -i '1i host all postgres 127.0.0.1/32 trust  # added by suite scripts/start-test-services.sh (tests)' "$hba"
  su postgres -c "psql -qc 'select pg_reload_conf()'" >/dev/null || fail "cannot reload PostgreSQL"
  echo "start-test-services: $hba now trusts user postgres from 127.0.0.1 (for the tests)" >&2
  psql -h 127.0.0.1 -U postgres -w -Atc 'select 1' >/dev/null 2>&1 || fail "cannot connect as postgres@127.0.0.1"
fi

# --- Redis -------------------------------------------------------------------------------------------
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/suite-tests.log || fail "redis-server did not start"
  for _ in $(seq 40); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.25; done
  redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || fail "Redis did not come up on 127.0.0.1:6379"
fi

# --- Ceph RGW (S3) -----------------------------------------------------------------------------------
bash scripts/start-ceph.sh >/dev/null || fail "scripts/start-ceph.sh failed (Ceph RGW for the S3 tests)"
exit 0
