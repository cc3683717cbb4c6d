// The meeting stage's tile sizes (src/meeting/layout.js), run by node's test runner
// (tests/e2e/test_web_units.py runs them; tests/e2e/test_meeting_layout.py checks them in Chromium).
import { test } from "node:test";
import assert from "node:assert/strict";
import { stageLayout } from "../src/meeting/layout.js";

const GAP = 8;
const fits = (L, count, width, height) => {
  const rows = Math.ceil(count / L.cols);
  assert.ok(L.cols * L.tileW + (L.cols - 1) * GAP <= width, `${L.cols} columns of ${L.tileW} in ${width}`);
  assert.ok(rows * L.tileH + (rows - 1) * GAP <= height, `${rows} rows of ${L.tileH} in ${height}`);
};

test("grid: the largest 16:9 tiles that fit, for 1 to 12 people on a desktop stage", () => {
  for (let n = 1; n <= 12; n++) {
    const L = stageLayout({ width: 1262, height: 692, count: n });
    fits(L, n, 1262, 692);
    assert.ok(Math.abs(L.tileW / L.tileH - 16 / 9) < 0.02);
    // no other column count gives larger tiles
    for (let c = 1; c <= n; c++) {
      const r = Math.ceil(n / c);
      const w = Math.min((1262 - GAP * (c - 1)) / c, ((692 - GAP * (r - 1)) / r) * 16 / 9);
      assert.ok(Math.floor(w) <= L.tileW, `${n} people: ${c} columns give ${w} > ${L.tileW}`);
    }
  }
  assert.equal(stageLayout({ width: 1262, height: 692, count: 3 }).cols, 2);
  assert.equal(stageLayout({ width: 1262, height: 692, count: 10 }).cols, 4);
});

test("phone: one column for two, two columns after, tiles between 16:9 and 3:4", () => {
  assert.equal(stageLayout({ width: 355, height: 500, count: 2, phone: true }).cols, 1);
  const L = stageLayout({ width: 355, height: 500, count: 10, phone: true });
  assert.equal(L.cols, 2);
  assert.ok(L.tileH >= Math.floor(L.tileW * 9 / 16) && L.tileH <= L.tileW * 4 / 3);
  const few = stageLayout({ width: 355, height: 400, count: 3, phone: true });
  assert.equal(few.tileH, Math.floor((400 - GAP) / 2)); // two rows fill the height
  assert.equal(stageLayout({ width: 355, height: 900, count: 3, phone: true }).tileH, Math.floor(((355 - GAP) / 2) * 4 / 3)); // at most 3:4
});

test("speaker view: one main tile as large as fits over a strip of the others", () => {
  const L = stageLayout({ width: 1262, height: 692, count: 10, view: "speaker" });
  assert.equal(L.cols, 9);
  assert.ok(9 * L.tileW + 8 * GAP <= 1262);
  assert.ok(L.mainH + GAP + L.tileH <= 692 && L.mainW <= 1262);
  assert.ok(L.mainW * L.mainH > 20 * L.tileW * L.tileH);
  const alone = stageLayout({ width: 1262, height: 692, count: 1, view: "speaker" });
  assert.equal(alone.mainH, Math.floor(Math.min(692, 1262 * 9 / 16)));
});

test("an unmeasured stage gives zero sizes, never negative or NaN", () => {
  const L = stageLayout({ width: 0, height: 0, count: 4 });
  for (const v of [L.tileW, L.tileH]) assert.ok(Number.isFinite(v) && v >= 0);
  const S = stageLayout({ width: 0, height: 0, count: 4, view: "speaker", phone: true });
  for (const v of [S.tileW, S.tileH, S.mainW, S.mainH]) assert.ok(Number.isFinite(v) && v >= 0);
});
