#!/usr/bin/env bash
# Builds the web app (make web): Debian's nodejs/npm when missing (root + apt), the npm packages of
# the lockfile (npm ci, only when the lockfile changed), then the esbuild bundle into web/dist.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's nodejs and npm" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  else
    echo "web: node/npm missing and not root: install nodejs and npm (Debian packages)" >&2
    exit 1
  fi
fi
if [ -f package-lock.json ]; then
  if ! cmp -s package-lock.json node_modules/.suite-lock 2>/dev/null; then
    npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json node_modules/.suite-lock
  fi
else
  npm install --no-audit --no-fund --loglevel=error
fi
node build.mjs
