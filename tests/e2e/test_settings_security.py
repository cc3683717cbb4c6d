"""Settings → security and Admin in Chromium against `suite serve` (issue 16 items 1 and 4):
TOTP enrolment with the QR code and a code computed by pyotp, the two-step sign-in, a TOTP replay
refused, app passwords shown once and revoked, sessions; a passkey through Chromium's virtual
authenticator (CDP WebAuthn); the admin console. Screenshots desktop and 375 px."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pyotp

_spec = importlib.util.spec_from_file_location("suite_e2e_webfix", Path(__file__).with_name("webfix.py"))
webfix = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(webfix)
web_server = webfix.web_server
ALICE, BOB, CAROL, PW = webfix.ALICE, webfix.BOB, webfix.CAROL, webfix.PW


WIDER_THAN_SCREEN = webfix.WIDER_THAN_SCREEN


_page = webfix.new_page


async def test_totp_enrolment_two_step_sign_in_and_app_passwords(web_server):
    async_playwright = webfix.require_browser()
    async with async_playwright() as p:
        browser = await webfix.launch(p)
        try:
            context, page, watch = await _page(browser, web_server.base)
            await page.goto("/settings")
            await webfix.sign_in(page, CAROL)
            await page.get_by_role("heading", name="Two-factor authentication").wait_for()
            await page.get_by_role("button", name="Set up authenticator app").click()
            await page.get_by_role("img", name="QR code for the authenticator app").locator("svg").wait_for()
            secret = (await page.get_by_label("Secret key").inner_text()).strip()
            totp = pyotp.TOTP(secret)
            first = totp.now()
            await page.get_by_label("Verification code").fill(first)
            await page.screenshot(path=webfix.shot_path("settings-totp-enrol-desktop"), full_page=True)
            await page.get_by_role("button", name="Verify").click()
            codes = page.get_by_role("list", name="Recovery codes").get_by_role("listitem")
            await codes.first.wait_for()
            assert await codes.count() == 10
            await page.get_by_text("Authenticator app: on").wait_for()

            # an app password: shown once, listed without it, revoked
            await page.get_by_label("Name", exact=True).fill("Thunderbird")
            await page.get_by_role("button", name="Create app password").click()
            shown = (await page.get_by_label("New app password").inner_text()).strip()
            assert len(shown) >= 20
            table = page.get_by_role("table", name="App passwords")
            await table.get_by_role("cell", name="Thunderbird", exact=True).wait_for()
            assert shown not in await table.inner_text()
            await page.get_by_role("button", name="Done").click()
            await page.get_by_role("button", name="Revoke Thunderbird").click()
            await page.get_by_role("status").filter(has_text="Revoked Thunderbird").wait_for()
            await table.get_by_role("cell", name="Thunderbird", exact=True).wait_for(state="detached")
            await page.get_by_role("table", name="Sessions").get_by_role("cell", name="Web (this one)").wait_for()
            await page.screenshot(path=webfix.shot_path("settings-security-desktop"), full_page=True)
            await context.close()

            # sign in again: the second step; the enrolment's code is refused (replay), the next one passes
            context, page, watch = await _page(browser, web_server.base, webfix.PHONE)
            await page.goto("/settings")
            await page.get_by_label("Email").fill(CAROL)
            await page.get_by_label("Password").fill(PW)
            await page.get_by_role("button", name="Sign in").click()
            await page.get_by_label("Code").fill(first)
            await page.get_by_role("button", name="Verify").click()
            await page.get_by_role("alert").filter(has_text="Wrong or already used code").wait_for()
            await page.screenshot(path=webfix.shot_path("signin-second-step-phone"))
            await page.get_by_label("Code").fill(totp.at(time.time() + 30))
            await page.get_by_role("button", name="Verify").click()
            await page.get_by_role("heading", name="Two-factor authentication").wait_for()
            await page.get_by_role("table", name="Sessions").get_by_role("cell", name="Web (this one)").wait_for()
            overflow = await page.evaluate(WIDER_THAN_SCREEN)
            assert overflow <= 0, f"Settings wider than the phone by {overflow}px"
            await page.screenshot(path=webfix.shot_path("settings-security-phone"), full_page=True)
            assert watch.errors == [] or all("401" in e for e in watch.errors), watch.errors
            assert watch.foreign() == []
            await context.close()
        finally:
            await browser.close()


async def test_passkey_with_chromium_virtual_authenticator(web_server):
    async_playwright = webfix.require_browser()
    # WebAuthn needs a domain as RP ID (not an IP address): the page is opened on localhost
    base = web_server.base.replace("127.0.0.1", "localhost")
    # the fixture's resolver rules let only 127.0.0.1 through; localhost (loopback) too here
    args = [a + ", EXCLUDE localhost" if a.startswith("--host-resolver-rules=") else a for a in webfix.CHROMIUM_ARGS]
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        try:
            context, page, _ = await _page(browser, base)
            cdp = await context.new_cdp_session(page)
            await cdp.send("WebAuthn.enable")
            await cdp.send(
                "WebAuthn.addVirtualAuthenticator",
                {
                    "options": {
                        "protocol": "ctap2",
                        "transport": "usb",
                        "hasResidentKey": False,
                        "hasUserVerification": True,
                        "isUserVerified": True,
                        "automaticPresenceSimulation": True,
                    }
                },
            )
            await page.goto("/settings")
            await webfix.sign_in(page, BOB)
            await page.get_by_label("Passkey name").fill("Virtual key")
            await page.get_by_role("button", name="Add a passkey").click()
            await page.get_by_role("list", name="Passkeys").get_by_text("Virtual key").wait_for()
            await page.get_by_text("Mail, calendar and file apps now sign in with app passwords only").wait_for()
            # a new sign-in asks for the passkey; the same page keeps the virtual authenticator
            await page.context.clear_cookies()
            await page.goto("/settings")
            await page.get_by_label("Email").fill(BOB)
            await page.get_by_label("Password").fill(PW)
            await page.get_by_role("button", name="Sign in").click()
            await page.get_by_role("button", name="Use a passkey").click()
            await page.get_by_role("navigation", name="Main").wait_for()
            await page.get_by_role("heading", name="Two-factor authentication").wait_for()
        finally:
            await browser.close()


async def test_admin_console(web_server):
    async_playwright = webfix.require_browser()
    async with async_playwright() as p:
        browser = await webfix.launch(p)
        try:
            for viewport, name in ((webfix.DESKTOP, "desktop"), (webfix.PHONE, "phone")):
                context, page, watch = await _page(browser, web_server.base, viewport)
                await page.goto("/admin")
                await webfix.sign_in(page, ALICE)
                users = page.get_by_role("table", name="Users")
                await users.get_by_role("cell", name=BOB, exact=True).wait_for()
                await page.get_by_role("heading", name="Service health").wait_for()
                if name == "desktop":
                    await page.get_by_label("Email", exact=True).fill("dave@example.test")
                    await page.get_by_label("Display name").fill("Dave")
                    await page.get_by_label("Password", exact=True).fill("a long enough passphrase")
                    await page.get_by_role("button", name="Create user").click()
                    await users.get_by_role("cell", name="dave@example.test", exact=True).wait_for()
                    await page.get_by_role("button", name="Disable dave@example.test").click()
                    await page.get_by_role("button", name="Enable dave@example.test").wait_for()
                    links = page.get_by_role("checkbox", name="Send big attachments as links for dave@example.test")
                    assert not await links.is_checked()
                    async with page.expect_response(lambda r: r.request.method == "PATCH") as patched:
                        await links.check()
                    assert (await (await patched.value).json())["big_attachment_links"] is True
                    await page.reload()
                    await links.wait_for()
                    assert await links.is_checked()
                    # removing (as `suite user remove` / `suite domain remove`), each after a confirm()
                    watch.accept_dialogs = True
                    await page.get_by_role("button", name="Remove dave@example.test").click()
                    await users.get_by_role("cell", name="dave@example.test", exact=True).wait_for(state="detached")
                    await page.get_by_label("Domain", exact=True).fill("old.test")
                    await page.get_by_role("button", name="Add domain").click()
                    await page.get_by_role("button", name="Remove old.test").click()
                    await page.get_by_role("button", name="Remove old.test").wait_for(state="detached")
                    assert [d for d in watch.dialogs if d.startswith("confirm")] == [
                        "confirm: Remove dave@example.test with all its mail and files?",
                        "confirm: Remove the domain old.test?",
                    ]
                    watch.accept_dialogs = False
                    await page.get_by_role("button", name="DNS records of example.test").click()
                    await (
                        page.get_by_role("table", name="DNS records of example.test").get_by_text("MX").first.wait_for()
                    )
                    await page.get_by_label("Alias (or *@domain)").fill("*@example.test")
                    await page.get_by_label("Delivers to").fill(ALICE)
                    await page.get_by_role("button", name="Add alias").click()
                    await page.get_by_role("list", name="Aliases").get_by_text("Catch-all of example.test").wait_for()
                    await page.get_by_role("table", name="Audit log").wait_for()
                if name == "phone":
                    overflow = await page.evaluate(WIDER_THAN_SCREEN)
                    assert overflow <= 0, f"Admin wider than the phone by {overflow}px"
                await page.screenshot(path=webfix.shot_path(f"admin-{name}"), full_page=True)
                assert watch.foreign() == []
                await context.close()
        finally:
            await browser.close()
