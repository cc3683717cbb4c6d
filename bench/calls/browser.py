"""Call setup time seen by a Chromium caller on the real call page (web/static/calls.js).

The page is not changed: an init script wraps ``RTCPeerConnection`` before calls.js runs and stamps, per
peer connection, ``performance.now()`` at the first ``createOffer()``, at ICE ``connected``/``completed``
and at ``connectionState`` ``connected`` (ICE + DTLS). calls.js creates the offer once the call is
accepted (after getUserMedia), so neither ringing nor camera start-up is in the figure.

Browser launch flags and the login + open-the-call-page step come from tests/e2e (imported, not copied).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from suite.gateway.calls_routes import INVITES_PER_WINDOW

REPO = Path(__file__).resolve().parents[2]

STAMP_JS = """
(() => {
  const Orig = window.RTCPeerConnection;
  if (!Orig) return;
  window.__benchPcs = [];
  class BenchPC extends Orig {
    constructor(...args) {
      super(...args);
      const rec = { offer: null, ice: null, connected: null };
      this.__benchRec = rec;
      window.__benchPcs.push(rec);
      this.addEventListener("iceconnectionstatechange", () => {
        const s = this.iceConnectionState;
        if ((s === "connected" || s === "completed") && rec.ice === null) rec.ice = performance.now();
      });
      this.addEventListener("connectionstatechange", () => {
        if (this.connectionState === "connected" && rec.connected === null) rec.connected = performance.now();
      });
    }
    createOffer(...args) {
      if (this.__benchRec.offer === null) this.__benchRec.offer = performance.now();
      return super.createOffer(...args);
    }
  }
  window.RTCPeerConnection = BenchPC;
})();
"""


def _e2e():
    """tests/e2e/test_calls_browser.py as a module (CHROMIUM_ARGS, _open)."""
    path = REPO / "tests" / "e2e" / "test_calls_browser.py"
    spec = importlib.util.spec_from_file_location("suite_e2e_calls_browser", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@dataclass
class SetupTimes:
    label: str
    ice_ms: list[float] = field(default_factory=list)  # createOffer -> ICE connected
    dtls_ms: list[float] = field(default_factory=list)  # createOffer -> connectionState connected
    click_ms: list[float] = field(default_factory=list)  # click "Video" -> ICE connected (incl. ringing/accept)
    failures: list[str] = field(default_factory=list)


async def _last_record(page, n_before: int, timeout: float) -> dict:
    await page.wait_for_function(
        f"window.__benchPcs.length > {n_before} && window.__benchPcs[window.__benchPcs.length - 1].ice !== null"
        " && window.__benchPcs[window.__benchPcs.length - 1].connected !== null",
        timeout=timeout * 1000,
    )
    return await page.evaluate("window.__benchPcs[window.__benchPcs.length - 1]")


async def _one_call(caller, callee, to: str, media: str, out: SetupTimes, timeout: float) -> None:
    n = await caller.evaluate("window.__benchPcs.length")
    row = caller.locator(f'#contacts li[data-address="{to}"]')
    await row.locator(".presence.online").wait_for(timeout=timeout * 1000)
    t_click = time.monotonic()
    await row.locator(f"button.call-{media}").click()
    if callee is not None:
        await callee.locator("#incoming").wait_for(state="visible", timeout=timeout * 1000)
        await callee.locator("#btn-accept").click()
    rec = await _last_record(caller, n, timeout)
    t_conn = time.monotonic()
    out.ice_ms.append(rec["ice"] - rec["offer"])
    out.dtls_ms.append(rec["connected"] - rec["offer"])
    out.click_ms.append((t_conn - t_click) * 1000)
    await caller.locator("#btn-hangup").click()
    await caller.locator("#incall").wait_for(state="hidden", timeout=timeout * 1000)
    if callee is not None:
        await callee.locator("#incall").wait_for(state="hidden", timeout=timeout * 1000)


async def measure(
    port: int,
    caller: str,
    callee: str,
    echo: str,
    *,
    calls: int,
    media: str,
    pause: float,
    timeout: float,
    do_b2b: bool = True,
    do_agent: bool = True,
    log=print,
) -> list[SetupTimes]:
    from playwright.async_api import async_playwright

    e2e = _e2e()
    base = f"http://127.0.0.1:{port}"
    results: list[SetupTimes] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=e2e.CHROMIUM_ARGS)
        try:
            # one browser context per user, as in the e2e test; the stamping script runs before calls.js
            orig_new_context = browser.new_context

            async def new_context(**kw):
                # bypass_csp: Playwright's polling of wait_for_function evaluates strings, which the
                # app's CSP (no 'unsafe-eval') refuses; the app's own scripts are unaffected.
                ctx = await orig_new_context(**kw, bypass_csp=True)
                await ctx.add_init_script(STAMP_JS)
                return ctx

            browser.new_context = new_context  # _open() calls browser.new_context(base_url=...)
            a = await e2e._open(browser, base, caller)
            b = await e2e._open(browser, base, callee) if do_b2b else None
            plan = []
            if do_b2b:
                plan.append((SetupTimes(f"browser -> browser ({media})"), b, callee))
            if do_agent:
                plan.append((SetupTimes(f"browser -> echo agent ({media})"), None, echo))
            invites = 0
            for st, callee_page, to in plan:
                # one unmeasured call first (first getUserMedia, codec start-up in both processes)
                for i in range(-1, calls):
                    if invites >= INVITES_PER_WINDOW - 1:
                        # The gateway allows INVITES_PER_WINDOW invites a minute per /ws/calls session:
                        # reloading the page opens a new session (as a user would after the warning).
                        await a.reload()
                        await a.wait_for_function(  # the SPA renders the calls view after load
                            "document.getElementById('calls-status')?.textContent === 'Ready'"
                        )
                        invites = 0
                    await asyncio.sleep(pause)
                    invites += 1
                    if i < 0:
                        try:
                            await _one_call(a, callee_page, to, media, SetupTimes("warm-up"), timeout)
                        except Exception as exc:
                            st.failures.append(f"warm-up: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                            await _recover(a, callee_page)
                        continue
                    try:
                        await _one_call(a, callee_page, to, media, st, timeout)
                    except Exception as exc:
                        where = await _describe(a, "caller")
                        if callee_page is not None:
                            where += "; " + await _describe(callee_page, "callee")
                        st.failures.append(
                            f"call {i + 1}: {type(exc).__name__}: {str(exc).splitlines()[0][:120]} [{where}]"
                        )
                        log(f"    {st.failures[-1][:400]}")
                        await _recover(a, callee_page)
                log(f"  {st.label}: {len(st.ice_ms)}/{calls} calls connected")
                results.append(st)
        finally:
            await browser.close()
    return results


async def _describe(page, who: str) -> str:
    """What the page showed when a call failed (status line, call state, its peer connection)."""
    try:
        return (
            who
            + " "
            + json.dumps(
                await page.evaluate("""() => {
          const c = window.suiteCalls.state.call, pcs = window.__benchPcs, r = pcs[pcs.length - 1];
          return { status: document.getElementById("calls-status").textContent,
                   incall: document.getElementById("incall").hidden ? null
                           : document.getElementById("incall-state").textContent,
                   incoming: !document.getElementById("incoming").hidden,
                   pc: c && c.pc ? [c.pc.signalingState, c.pc.iceConnectionState, c.pc.connectionState] : null,
                   pcs: pcs.length, last: r };
        }""")
            )
        )
    except Exception as exc:
        return f"{who}: {exc}"


async def _recover(*pages) -> None:
    """After a failed call: hang up whatever is left so the next call starts clean."""
    for page in pages:
        if page is None:
            continue
        with contextlib.suppress(Exception):  # best effort; the next call reports what is still wrong
            if await page.locator("#incall").is_visible():
                await page.locator("#btn-hangup").click()
            if await page.locator("#incoming").is_visible():
                await page.locator("#btn-decline").click()
    await asyncio.sleep(1.0)
