#!/usr/bin/env bash
# Installs the Debian tools and services Suite's tests drive as real peers and clients, *with* what each
# needs to work (the Recommends/Suggests the tests rely on), then checks that every one of them works.
# Safe to re-run: installs only what is missing. Exits non-zero with one line naming the first tool
# that is missing or does not work.
#
#   - installing needs root and apt-get; without them the missing packages are listed and the script
#     exits 0 (the tests that need them skip locally and fail under SUITE_REQUIRE_ALL=1, as in CI)
#   - SKIP_TOOL_CHECKS=1 installs without the checks
set -u
cd "$(dirname "$0")/.."

# package                 why the tests need it
PKGS=(
  swaks                   # tests/mail/smtp: submission with STARTTLS + AUTH, the MX
  libnet-ssleay-perl      # swaks --tls (Recommends; --no-install-recommends drops it)
  libio-socket-ssl-perl   # swaks --tls-verify / --tls-ca-path
  libauthen-sasl-perl     # swaks --auth DIGEST-MD5 (Suggests)
  libnet-dns-perl         # swaks MX routing (Recommends)
  libio-socket-inet6-perl # swaks IPv6 (Recommends)
  isync                   # mbsync against our IMAP server
  offlineimap3            # offlineimap against our IMAP server
  ca-certificates         # offlineimap3 / curl TLS
  curl                    # IMAP (imap://, imaps://) and the files HTTP API
  litmus                  # WebDAV conformance
  rclone                  # WebDAV client
  coturn                  # turnserver: TURN relay tests (and `suite serve` with coturn_enabled)
  janus                   # meetings on Janus's VideoRoom (tests/e2e/test_meeting_janus.py, bench/calls)
  janus-tools             # janus-pp-rec: Janus's .mjr recordings into WebM/Ogg (tests/voip/test_meetings_janus.py)
  openssl                 # TURN REST credential cross-check
  chromium                # tests/e2e through Playwright (/usr/bin/chromium; never `playwright install`)
  fonts-liberation        # chromium's Recommends: text renders in the screenshots
  espeak-ng               # the voicemail greeting's voice
  ffmpeg                  # ffprobe: a meeting recording in Files has audio and video of the right length
  sieve-connect           # ManageSieve client (tests/mail/sieve)
  util-linux              # unshare -n: WebRTC tests in a private network namespace
  iproute2                # ip link set lo up inside that namespace
  postgresql              # every store test runs on PostgreSQL too
  redis-server            # the Redis event bus
  docker-compose          # tests/ops/test_docker.py: `docker-compose config -q` validates docker/compose.yaml
  strace                  # tests/storage/test_rawdb.py counts the fsyncs of relaxed and durable commits
)
# The web app (built by `make setup`) needs node and npm: Debian's when none is installed.
command -v node >/dev/null || PKGS+=(nodejs)
command -v npm >/dev/null || PKGS+=(npm)

want=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || want+=("$p")
done

if [ ${#want[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "test tools not installed (need root + apt-get): ${want[*]} — tests that need them will skip" >&2
    exit 0
  fi
  echo "installing test tools: ${want[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null || true
  # The packages above already name the Recommends the tests use; the rest (desktop bits) stay out.
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${want[@]}" >/dev/null || {
    echo "install-test-tools: apt-get install failed for: ${want[*]}" >&2
    exit 1
  }
  # Debian may start coturn on install; the tests start their own turnserver on other ports.
  (command -v service >/dev/null && service coturn stop) >/dev/null 2>&1 || true
  (command -v service >/dev/null && service janus stop) >/dev/null 2>&1 || true
fi

[ "${SKIP_TOOL_CHECKS:-0}" = 1 ] && exit 0

# ----- checks: each tool does what the tests ask of it ---------------------------------------------
fail() {
  echo "install-test-tools: $1" >&2
  exit 1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for t in swaks mbsync offlineimap curl litmus rclone turnserver janus janus-pp-rec openssl chromium espeak-ng ffprobe unshare ip node npm docker-compose; do
  command -v "$t" >/dev/null || fail "$t is not on PATH after installing"
done

# swaks: STARTTLS + AUTH PLAIN against a tiny loopback SMTP server (Python's ssl, a throwaway certificate).
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
  -keyout "$tmp/key.pem" -out "$tmp/cert.pem" >/dev/null 2>&1 || fail "openssl cannot make a certificate"
python3 - "$tmp" 2>/dev/null <<'PY' &
import socket, ssl, sys
tmp = sys.argv[1]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(f"{tmp}/cert.pem", f"{tmp}/key.pem")
srv = socket.create_server(("127.0.0.1", 0))
srv.settimeout(60)
open(f"{tmp}/port", "w").write(str(srv.getsockname()[1]))
conn, _ = srv.accept()
conn.settimeout(30)
f, tls = conn.makefile("rwb"), False
def send(line):
    f.write(line.encode() + b"\r\n"); f.flush()
send("220 check ESMTP")
while True:
    line = f.readline().decode().strip()
    verb = line.split(" ")[0].upper()
    if verb == "EHLO":
        caps = ["AUTH PLAIN LOGIN"] if tls else ["STARTTLS"]
        send("250-check"); [send(f"250-{c}") for c in caps[:-1]]; send(f"250 {caps[-1]}")
    elif verb == "STARTTLS":
        send("220 go ahead")
        conn = ctx.wrap_socket(conn, server_side=True); f, tls = conn.makefile("rwb"), True
    elif verb == "AUTH":
        send("235 2.7.0 ok" if tls else "530 5.7.0 STARTTLS first")
    elif verb in ("MAIL", "RCPT"):
        send("250 ok")
    elif verb == "DATA":
        send("354 go")
        while f.readline() not in (b".\r\n", b""):
            pass
        send("250 2.0.0 " + ("queued over TLS" if tls else "queued in the clear"))
    elif verb == "QUIT" or not line:
        send("221 bye"); break
    else:
        send("502 no")
PY
server=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
[ -s "$tmp/port" ] || fail "the loopback SMTP server for the swaks check did not start"
out=$(swaks --server 127.0.0.1 --port "$(cat "$tmp/port")" --tls --auth PLAIN --auth-user u --auth-password p \
  --from a@check.test --to b@check.test --timeout 20 2>&1)
rc=$?
kill "$server" 2>/dev/null # still waiting when swaks gave up before connecting
wait "$server" 2>/dev/null
[ $rc = 0 ] && grep -q "queued over TLS" <<<"$out" ||
  fail "swaks cannot do STARTTLS + AUTH (libnet-ssleay-perl, libio-socket-ssl-perl, libauthen-sasl-perl?): $(grep -m1 -E '^\*\*\*' <<<"$out")"
swaks --support 2>&1 | grep -q "TLS supported" || fail "swaks --support: no TLS"

mbsync --version >/dev/null 2>&1 || fail "mbsync --version fails"
offlineimap --version >/dev/null 2>&1 || fail "offlineimap --version fails"
curl -V | grep -q "imaps" || fail "curl has no imap/imaps support"
litmus --version >/dev/null 2>&1 || fail "litmus --version fails"
rclone version >/dev/null 2>&1 || fail "rclone version fails"
command -v sieve-connect >/dev/null || fail "sieve-connect missing"
turnserver -h >/dev/null 2>&1 || fail "turnserver -h fails"
janus-pp-rec -F 2>&1 | grep -q webm || fail "janus-pp-rec cannot write WebM (janus-tools)"
espeak-ng -w "$tmp/v.wav" "voicemail" >/dev/null 2>&1 && [ -s "$tmp/v.wav" ] || fail "espeak-ng cannot speak (espeak-ng-data?)"
timeout 120 chromium --headless=new --no-sandbox --disable-gpu --dump-dom 'data:text/html,<p>chromium-ok</p>' \
  2>/dev/null | grep -q chromium-ok || fail "chromium --headless cannot render a page"
# janus: starts with the config the tests write (VideoRoom + WebSocket transport only) and answers
# a session create on its WebSocket API.
mkdir -p "$tmp/janus"
PYTHONPATH=. python3 - "$tmp/janus" <<'PY' 2>"$tmp/janus.err" || fail "janus does not start or answer on its WebSocket API: $(tail -c 300 "$tmp/janus.err")"
import asyncio, json, sys
from pathlib import Path
try:
    from suite.voip.janus_config import LocalJanus
except ImportError:  # no venv yet: the config writer needs only the standard library
    import importlib.util
    spec = importlib.util.spec_from_file_location("jc", "suite/voip/janus_config.py")
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod); LocalJanus = mod.LocalJanus
import socket, base64, os
with LocalJanus(Path(sys.argv[1])) as url:
    host, port = url[5:].split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: janus-protocol\r\n\r\n").encode())
    head = s.recv(4096)
    assert b" 101 " in head.split(b"\r\n")[0], head[:200]
    payload = json.dumps({"janus": "create", "transaction": "check"}).encode()
    mask = os.urandom(4)
    s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    data = s.recv(4096)
    assert b'"success"' in data, data[:200]
PY
node --version >/dev/null 2>&1 || fail "node --version fails"
npm --version >/dev/null 2>&1 || fail "npm --version fails"
if [ "$(id -u)" = 0 ]; then
  unshare -n sh -c 'ip link set lo up' || fail "unshare -n / ip link cannot make a network namespace"
fi
command -v pg_ctlcluster >/dev/null || command -v pg_ctl >/dev/null || fail "PostgreSQL server binaries missing"
command -v redis-server >/dev/null || fail "redis-server missing"
echo "test tools ok" >&2
exit 0
