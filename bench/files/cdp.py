"""A bare Chrome DevTools Protocol driver for the files benches: Debian's chromium as a user runs it,
without the DevTools Network domain.

Playwright enables the Network domain on every page and worker it attaches to, and with it Chromium
copies every ArrayBuffer request body into the protocol (an encrypted upload that sends ArrayBuffers ran
at 2 MB/s under Playwright) — a cost no user pays. This driver starts ``chromium --headless
--remote-debugging-pipe`` itself, attaches to one page (never to its workers: no ``Target.setAutoAttach``)
and uses only the Target, Page, Runtime and DOM domains: navigate, evaluate scripts, poll for a
condition, and pick a file in an ``<input type=file>`` (``DOM.setFileInputFiles``, the same call
Playwright makes).

The pipe (fds 3 and 4, NUL-terminated JSON messages) needs no port and no WebSocket client.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"


class CdpError(RuntimeError):
    pass


class Chromium:
    """One headless chromium, its pipe, and its first tab (``self.page``)."""

    def __init__(self, executable: str = CHROMIUM, args: tuple[str, ...] = ()) -> None:
        self.executable, self.args = executable, args
        self.proc: subprocess.Popen | None = None
        self.profile: Path | None = None
        self.page: Page
        self._seq = 0
        self._pending: dict[int, asyncio.Future] = {}
        self._reader: asyncio.Future | None = None
        self._wfd = self._rfd = -1

    async def start(self) -> Chromium:
        self.profile = Path(tempfile.mkdtemp(prefix="suite-bench-chromium-"))
        # our ends: we write to its fd 3 and read from its fd 4
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        argv = [self.executable, "--headless", "--no-sandbox", "--remote-debugging-pipe", "--no-first-run",
                "--no-default-browser-check", f"--user-data-dir={self.profile}", *self.args, "about:blank"]  # fmt: skip

        def fds() -> None:  # in the child: its ends at 3 and 4 (moved up first, in case one is 3 or 4)
            a, b = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            argv, pass_fds=(3, 4), preexec_fn=fds, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_child_r)
        os.close(from_child_w)
        self._wfd, self._rfd = to_child_w, from_child_r
        loop = asyncio.get_running_loop()
        self._reader = loop.run_in_executor(None, self._read_loop, loop)
        self.page = await self.new_page()
        return self

    async def new_page(self, *, own_context: bool = False) -> Page:
        """A new tab, attached; ``own_context``: in a new browser context (no cookies: a stranger's browser)."""
        params: dict[str, Any] = {"url": "about:blank"}
        if own_context:
            params["browserContextId"] = (await self.send("Target.createBrowserContext"))["browserContextId"]
        target = (await self.send("Target.createTarget", params))["targetId"]
        attached = await self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        page = Page(self, attached["sessionId"], params.get("browserContextId"))
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        return page

    def _read_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        buf = b""
        while True:
            data = os.read(self._rfd, 1 << 16)
            if not data:
                break
            buf += data
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                fut = self._pending.pop(msg.get("id", -1), None)
                if fut is not None:
                    loop.call_soon_threadsafe(_settle, fut, msg)
        for fut in list(self._pending.values()):
            loop.call_soon_threadsafe(_settle, fut, {"error": {"message": "chromium closed its pipe"}})

    async def send(self, method: str, params: dict | None = None, *, session: str | None = None) -> Any:
        """One command (to the browser, or to a tab's ``session``); its result."""
        self._seq += 1
        msg: dict[str, Any] = {"id": self._seq, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        fut = asyncio.get_running_loop().create_future()
        self._pending[self._seq] = fut
        os.write(self._wfd, json.dumps(msg).encode() + b"\0")
        reply = await fut
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    async def close(self) -> None:
        if self.proc is not None:
            try:
                await asyncio.wait_for(self.send("Browser.close"), 10)
            except (CdpError, TimeoutError, OSError):
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None
        for fd in (self._wfd, self._rfd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._wfd = self._rfd = -1
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        if self.profile is not None:
            shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    """One attached tab: its session on the browser's pipe."""

    def __init__(self, browser: Chromium, session: str, context: str | None) -> None:
        self.browser, self.session, self.context = browser, session, context

    async def send(self, method: str, params: dict | None = None) -> Any:
        return await self.browser.send(method, params, session=self.session)

    async def eval(self, expression: str) -> Any:
        """The value of ``expression`` in the page (awaited when it is a promise); a JS exception raises."""
        r = await self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise CdpError(d.get("exception", {}).get("description") or d.get("text"))
        return r["result"].get("value")

    async def wait(self, expression: str, timeout: float = 60, every: float = 0.1) -> Any:
        """Poll until ``expression`` is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            v = await self.eval(expression)
            if v:
                return v
            if time.monotonic() > deadline:
                raise CdpError(f"timed out after {timeout} s waiting for {expression}")
            await asyncio.sleep(every)

    async def goto(self, url: str, ready: str = "document.readyState === 'complete'") -> None:
        await self.send("Page.navigate", {"url": url})
        await asyncio.sleep(0.05)
        await self.wait(ready)

    async def click(self, selector: str, text: str) -> None:
        """Click the element at ``selector`` whose text is ``text``."""
        found = await self.eval(
            f"(() => {{ const e = [...document.querySelectorAll({json.dumps(selector)})]"
            f".find((e) => e.textContent.trim() === {json.dumps(text)}); if (e) e.click(); return !!e; }})()"
        )
        if not found:
            raise CdpError(f"no {selector} saying {text!r}")

    async def set_files(self, selector: str, *paths: str) -> None:
        """Pick ``paths`` in the ``<input type=file>`` at ``selector`` (fires its change event)."""
        root = (await self.send("DOM.getDocument", {"depth": 0}))["root"]["nodeId"]
        node = (await self.send("DOM.querySelector", {"nodeId": root, "selector": selector}))["nodeId"]
        if not node:
            raise CdpError(f"no element {selector}")
        await self.send("DOM.setFileInputFiles", {"nodeId": node, "files": list(paths)})

    async def allow_downloads(self, folder: Path) -> None:
        """Downloads of this tab's browser context go to ``folder``, under their own names."""
        params: dict[str, Any] = {"behavior": "allow", "downloadPath": str(folder)}
        if self.context:
            params["browserContextId"] = self.context
        await self.browser.send("Browser.setDownloadBehavior", params)


def _settle(fut: asyncio.Future, msg: dict) -> None:
    if not fut.done():
        fut.set_result(msg)
