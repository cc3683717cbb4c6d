"""Shared parts of the web app's browser tests: a `suite serve` as a person runs it, Chromium, helpers.

Loaded by path from the test modules (``load()`` below), like tests/e2e/conftest.py loads the voip
fixtures: pytest's importlib mode does not put tests/e2e on sys.path.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from suite.testing import async_wait_until, free_port, missing, require_tool, serve_env

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "web" / "dist" / "index.html"
ARTIFACTS = Path(os.environ.get("SUITE_E2E_ARTIFACTS", ROOT / "tests" / "e2e" / "artifacts"))
PW = "correct horse battery"
ALICE, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@example.test"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
    # nothing but loopback resolves: a request for another host is recorded by the test and fails here
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


def require_browser():
    require_tool("chromium")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing("playwright not installed (pip install playwright; the browser is Debian's chromium)")
    if not DIST.is_file():
        missing("the web app is not built (make web)")
    return async_playwright


class Server:
    def __init__(self, base: str, env: dict, ports: dict, proc: subprocess.Popen) -> None:
        self.base, self.env, self.ports, self.proc = base, env, ports, proc

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        r = subprocess.run(
            [sys.executable, "-m", "suite.cli", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        return r


def _cli(env: dict, *args: str, stdin: str | None = None) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "suite.cli", *args], env=env, input=stdin, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, f"suite {' '.join(args)}: {r.stderr}"


@pytest.fixture(scope="module")
def web_server(tmp_path_factory, request):
    """`suite serve` (every service) on SQLite in a fresh data dir; alice (admin) and bob."""
    tmp = tmp_path_factory.mktemp("web")
    ports = {
        k: free_port()
        for k in (
            "http",
            "imap",
            "imaps",
            "smtp",
            "submission",
            "submissions",
            "coturn",
            "managesieve",
            "outbound",
            "dns",
        )
    }
    env = serve_env()
    env.update(
        SUITE_DATA_DIR=str(tmp / "data"),
        SUITE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'suite.db'}",
        SUITE_HTTP_PORT=str(ports["http"]),
        SUITE_IMAP_PORT=str(ports["imap"]),
        SUITE_IMAPS_PORT=str(ports["imaps"]),
        SUITE_SMTP_PORT=str(ports["smtp"]),
        SUITE_SUBMISSION_PORT=str(ports["submission"]),
        SUITE_SUBMISSIONS_PORT=str(ports["submissions"]),
        SUITE_COTURN_PORT=str(ports["coturn"]),
        SUITE_MANAGESIEVE_PORT=str(ports["managesieve"]),
        SUITE_BUS_BACKEND="memory",
        SUITE_HOSTNAME="127.0.0.1",
        SUITE_SMTP_INBOUND_AUTH="false",
        SUITE_DNS_NAMESERVERS='["127.0.0.1"]',
        # outbound mail: MX lookups to a DNS stub a test may run on this port, then SMTP to "outbound"
        SUITE_DNS_PORT=str(ports["dns"]),
        SUITE_SMTP_OUTBOUND_PORT=str(ports["outbound"]),
    )
    _cli(env, "init")
    _cli(env, "domain", "add", "example.test")
    _cli(env, "user", "add", ALICE, "--password-stdin", "--admin", "--name", "Alice Liddell", stdin=PW + "\n")
    _cli(env, "user", "add", BOB, "--password-stdin", "--name", "Bob <b>Bold</b>", stdin=PW + "\n")
    _cli(env, "user", "add", CAROL, "--password-stdin", "--name", "Carol", stdin=PW + "\n")
    log = open(tmp / "serve.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "suite.cli", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{ports['http']}"
    deadline = time.monotonic() + 60
    while True:
        # "ready" once every service listens (as tests/ops/cluster.py waits): the gateway answers
        # /healthz while the others may still be starting (a first SMTP connection was once refused)
        log.seek(0)
        if "\nready" in "\n" + log.read():
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            pytest.fail(f"suite serve did not start: {log.read()[-3000:]}")
        time.sleep(0.2)
    yield Server(base, env, ports, proc)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.seek(0)
    out = log.read()
    log.close()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # one log per test module: parallel workers (pytest-xdist) run different modules at once
    (ARTIFACTS / f"serve-{request.module.__name__.rsplit('.', 1)[-1]}.log").write_text(out)
    at = out.find("Traceback")
    assert at < 0, out[max(0, at - 300) : at + 4000]


# as tests/e2e/test_web_shell.py measures it: the page, and every visible element of <main>
WIDER_THAN_SCREEN = (
    "Math.max(document.documentElement.scrollWidth - window.innerWidth,"
    " ...[...document.querySelectorAll('main, main *')].filter((e) => e.offsetParent)"
    ".map((e) => e.getBoundingClientRect().right - window.innerWidth))"
)


async def new_page(browser, base: str, viewport=DESKTOP, **options):
    """(context, page, PageWatch) of a fresh browser context on ``base``."""
    context = await browser.new_context(base_url=base, viewport=viewport, **options)
    page = await context.new_page()
    return context, page, PageWatch(page, base)


async def launch(p):
    return await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)


def shot_path(name: str) -> str:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return str(ARTIFACTS / f"{name}.png")


class PageWatch:
    """Everything a page did that a test wants to check: requests, dialogs, console errors, CSP reports."""

    def __init__(self, page, base: str) -> None:
        self.requests: list[str] = []
        self.documents: list[str] = []  # requests for documents (pages, frames) and frame navigations
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.base = base
        self.accept_dialogs = False  # a test that expects a confirm() accepts it
        page.on("request", self._request)
        page.on("framenavigated", lambda f: self.documents.append(f.url))
        page.on("dialog", self._dialog)
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("popup", lambda p: self.dialogs.append(f"popup {p.url}"))

    def _request(self, r) -> None:
        self.requests.append(r.url)
        if r.resource_type == "document":
            self.documents.append(r.url)

    def file_documents(self) -> list[str]:
        """Documents (a page, a frame) loaded from a file's content or another API URL: a user's file
        shown as a page of our origin (issue 15 §4) — a PDF must be drawn by pdf.js, not navigated to."""
        path = lambda u: u.split("?", 1)[0].lower()
        return [u for u in self.documents if "/api/" in u or "/content" in u or path(u).endswith(".pdf")]

    def _dialog(self, d) -> None:
        self.dialogs.append(f"{d.type}: {d.message}")
        # dismiss so the page goes on (the test fails on the record)
        import asyncio

        asyncio.ensure_future(d.accept() if self.accept_dialogs else d.dismiss())

    def foreign(self) -> list[str]:
        ok = (self.base, "data:", "blob:", "about:")
        return [u for u in self.requests if not u.startswith(ok)]


async def sign_in(page, address: str = ALICE, password: str = PW) -> None:
    await page.get_by_label("Email").fill(address)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("navigation", name="Main").wait_for()


def small_pdf(pages: int = 2) -> bytes:
    """A real PDF (PDF 1.4, ISO 32000-1 §7.5: header, objects, xref table, trailer): each page a dark
    bar and a line of Helvetica."""
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]  # the page tree is filled in below
    kids = []
    for n in range(pages):
        stream = f"0.1 0.3 0.6 rg 72 640 468 80 re f BT /F1 28 Tf 72 560 Td (Page {n + 1} of the report) Tj ET".encode()
        objs.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        content = len(objs)
        objs.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (content, 3 + 2 * pages)
        )
        kids.append(len(objs))
    objs[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), pages)
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


# Sum of how far the canvas differs from white: 0 for a blank canvas.
INK = """(c) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let ink = 0; for (let i = 0; i < d.length; i += 4) ink += (765 - d[i] - d[i + 1] - d[i + 2]) > 60 ? 1 : 0;
  return ink; }"""


async def wait_ink(canvas, least: int = 500) -> None:
    """Waits until the canvas (a locator) is drawn on; a canvas that stays blank fails the test."""

    async def inked() -> bool:
        return await canvas.evaluate(INK) >= least

    await async_wait_until(inked, timeout=20, interval=0.2, what="ink on the canvas (it stays blank)")
