// A PDF drawn on a canvas by pdf.js (lib/pdf.js, its own chunk, loaded by import() on first use), with
// page buttons. Used by the mail reader (attachments), the Files preview and the public share page: the
// PDF's bytes are fetched and parsed in pdf.js's worker, so no PDF is ever a document of our origin.
import "./pdf-preview.css";
import { useEffect, useRef, useState } from "preact/hooks";
import { html } from "./html.js";

// url: the PDF's bytes (any disposition: fetch() ignores it); size: bytes, when known; PDFs above
// autoBytes are drawn when asked ("Preview <name>"); drawn at most maxWidth CSS pixels wide and, with
// fitHeight (a fraction of the window's height, e.g. in a dialog), a whole page in view.
export function PdfPreview({ url, name, size = 0, autoBytes = Infinity, maxWidth = 560, fitHeight = 0 }) {
  const canvas = useRef(null);
  const box = useRef(null);
  const [wanted, setWanted] = useState(size <= autoBytes);
  const [doc, setDoc] = useState(null);
  const [page, setPage] = useState(1);
  const [state, setState] = useState("idle"); // idle | loading | shown | failed
  useEffect(() => {
    if (!wanted) return;
    let live = true;
    let opened = null;
    setState("loading");
    setDoc(null);
    setPage(1);
    (async () => {
      const [pdf, resp] = await Promise.all([import("./pdf.js"), fetch(url, { credentials: "same-origin" })]);
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      opened = await pdf.openPdf(new Uint8Array(await resp.arrayBuffer()));
      if (live) setDoc({ pdf, doc: opened });
      else opened.destroy();
    })().catch(() => live && setState("failed"));
    return () => { live = false; if (opened) opened.destroy(); };
  }, [url, wanted]);
  useEffect(() => {
    if (!doc || !canvas.current) return;
    let live = true;
    const width = Math.min(maxWidth, (box.current?.clientWidth || maxWidth) - 2);
    const height = fitHeight ? Math.max(200, window.innerHeight * fitHeight) : Infinity;
    doc.pdf.renderPage(doc.doc, page, canvas.current, width, height)
      .then(() => live && setState("shown"), () => live && setState("failed"));
    return () => { live = false; };
  }, [doc, page]);
  const pages = doc ? doc.doc.numPages : 0;
  if (state === "failed") return html`<p class="pdf-note muted">No preview for ${name}.</p>`;
  return html`
    <figure class="pdf-preview" ref=${box}>
      ${!wanted && html`<button type="button" class="small" onClick=${() => setWanted(true)}>Preview ${name}</button>`}
      ${wanted && html`<canvas ref=${canvas} role="img" class=${state === "shown" ? "" : "pdf-pending"}
        aria-label=${`Preview of ${name}, page ${page} of ${pages || "…"}`}></canvas>`}
      ${state === "loading" && !doc && html`<p role="status" class="muted">Loading preview…</p>`}
      ${pages > 0 && html`<figcaption>
        <span class="pdf-name" title=${name}>${name}</span>
        ${pages > 1 && html`
          <button type="button" class="small ghost" aria-label="Previous page" disabled=${page <= 1} onClick=${() => setPage(page - 1)}>‹</button>
          <span aria-live="polite">Page ${page} of ${pages}</span>
          <button type="button" class="small ghost" aria-label="Next page" disabled=${page >= pages} onClick=${() => setPage(page + 1)}>›</button>`}
      </figcaption>`}
    </figure>`;
}
