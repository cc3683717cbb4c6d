// Uploads in the Files view: files and whole folders from drag-and-drop (DataTransfer items →
// webkitGetAsEntry), the file and folder pickers, and the panel with one progress bar per upload.
import { useEffect, useState } from "preact/hooks";
import { html } from "../lib/html.js";
import { fmtBytes } from "../lib/format.js";
import { useObservable } from "../lib/store.js";
import { uploads, enqueue, pause, resume, cancel, clearFinished, totals, unfinished, forget } from "../lib/tus-uploads.js";
import { join, parentOf } from "./files-api.js";

// [{file, rel}] from a drop: entries are taken synchronously (the DataTransfer empties after the event).
export async function filesFromDrop(dt) {
  const entries = [];
  for (const item of dt.items || []) {
    if (item.kind !== "file") continue;
    const entry = item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
    if (entry) entries.push(entry);
    else { const f = item.getAsFile(); if (f) entries.push(f); }
  }
  const out = [];
  async function walk(entry) {
    if (entry instanceof File) { out.push({ file: entry, rel: entry.name }); return; }
    if (entry.isFile) {
      const file = await new Promise((res, rej) => entry.file(res, rej));
      out.push({ file, rel: entry.fullPath.replace(/^\//, "") });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const e of batch) await walk(e);
      }
    }
  }
  for (const e of entries) await walk(e);
  if (!out.length && dt.files) for (const f of dt.files) out.push({ file: f, rel: f.name });
  return out;
}

// Queue [{file, rel}] under `folder` (rel "a/b/c.txt" lands in folder/a/b).
export function uploadInto(folder, picked) {
  return enqueue(picked.map(({ file, rel }) => {
    const dir = parentOf("/" + rel);
    return { file, folder: dir === "/" ? folder : join(folder, dir.slice(1)) };
  }));
}

export function UploadButtons({ folder }) {
  const onPick = (ev) => {
    const input = ev.currentTarget;
    const picked = [...input.files].map((f) => ({ file: f, rel: f.webkitRelativePath || f.name }));
    input.value = "";
    if (picked.length) uploadInto(folder, picked);
  };
  return html`
    <label class="button primary upload-btn">Upload files
      <input type="file" multiple class="visually-hidden" aria-label="Upload files" onChange=${onPick} />
    </label>
    <label class="button upload-btn">Upload a folder
      <input type="file" multiple webkitdirectory class="visually-hidden" aria-label="Upload a folder" onChange=${onPick} />
    </label>`;
}

export function UploadPanel() {
  const list = useObservable(uploads);
  const [left, setLeft] = useState([]);
  useEffect(() => { unfinished().then(setLeft); }, [list.length]);
  const pending = left.filter((u) => !list.some((x) => x.name === u.name && x.folder === u.folder));
  if (!list.length && !pending.length) return null;
  const t = totals(list);
  const pct = (sent, size) => (size ? Math.round((100 * sent) / size) : 100);
  return html`
    <section class="files-uploads panel" aria-label="Uploads">
      ${list.length > 0 && html`
        <div class="upl-total">
          <span id="upl-total-l">Uploaded ${t.done} of ${t.count} · ${fmtBytes(t.sent)} of ${fmtBytes(t.size)}</span>
          <div role="progressbar" aria-label="Total upload progress" aria-valuemin="0" aria-valuemax="100"
            aria-valuenow=${pct(t.sent, t.size)} class="bar"><span style=${`width:${pct(t.sent, t.size)}%`}></span></div>
          <button type="button" class="ghost small" onClick=${clearFinished}>Clear finished</button>
        </div>
        <ul class="upl-list">
          ${list.map((u) => html`
            <li key=${u.id} data-state=${u.state}>
              <span class="upl-name">${u.name}</span>
              <div role="progressbar" aria-label=${"Uploading " + u.name} aria-valuemin="0" aria-valuemax="100"
                aria-valuenow=${pct(u.sent, u.size)} aria-valuetext=${`${pct(u.sent, u.size)}% (${u.state})`} class="bar">
                <span style=${`width:${pct(u.sent, u.size)}%`}></span></div>
              <span class="upl-state">${u.state === "error" ? u.error : u.state === "done" ? "Done" : `${pct(u.sent, u.size)}%`}</span>
              ${u.state === "uploading" && html`<button type="button" class="small" onClick=${() => pause(u.id)} aria-label=${"Pause " + u.name}>Pause</button>`}
              ${(u.state === "paused" || u.state === "error") && html`<button type="button" class="small" onClick=${() => resume(u.id)} aria-label=${"Resume " + u.name}>Resume</button>`}
              ${u.state !== "done" && html`<button type="button" class="ghost small" onClick=${() => cancel(u.id)} aria-label=${"Cancel " + u.name}>✕</button>`}
            </li>`)}
        </ul>`}
      ${pending.length > 0 && html`
        <div class="upl-left" role="status">
          <p>Unfinished uploads from before: pick or drop the same files again to continue where they stopped.</p>
          <ul>${pending.map((u) => html`<li key=${u.key}><span>${u.name}</span> <span class="muted">in ${u.folder} · ${fmtBytes(u.size)}</span>
            <button type="button" class="ghost small" aria-label=${"Forget " + u.name} onClick=${() => forget(u.key).then(() => unfinished().then(setLeft))}>Forget</button></li>`)}</ul>
        </div>`}
    </section>`;
}
