// Dialogs of the Files view: a modal <dialog> frame, name prompts (new folder, rename, move/copy),
// versions, and the preview (images, PDF, text, audio, video — streamed with Range from the content
// URL; HTML and SVG sources are shown as text, never rendered on the app's origin).
import { useEffect, useRef, useState } from "preact/hooks";
import { html } from "../lib/html.js";
import { fmtBytes, fmtFullDate } from "../lib/format.js";
import * as F from "./files-api.js";
import { PdfPreview } from "../lib/pdf-preview.js";

export function Modal({ title, onClose, children, wide = false }) {
  const ref = useRef(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => { if (d && d.open) d.close(); };
  }, []);
  const id = "dlg-" + title.replace(/\W+/g, "-").toLowerCase();
  return html`
    <dialog ref=${ref} class=${"modal" + (wide ? " wide" : "")} aria-labelledby=${id} onCancel=${(e) => { e.preventDefault(); onClose(); }}>
      <div class="modal-head"><h2 id=${id}>${title}</h2>
        <button type="button" class="ghost small" aria-label="Close" onClick=${onClose}>✕</button></div>
      ${children}
    </dialog>`;
}

// One text field and a submit button; onSubmit(value) may throw (shown as an alert).
export function Prompt({ title, label, initial = "", action, onSubmit, onClose, hint, list }) {
  const [value, setValue] = useState(initial);
  const [err, setErr] = useState("");
  const [busy, setBusy] = useState(false);
  async function submit(ev) {
    ev.preventDefault();
    setBusy(true); setErr("");
    try { await onSubmit(value.trim()); onClose(); } catch (e) { setErr(e.message); } finally { setBusy(false); }
  }
  return html`
    <${Modal} title=${title} onClose=${onClose}>
      <form onSubmit=${submit} class="stack">
        <label for="prompt-in">${label}</label>
        <input id="prompt-in" value=${value} onInput=${(e) => setValue(e.currentTarget.value)} autofocus required list=${list ? "prompt-list" : undefined} />
        ${list && html`<datalist id="prompt-list">${list.map((x) => html`<option value=${x} />`)}</datalist>`}
        ${hint && html`<p class="muted small">${hint}</p>`}
        ${err && html`<p class="error" role="alert">${err}</p>`}
        <div class="row-end"><button type="button" onClick=${onClose}>Cancel</button>
          <button class="primary" disabled=${busy}>${action}</button></div>
      </form>
    <//>`;
}

export function Versions({ item, onClose, onChanged }) {
  const [vs, setVs] = useState(null);
  const [err, setErr] = useState("");
  const load = () => F.versions(item.path).then((d) => setVs(d.versions), (e) => setErr(e.message));
  useEffect(load, [item.path]);
  async function restore(v) {
    try { await F.restoreVersion(item.path, v.id); await load(); onChanged(); } catch (e) { setErr(e.message); }
  }
  return html`
    <${Modal} title=${"Versions of " + item.name} onClose=${onClose}>
      ${err && html`<p class="error" role="alert">${err}</p>`}
      ${vs && vs.length === 0 && html`<p class="empty">No earlier versions: a version is kept each time the file is replaced.</p>`}
      ${vs && vs.length > 0 && html`
        <ul class="versions">
          <li><strong>Current</strong> · ${fmtBytes(item.size)} · ${fmtFullDate(item.modified * 1000)}</li>
          ${vs.map((v) => html`<li key=${v.id}><span>${fmtFullDate(v.modified * 1000)} · ${fmtBytes(v.size)}</span>
            <button type="button" class="small" onClick=${() => restore(v)}
              aria-label=${"Restore version of " + fmtFullDate(v.modified * 1000)}>Restore</button></li>`)}
        </ul>`}
    <//>`;
}

const TEXTY = /^(text\/|application\/(json|xml|javascript|x-sh|x-yaml|toml))|\+xml$|\+json$/;

export function previewKind(item) {
  const t = item.media_type || "";
  if (t === "image/svg+xml") return "text"; // source as text: never a document of our origin
  if (t.startsWith("image/")) return "image";
  if (t.startsWith("video/")) return "video";
  if (t.startsWith("audio/")) return "audio";
  if (t === "application/pdf") return "pdf";
  if (TEXTY.test(t) || /\.(txt|md|csv|log|py|js|json|html?|css|xml|ya?ml|ini|conf)$/i.test(item.name)) return "text";
  return null;
}

const TEXT_LIMIT = 256 * 1024;

function TextPreview({ url }) {
  const [text, setText] = useState(null);
  useEffect(() => {
    let live = true;
    fetch(url, { headers: { Range: `bytes=0-${TEXT_LIMIT - 1}` }, credentials: "same-origin" })
      .then((r) => r.text()).then((t) => live && setText(t), () => live && setText("(could not load)"));
    return () => { live = false; };
  }, [url]);
  return text === null ? html`<p role="status">Loading…</p>` : html`<pre class="text-preview" tabindex="0">${text}</pre>`;
}

export function PreviewBody({ item, url }) {
  const kind = previewKind(item);
  if (kind === "image") return html`<img class="preview-media" src=${url} alt=${item.name} />`;
  if (kind === "video") return html`<video class="preview-media" src=${url} controls preload="metadata" aria-label=${item.name}></video>`;
  if (kind === "audio") return html`<audio src=${url} controls preload="metadata" aria-label=${item.name}></audio>`;
  // pdf.js draws it on a canvas (the bytes fetched, never framed: no PDF is a page of our origin)
  if (kind === "pdf") return html`<${PdfPreview} url=${url} name=${item.name} size=${item.size} maxWidth=${760} fitHeight=${0.65} />`;
  if (kind === "text") return html`<${TextPreview} url=${url} />`;
  return html`<p class="empty">No preview for this kind of file.</p>`;
}

export function Preview({ item, onClose }) {
  return html`
    <${Modal} title=${item.name} onClose=${onClose} wide=${true}>
      <div class="file-preview"><${PreviewBody} item=${item}
        url=${F.contentUrl(item.path, previewKind(item) !== "pdf")} /></div>
      <div class="row-end">
        <span class="muted">${fmtBytes(item.size)} · ${item.media_type}</span>
        <a class="button primary" href=${F.contentUrl(item.path)} download=${item.name}>Download</a>
      </div>
    <//>`;
}
