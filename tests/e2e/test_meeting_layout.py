"""The meeting stage's layout in Chromium with synthetic participants: the real InMeeting view
(web/src/views/meeting.js, bundled here by esbuild with the app's CSS) rendered with ten people
and a stand-in connection, without media — ten real browsers are too heavy for these checks,
which are about geometry. Desktop 1280×800: the tiles fill the stage between the header and the
controls (no page scroll, no empty band), the side panel opens to the right of the stage, a shared
screen takes the stage; phone 375 px: two columns, one row of controls, ten fit, sixteen scroll the
stage, the controls stay on screen; on every tile the badges ("Hand raised", "muted") never cover
the name."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from suite.testing import missing, require_tool

WEB = Path(__file__).resolve().parents[2] / "web"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}

ENTRY = """
import "@WEB@/src/app.css";
import { render } from "preact";
import { html } from "@WEB@/src/lib/html.js";
import { InMeeting } from "@WEB@/src/views/meeting.js";

// A stand-in for MeetingConnection: no media, no socket; the view asks it for tracks and layers.
window.renderMeeting = ({ count, screen = null, hands = [], muted = [], speaker = null, names = {}, waiting = 0 }) => {
  const people = Array.from({ length: count }, (_, i) => {
    const peer_id = "p" + i;
    return { peer_id, name: names[peer_id] || "Person number " + i + " with a long name", role: i ? (i % 3 ? "member" : "guest") : "host",
      audio_muted: muted.includes(peer_id), video_muted: false, hand_raised: hands.includes(peer_id), screen: peer_id === screen };
  });
  const s = { phase: "in", me: "p0", role: "host", title: "Layout <check>", locked: false,
    participants: new Map(people.map((p) => [p.peer_id, p])), lobby: new Map(Array.from({ length: waiting }, (_, i) => ["w" + i, { peer_id: "w" + i, name: "Waiting " + i }])), chat: [], layout: {},
    speaker, recording: false, quality: "good", qualityText: "" };
  const conn = { local: null, screen: null, crypto: null, tracksOf: () => [], wantLayer() {}, send() {},
    setTrack() {}, toggleScreen: async () => {}, leave() {} };
  render(html`<${InMeeting} conn=${conn} s=${s} />`, document.getElementById("root"));
};
"""

BUILD = """
import * as esbuild from "esbuild";
const [entry, outdir, nodePaths] = process.argv.slice(1);
await esbuild.build({ entryPoints: [entry], bundle: true, outdir, format: "iife", nodePaths: [nodePaths],
  logLevel: "error", loader: { ".woff2": "file", ".svg": "file" } });
"""

PAGE = """<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<link rel="stylesheet" href="entry.css"></head><body><div id="root"></div>
<script src="entry.js"></script></body></html>"""


@pytest.fixture(scope="module")
def page_url(tmp_path_factory) -> str:
    node = require_tool("node", "nodejs")
    require_tool("chromium")
    if not (WEB / "node_modules" / "esbuild").is_dir():
        missing("web/node_modules is not installed (make setup)")
    out = tmp_path_factory.mktemp("meeting-layout")
    (out / "entry.js").write_text(ENTRY.replace("@WEB@", str(WEB)))
    r = subprocess.run(
        [node, "--input-type=module", "-e", BUILD, str(out / "entry.js"), str(out / "dist"), str(WEB / "node_modules")],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (out / "dist" / "index.html").write_text(PAGE)
    return (out / "dist" / "index.html").as_uri()


async def _settled(page) -> None:
    """Every tile laid out (sizes follow the stage's ResizeObserver), two frames later."""
    await page.wait_for_function(
        "() => [...document.querySelectorAll('.tile')].every((t) => t.getBoundingClientRect().width > 0)"
    )
    await page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


async def _page(browser, url: str, viewport: dict, **people):
    context = await browser.new_context(viewport=viewport)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(url)
    await page.wait_for_function("() => typeof window.renderMeeting === 'function'")
    await page.evaluate("(o) => window.renderMeeting(o)", people)
    await page.locator(f".tile >> nth={people['count'] - 1}").wait_for()
    await _settled(page)
    page.errors = errors
    return page


GEOMETRY = """() => {
  const box = (el) => { const r = el.getBoundingClientRect(); return { x: r.x, y: r.y, w: r.width, h: r.height }; };
  const stage = document.querySelector(".m-stage") || document.querySelector(".grid");
  const side = document.querySelector(".m-side");
  return {
    tiles: [...document.querySelectorAll(".tile")].map((t) => ({ peer: t.dataset.peer, main: t.classList.contains("m-main"), ...box(t),
      name: box(t.querySelector(".name")), badges: [...t.querySelectorAll(".badge")].map(box) })),
    stage: box(stage), controls: box(document.querySelector(".controls")), head: box(document.querySelector(".meeting-head")),
    side: side && box(side), scrolls: stage.scrollHeight > stage.clientHeight + 1,
    pageScrolls: document.documentElement.scrollHeight > innerHeight + 1,
  };
}"""


def _inside(inner: dict, outer: dict, slack: float = 1.0) -> bool:
    return (
        inner["x"] >= outer["x"] - slack
        and inner["y"] >= outer["y"] - slack
        and inner["x"] + inner["w"] <= outer["x"] + outer["w"] + slack
        and inner["y"] + inner["h"] <= outer["y"] + outer["h"] + slack
    )


def _overlap(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]
    )


def _badges_clear_of_names(g: dict) -> None:
    for t in g["tiles"]:
        for b in t["badges"]:
            if b["w"] > 0:
                assert not _overlap(b, t["name"]), (t["peer"], b, t["name"])


def _desktop_fits(g: dict, viewport: dict) -> None:
    screen = {"x": 0, "y": 0, "w": viewport["width"], "h": viewport["height"]}
    assert not g["pageScrolls"] and not g["scrolls"]
    for t in g["tiles"]:
        assert _inside(t, screen) and _inside(t, g["stage"]), t
        assert t["y"] + t["h"] <= g["controls"]["y"] + 0.5 and t["y"] >= g["head"]["y"] + g["head"]["h"], t


async def _shots(page, name: str) -> None:
    import os

    shots = os.environ.get("SUITE_E2E_SCREENSHOTS")
    if shots:
        await page.screenshot(path=f"{shots}/{name}.png", full_page=True)


async def test_meeting_stage_layout_desktop_and_phone(page_url):
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing("playwright not installed (pip install playwright; the browser is Debian's chromium)")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"])
        try:
            # desktop, 3 and 10 people in the grid: every tile inside the window, between the header
            # and the controls, and together they fill the stage (the 3 tiles of the old fixed-width
            # grid took a third of it, with an empty band under them)
            for count in (3, 10):
                page = await _page(browser, page_url, DESKTOP, count=count, hands=["p1"], muted=["p1", "p2"])
                g = await page.evaluate(GEOMETRY)
                assert len(g["tiles"]) == count
                _desktop_fits(g, DESKTOP)
                _badges_clear_of_names(g)
                stage_area = g["stage"]["w"] * g["stage"]["h"]
                assert sum(t["w"] * t["h"] for t in g["tiles"]) >= 0.5 * stage_area, (count, g["tiles"][0], g["stage"])
                for t in g["tiles"]:
                    assert abs(t["w"] / t["h"] - 16 / 9) < 0.03, t  # 16:9 tiles
                # the participants panel opens to the right of the stage; the tiles shrink to fit
                await page.get_by_role("button", name="Participants").click()
                await page.locator(".m-side").wait_for()
                await _settled(page)
                g2 = await page.evaluate(GEOMETRY)
                assert g2["side"]["x"] >= g2["stage"]["x"] + g2["stage"]["w"] - 1, (g2["side"], g2["stage"])
                assert g2["side"]["y"] < g2["stage"]["y"] + g2["stage"]["h"] / 2  # beside it, not under it
                _desktop_fits(g2, DESKTOP)
                await _shots(page, f"layout-desktop-{count}-panel")
                assert page.errors == []
                await page.context.close()

            # a shared screen takes the stage: its tile is the largest, the cameras small, all on screen
            page = await _page(browser, page_url, DESKTOP, count=10, screen="p4", speaker="p2", hands=["p3"])
            assert await page.locator(".grid.m-speaker-view").count() == 1
            g = await page.evaluate(GEOMETRY)
            _desktop_fits(g, DESKTOP)
            _badges_clear_of_names(g)
            big = max(g["tiles"], key=lambda t: t["w"] * t["h"])
            assert big["peer"] == "p4" and big["main"], big
            assert all(big["w"] * big["h"] > 4 * t["w"] * t["h"] for t in g["tiles"] if t["peer"] != "p4")
            fit = await page.evaluate("getComputedStyle(document.querySelector('.tile.m-screen video')).objectFit")
            assert fit == "contain"
            await _shots(page, "layout-desktop-10-screen")
            await page.context.close()

            # phone: two columns, the stage scrolls for ten, the controls stay in the window; the
            # speaker view's small tiles keep the name clear of "Hand raised"
            page = await _page(browser, page_url, PHONE, count=10, hands=["p1", "p2"], muted=["p2"])
            g = await page.evaluate(GEOMETRY)
            assert len({round(t["x"]) for t in g["tiles"]}) == 2
            assert all(t["x"] >= 0 and t["x"] + t["w"] <= PHONE["width"] for t in g["tiles"])
            # one row of controls leaves the stage room for all ten (four rows of buttons made it scroll)
            assert not g["scrolls"] and not g["pageScrolls"]
            assert g["controls"]["y"] + g["controls"]["h"] <= PHONE["height"] + 1
            _badges_clear_of_names(g)
            # one row of controls (the rest under "More actions"), so the stage keeps the height
            tops = await page.locator("nav.controls > button").evaluate_all(
                "bs => bs.map((b) => Math.round(b.getBoundingClientRect().top))"
            )
            assert len(tops) == 6 and len(set(tops)) == 1, tops
            await page.get_by_role("button", name="More actions").click()
            await page.get_by_role("button", name="Speaker view").click()
            await page.locator(".grid.m-speaker-view").wait_for()
            await _settled(page)
            g = await page.evaluate(GEOMETRY)
            _badges_clear_of_names(g)
            big = max(g["tiles"], key=lambda t: t["w"] * t["h"])
            assert big["main"] and big["w"] >= PHONE["width"] - 40
            await _shots(page, "layout-375-speaker")
            assert page.errors == []
            await page.context.close()

            # people waiting in the lobby: on the phone row a count on the Participants icon (the
            # label "Participants (2 waiting)" was cut to "Particip…"), the accessible name unchanged
            page = await _page(browser, page_url, PHONE, count=3, waiting=2)
            people = page.get_by_role("button", name="Participants (2 waiting)")
            assert await people.locator(".ctl-count").inner_text() == "2"
            assert await people.locator(".ctl-label").evaluate("(e) => e.scrollWidth <= e.clientWidth")
            await _shots(page, "layout-375-waiting")
            await page.context.close()

            # sixteen do not fit: the stage scrolls, the page does not, the controls stay in the window
            page = await _page(browser, page_url, PHONE, count=16)
            g = await page.evaluate(GEOMETRY)
            assert g["scrolls"] and not g["pageScrolls"]
            assert g["controls"]["y"] + g["controls"]["h"] <= PHONE["height"] + 1
            assert page.errors == []
            await page.context.close()
        finally:
            await browser.close()
