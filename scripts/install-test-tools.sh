#!/usr/bin/env bash
# Installs the Debian tools that Suite's tests drive as real peers and clients. Safe to re-run.
set -u
PKGS=(swaks isync offlineimap3 curl coturn litmus rclone chromium espeak-ng sieve-connect)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "test tools not installed (need root + apt): ${missing[*]} — tests that need them will skip" >&2
  exit 0
fi
echo "installing test tools: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# postfix asks questions at install time; answer them so it installs unattended (it is only a
# reference peer for benches/tests and is not started as a system service here).
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || {
  echo "apt-get install failed for: ${missing[*]}" >&2; exit 1; }
# Debian starts some daemons on install; tests start their own instances on other ports.
for svc in dovecot postfix coturn; do
  (command -v service >/dev/null && service "$svc" stop) >/dev/null 2>&1 || true
done
exit 0
