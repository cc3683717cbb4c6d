// The meeting stage's tile sizes, from the number of tiles and the stage's size (CSS px).
// Grid view: the column count whose 16:9 tiles are the largest that fit the stage (the grid is
// centred: letterboxed). Speaker view: one main tile (the active speaker or a shared screen), as
// large as fits, and the others small in a strip under it. On a phone the stage may scroll:
// two columns, tiles between 16:9 and 3:4 filling the height when few, scrolling when many.

const WIDE = 9 / 16;
const TALL = 4 / 3;

function grid({ width, height, count, gap, phone }) {
  if (phone) {
    const cols = count <= 2 ? 1 : 2;
    const rows = Math.ceil(count / cols);
    const w = (width - gap * (cols - 1)) / cols;
    const fit = (height - gap * (rows - 1)) / rows;
    const h = Math.max(w * WIDE, Math.min(fit, w * TALL));
    return { cols, tileW: w, tileH: h };
  }
  let best = { cols: 1, tileW: 0, tileH: 0 };
  for (let cols = 1; cols <= count; cols++) {
    const rows = Math.ceil(count / cols);
    const w = Math.min((width - gap * (cols - 1)) / cols, ((height - gap * (rows - 1)) / rows) / WIDE);
    if (w > best.tileW) best = { cols, tileW: w, tileH: w * WIDE };
  }
  return best;
}

function speaker({ width, height, count, gap, phone }) {
  const others = count - 1;
  if (phone) {
    const cols = Math.min(3, Math.max(1, others));
    const w = (width - gap * (cols - 1)) / cols;
    const h = w * WIDE;
    const rows = Math.ceil(others / cols);
    const left = height - rows * (h + gap);
    const mainH = Math.max(width * WIDE, Math.min(left, width * TALL));
    return { cols, tileW: w, tileH: h, mainW: width, mainH };
  }
  if (others === 0) {
    const mainW = Math.min(width, height / WIDE);
    return { cols: 1, tileW: 0, tileH: 0, mainW, mainH: mainW * WIDE };
  }
  const stripH = Math.min(150, Math.max(64, height * 0.18));
  const tileW = Math.min(stripH / WIDE, (width - gap * (others - 1)) / others);
  const tileH = tileW * WIDE;
  const mainW = Math.min(width, (height - tileH - gap) / WIDE);
  return { cols: others, tileW, tileH, mainW, mainH: mainW * WIDE };
}

// { cols, tileW, tileH, mainW?, mainH? }, sizes rounded down to whole pixels.
export function stageLayout({ width, height, count, gap = 8, phone = false, view = "grid" }) {
  const n = Math.max(1, count);
  const w = Math.max(0, width);
  const h = Math.max(0, height);
  const out = view === "speaker" && n > 0 ? speaker({ width: w, height: h, count: n, gap, phone }) : grid({ width: w, height: h, count: n, gap, phone });
  for (const k of ["tileW", "tileH", "mainW", "mainH"]) if (k in out) out[k] = Math.max(0, Math.floor(out[k]));
  return out;
}
