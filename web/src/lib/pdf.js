// PDF rendering to a canvas with pdf.js (pdfjs-dist from npm). Loaded only through import() (its own
// chunk, see build.mjs), so the app's first paint does not carry it. The PDF's bytes are parsed in
// pdf.js's worker (a file of our origin: CSP worker-src 'self') and drawn as pixels: no PDF is ever
// shown as a page of the app's origin, no eval (isEvalSupported: false keeps script-src 'self' whole),
// and nothing is fetched from elsewhere (no font or wasm URLs: standard fonts fall back to the system's).
import { getDocument, GlobalWorkerOptions } from "pdfjs-dist";

GlobalWorkerOptions.workerSrc = document.querySelector('meta[name="pdf-worker"]')?.content || "";

// Opens a PDF from its bytes; resolves to pdf.js's document (numPages, getPage, destroy()).
export async function openPdf(bytes) {
  const task = getDocument({
    data: bytes,
    isEvalSupported: false,
    enableXfa: false,
    stopAtErrors: false,
  });
  return task.promise;
}

// Draws page `number` (1-based) of `doc` into `canvas`, `cssWidth` CSS pixels wide (sharp on HiDPI), or
// less when the page would be taller than `cssHeight`.
export async function renderPage(doc, number, canvas, cssWidth, cssHeight = Infinity) {
  const page = await doc.getPage(number);
  const base = page.getViewport({ scale: 1 });
  const scale = Math.min(cssWidth / base.width, cssHeight / base.height);
  const ratio = Math.min(window.devicePixelRatio || 1, 2);
  const viewport = page.getViewport({ scale: scale * ratio });
  canvas.width = Math.floor(viewport.width);
  canvas.height = Math.floor(viewport.height);
  canvas.style.width = `${Math.floor(viewport.width / ratio)}px`;
  canvas.style.height = `${Math.floor(viewport.height / ratio)}px`;
  const ctx = canvas.getContext("2d");
  await page.render({ canvasContext: ctx, canvas, viewport, background: "#fff" }).promise;
  page.cleanup();
}
