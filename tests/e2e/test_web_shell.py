"""The web app's shell in Chromium against `suite serve`: sign in, navigation with URLs (back button,
reload, deep links), the phone layout, the keyboard, and the page's security headers."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import httpx

_spec = importlib.util.spec_from_file_location("suite_e2e_webfix", Path(__file__).with_name("webfix.py"))
webfix = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(webfix)
web_server = webfix.web_server
ALICE, BOB, PW = webfix.ALICE, webfix.BOB, webfix.PW

NAV = ("Mail", "Files", "Calls", "Settings")


async def _new_page(browser, server, viewport=webfix.DESKTOP):
    context = await browser.new_context(base_url=server.base, viewport=viewport)
    page = await context.new_page()
    return page, webfix.PageWatch(page, server.base)


async def test_sign_in_navigate_back_and_reload(web_server):
    async_playwright = webfix.require_browser()
    async with async_playwright() as p:
        browser = await webfix.launch(p)
        try:
            page, watch = await _new_page(browser, web_server)
            await page.goto("/files")
            # signed out: the sign-in page, at the URL asked for
            await page.get_by_role("button", name="Sign in").wait_for()
            await page.screenshot(path=webfix.shot_path("signin-desktop"))
            await page.get_by_label("Email").fill(ALICE)
            await page.get_by_label("Password").fill("not the password")
            await page.get_by_role("button", name="Sign in").click()
            await page.get_by_role("alert").filter(has_text="Wrong email or password").wait_for()
            await webfix.sign_in(page)
            nav = page.get_by_role("navigation", name="Main")
            for name in (*NAV, "Admin"):  # alice is an admin
                await nav.get_by_role("link", name=name).wait_for()
            assert page.url.endswith("/files")  # kept the place asked for before signing in
            await page.get_by_role("heading", name="Files", level=1).wait_for()

            visited = []
            for name, path in (("Calls", "/calls"), ("Settings", "/settings"), ("Mail", "/mail"), ("Files", "/files")):
                await nav.get_by_role("link", name=name).click()
                await page.wait_for_url(re.compile(re.escape(path) + r"(/.*)?$"))
                assert await nav.get_by_role("link", name=name).get_attribute("aria-current") == "page"
                visited.append(path)
            await page.get_by_role("heading", name="Files", level=1).wait_for()

            # the back button walks the same way back
            await page.go_back()
            await page.wait_for_url(re.compile(r"/mail(/.*)?$"))
            await page.go_back()
            await page.wait_for_url(re.compile(r"/settings$"))
            await page.get_by_role("heading", name="Settings", level=1).wait_for()
            assert await page.get_by_text(ALICE).first.is_visible()
            await page.go_forward()
            await page.wait_for_url(re.compile(r"/mail(/.*)?$"))
            await page.go_back()
            await page.wait_for_url(re.compile(r"/settings$"))

            # a reload keeps the place (and the session)
            await page.reload()
            await page.get_by_role("heading", name="Settings", level=1).wait_for()
            assert page.url.endswith("/settings")
            await page.get_by_text(re.compile(r"used$")).first.wait_for()  # storage from /api/me
            await page.screenshot(path=webfix.shot_path("settings-desktop"))

            # calls folded into the shell: its socket says Ready
            await nav.get_by_role("link", name="Calls").click()
            await page.wait_for_function("() => document.getElementById('calls-status').textContent === 'Ready'")
            await page.locator(f'#contacts li[data-address="{BOB}"]').wait_for()
            # a display name with markup is shown as text
            assert await page.locator(f'#contacts li[data-address="{BOB}"] .name').text_content() == (
                f"Bob <b>Bold</b> <{BOB}>"
            )
            await page.screenshot(path=webfix.shot_path("calls-desktop"))

            # sign out: back to the sign-in page, and /api/me refuses
            await page.get_by_role("button", name="Sign out").click()
            await page.get_by_role("button", name="Sign in").wait_for()
            r = await page.request.get("/api/me")
            assert r.status == 401
            assert not watch.dialogs
            assert not watch.foreign(), watch.foreign()
            assert not [e for e in watch.errors if "Content Security Policy" in e], watch.errors
        finally:
            await browser.close()


async def test_non_admin_has_no_admin_link_and_deep_links_load(web_server):
    async_playwright = webfix.require_browser()
    async with async_playwright() as p:
        browser = await webfix.launch(p)
        try:
            page, watch = await _new_page(browser, web_server)
            await page.goto("/settings")
            await webfix.sign_in(page, BOB)
            nav = page.get_by_role("navigation", name="Main")
            for name in NAV:
                await nav.get_by_role("link", name=name).wait_for()
            assert await nav.get_by_role("link", name="Admin").count() == 0
            # Files shows the folder the URL names, with sizes and downloads
            csrf = (await (await page.request.get("/api/me")).json())["csrf_token"]
            h = {"X-CSRF-Token": csrf}
            r = await page.request.post("/api/files/mkdir", data={"path": "/Reports <2026>"}, headers=h)
            assert r.status in (200, 201), await r.text()
            r = await page.request.put("/api/files/content/Reports%20%3C2026%3E/q1.txt", data=b"x" * 2048, headers=h)
            assert r.status in (200, 201), await r.text()
            await nav.get_by_role("link", name="Files").click()
            await page.get_by_role("link", name="Reports <2026>").click()
            await page.wait_for_url(re.compile(r"/files/Reports%20%3C2026%3E$"))
            link = page.get_by_role("link", name="q1.txt")
            await link.wait_for()
            await page.get_by_role("cell", name="2.0 KB").wait_for()
            assert (await (await page.request.get(await link.get_attribute("href"))).body()) == b"x" * 2048
            await page.reload()
            await page.get_by_role("link", name="q1.txt").wait_for()  # the folder is in the URL
            await page.screenshot(path=webfix.shot_path("files-desktop"))
            # a fresh page on a deep URL opens that view directly
            page2 = await page.context.new_page()
            await page2.goto("/calls")
            await page2.get_by_role("heading", name="Calls", level=1).wait_for()
            assert (await page2.goto("/nowhere-at-all")).status == 404
            assert not watch.foreign()
        finally:
            await browser.close()


async def test_phone_layout(web_server):
    async_playwright = webfix.require_browser()
    async with async_playwright() as p:
        browser = await webfix.launch(p)
        try:
            page, watch = await _new_page(browser, web_server, viewport=webfix.PHONE)
            await page.goto("/")
            await page.get_by_role("button", name="Sign in").wait_for()
            await page.screenshot(path=webfix.shot_path("signin-phone"))
            await webfix.sign_in(page)
            nav = page.get_by_role("navigation", name="Main")
            # the navigation is a tab bar at the bottom, every link visible and inside the screen
            for name in NAV:
                box = await nav.get_by_role("link", name=name).bounding_box()
                assert box and box["x"] >= 0 and box["x"] + box["width"] <= webfix.PHONE["width"] + 0.5, (name, box)
                assert box["y"] > webfix.PHONE["height"] * 0.8, (name, box)
            for name, heading in (("Settings", "Settings"), ("Calls", "Calls"), ("Files", "Files")):
                await nav.get_by_role("link", name=name).click()
                await page.get_by_role("heading", name=heading, level=1).wait_for()
                overflow = await page.evaluate(
                    "Math.max(document.documentElement.scrollWidth - window.innerWidth,"
                    " ...[...document.querySelectorAll('main, main *')].filter((e) => e.offsetParent)"
                    ".map((e) => e.getBoundingClientRect().right - window.innerWidth))"
                )
                assert overflow <= 0, f"{name}: page wider than the phone by {overflow}px"
                await page.screenshot(path=webfix.shot_path(f"{name.lower()}-phone"))
            assert not watch.foreign()
        finally:
            await browser.close()


async def test_keyboard_reaches_sign_in_and_navigation(web_server):
    async_playwright = webfix.require_browser()
    async with async_playwright() as p:
        browser = await webfix.launch(p)
        try:
            page, _ = await _new_page(browser, web_server)
            await page.goto("/")
            await page.get_by_role("button", name="Sign in").wait_for()
            assert await page.evaluate("document.activeElement.id") == "login-email"  # autofocus

            async def focused() -> str:
                return await page.evaluate(
                    "(() => { const e = document.activeElement; return e.labels && e.labels.length ? "
                    "e.labels[0].textContent : (e.textContent || '').trim(); })()"
                )

            seen = [await focused()]
            for _ in range(2):
                await page.keyboard.press("Tab")
                seen.append(await focused())
            assert seen == ["Email", "Password", "Sign in"], seen
            await page.get_by_label("Email").fill(ALICE)
            await page.get_by_label("Password").fill(PW)
            await page.get_by_label("Password").press("Enter")
            await page.get_by_role("navigation", name="Main").wait_for()
            names = []
            for _ in range(8):
                await page.keyboard.press("Tab")
                names.append(await focused())
            for name in NAV:
                assert any(name in n for n in names), (name, names)
            # Enter on a focused link navigates
            await page.get_by_role("link", name="Settings").focus()
            await page.keyboard.press("Enter")
            await page.wait_for_url(re.compile(r"/settings$"))
        finally:
            await browser.close()


def test_security_headers(web_server):
    with httpx.Client(base_url=web_server.base) as c:
        for path in ("/", "/mail", "/mail/Ma1/Eb2", "/files", "/calls", "/settings", "/admin"):
            r = c.get(path)
            assert r.status_code == 200, path
            assert r.headers["content-type"].startswith("text/html")
            csp = r.headers["content-security-policy"]
            for directive in ("script-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"):
                assert directive in csp, (path, csp)
            assert "unsafe-inline" not in csp.split("style-src")[0]  # no inline script
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["referrer-policy"] == "no-referrer"
            assert r.headers["cache-control"] == "no-cache"
            # no inline script in the page: every <script> has a src
            for tag in re.findall(r"<script\b[^>]*>", r.text):
                assert "src=" in tag, tag
            assert not re.search(r"<script\b[^>]*>(?!</script>)", r.text), r.text
        assets = re.findall(r'(?:src|href)="(/assets/[^"]+)"', c.get("/").text)
        assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets), assets
        for a in assets:
            r = c.get(a)
            assert r.status_code == 200 and r.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert r.headers["x-content-type-options"] == "nosniff"
        # JSON APIs carry the same headers; a missing asset is a JSON 404
        r = c.get("/api/me")
        assert r.status_code == 401 and r.headers["x-content-type-options"] == "nosniff"
        r = c.get("/assets/nope-ABCDEFGH.js")
        assert r.status_code == 404
