// The public page of a share link (/p/<token>), for people without an account: a file (preview and
// "Download"), a folder (browse, files, ZIP), a drop link (upload with progress), and encrypted links,
// decrypted here while downloading (docs/ENCRYPTED-LINKS.md). The key stays in the fragment: it is
// never put in a request.
import "./share.css";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { html } from "../lib/html.js";
import { fmtBytes } from "../lib/format.js";
import { keyFromFragment, fragmentNeedsPassword, readHeader, CryptoError } from "../lib/crypto-format.js";
import { saveDecrypted, BlobFallbackTooLarge } from "./decrypt-save.js";
import { PreviewBody, previewKind } from "../views/files-dialogs.js";

const token = decodeURIComponent(location.pathname.split("/")[2] || "");
const fragment = location.hash.slice(1);
const API = `/api/public/shares/${encodeURIComponent(token)}`;
const basic = (auth) => (auth ? { Authorization: "Basic " + btoa("share:" + auth) } : {});

async function getJSON(url, auth) {
  const res = await fetch(url, { headers: basic(auth), credentials: "omit" });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) { const e = new Error(data.message || res.statusText); e.status = res.status; e.code = data.error; throw e; }
  return data;
}

function PasswordForm({ onPassword, wrong }) {
  const [pw, setPw] = useState("");
  const [busy, setBusy] = useState(false);
  return html`
    <form class="card" onSubmit=${async (e) => { e.preventDefault(); setBusy(true); await onPassword(pw); setBusy(false); }}>
      <p>This link is protected by a password.</p>
      <label for="pw">Password</label>
      <input id="pw" type="password" value=${pw} onInput=${(e) => setPw(e.currentTarget.value)} autofocus required />
      ${wrong && html`<p class="error" role="alert">${wrong}</p>`}
      <button class="primary" disabled=${busy}>${busy ? "Checking…" : "Open"}</button>
    </form>`;
}

function Progress({ label, done, total }) {
  const pct = total ? Math.round((100 * done) / total) : 0;
  return html`<div class="prog"><div role="progressbar" aria-label=${label} aria-valuemin="0" aria-valuemax="100" aria-valuenow=${pct}
    class="bar"><span style=${`width:${pct}%`}></span></div><span class="muted">${fmtBytes(done)} of ${fmtBytes(total)}</span></div>`;
}

// A form POST to the link: the browser saves the answer (file or ZIP) itself, password in the form.
function DownloadForm({ auth, label = "Download" }) {
  return html`<form method="post" action=${"/s/" + encodeURIComponent(token)} class="dl-form">
    ${auth && html`<input type="hidden" name="password" value=${auth} />`}
    <button class="primary big">${label}</button></form>`;
}

function EncryptedFile({ info, keyBytes, auth }) {
  const [meta, setMeta] = useState(null);
  const [err, setErr] = useState("");
  const [prog, setProg] = useState(null);
  const [done, setDone] = useState("");
  useEffect(() => {
    fetch(API + "/head", { headers: basic(auth), credentials: "omit" })
      .then((r) => (r.ok ? r.arrayBuffer() : Promise.reject(new Error("The link could not be read."))))
      .then((b) => readHeader(new Uint8Array(b), keyBytes))
      .then((h) => (h ? setMeta(h.meta) : setErr("The file's header is damaged.")), (e) => setErr(e.message));
  }, []);
  async function download() {
    setErr(""); setDone("");
    try {
      const how = await saveDecrypted({ url: "/s/" + encodeURIComponent(token), headers: basic(auth), key: keyBytes, meta,
        total: info.size, onProgress: (n) => setProg(n) });
      setDone(how);
    } catch (e) {
      setErr(e instanceof CryptoError || e instanceof BlobFallbackTooLarge || e.status ? e.message : "The download failed: " + e.message);
    }
  }
  if (err && !meta) return html`<p class="error" role="alert">${err}</p>`;
  if (!meta) return html`<p role="status">Decrypting the file's name…</p>`;
  return html`
    <div class="card">
      <p class="lock">End-to-end encrypted: this page decrypts the file; the server only has ciphertext.</p>
      <h2 class="fname">${meta.name}</h2>
      <p class="muted">${fmtBytes(meta.size)} · ${meta.type}</p>
      <button class="primary big" onClick=${download} disabled=${prog !== null && !done && !err}>Download</button>
      ${prog !== null && html`<${Progress} label="Download progress" done=${prog} total=${info.size} />`}
      ${done && html`<p role="status" class="ok">Decrypted and saved (${done}).</p>`}
      ${err && html`<p class="error" role="alert">${err}</p>`}
    </div>`;
}

function PlainFile({ info, auth }) {
  const item = { name: info.name, media_type: info.media_type, size: info.size };
  const canPreview = !info.limited && !info.password && previewKind(item);
  return html`
    <div class="card">
      <h2 class="fname">${info.name}</h2>
      <p class="muted">${fmtBytes(info.size)} · ${info.media_type}</p>
      ${canPreview && html`<div class="preview"><${PreviewBody} item=${item} url=${API + "/content?preview=1"} /></div>`}
      <${DownloadForm} auth=${auth} />
    </div>`;
}

function Folder({ info: first, auth }) {
  const [path, setPath] = useState("");
  const [info, setInfo] = useState(first);
  const [err, setErr] = useState("");
  useEffect(() => {
    if (path === (info.path || "")) return;
    getJSON(`${API}?path=${encodeURIComponent(path)}`, auth).then(setInfo, (e) => setErr(e.message));
  }, [path]);
  async function save(f) {
    const url = `${API}/content/${f.path.split("/").map(encodeURIComponent).join("/")}`;
    if (!auth) { const a = document.createElement("a"); a.href = url; a.download = f.name; a.click(); return; }
    const res = await fetch(url, { headers: basic(auth), credentials: "omit" });
    if (!res.ok) { setErr("The download failed."); return; }
    const blobUrl = URL.createObjectURL(await res.blob());
    const a = document.createElement("a"); a.href = blobUrl; a.download = f.name; a.click();
    setTimeout(() => URL.revokeObjectURL(blobUrl), 60000);
  }
  const parts = path.split("/").filter(Boolean);
  return html`
    <div class="card">
      <h2 class="fname">${first.name}</h2>
      <nav aria-label="Folder path" class="crumbs"><button type="button" class="link" onClick=${() => setPath("")}>${first.name}</button>
        ${parts.map((p, i) => html` › <button type="button" class="link" onClick=${() => setPath(parts.slice(0, i + 1).join("/"))}>${p}</button>`)}</nav>
      ${err && html`<p class="error" role="alert">${err}</p>`}
      <ul class="entries">
        ${(info.children || []).map((c) => html`<li key=${c.path}>
          ${c.type === "folder"
            ? html`<button type="button" class="link fname" onClick=${() => setPath(c.path)}>📁 ${c.name}</button>`
            : html`<span class="fname">${c.name}</span> <span class="muted">${fmtBytes(c.size)}</span>
                   <button type="button" class="small" aria-label=${"Download " + c.name} onClick=${() => save(c)}>Save</button>`}
        </li>`)}
        ${info.children && info.children.length === 0 && html`<li class="muted">This folder is empty.</li>`}
      </ul>
      <${DownloadForm} auth=${auth} label="Download all (ZIP)" />
    </div>`;
}

function Drop({ info, auth }) {
  const [items, setItems] = useState([]);
  const put = (i, f) => setItems((l) => l.map((x, j) => (j === i ? { ...x, ...f } : x)));
  function send(files) {
    const start = items.length;
    setItems((l) => [...l, ...[...files].map((f) => ({ name: f.name, size: f.size, sent: 0, state: "uploading" }))]);
    [...files].forEach((file, k) => {
      const i = start + k;
      const form = new FormData();
      if (auth) form.append("password", auth);
      form.append("file", file, file.name);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/s/" + encodeURIComponent(token));
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = (e) => put(i, { sent: e.loaded });
      xhr.onload = () => {
        let msg = "";
        try { msg = JSON.parse(xhr.responseText).message || ""; } catch { /* not JSON */ }
        put(i, xhr.status === 201 ? { state: "done", sent: file.size } : { state: "error", error: msg || `failed (${xhr.status})` });
      };
      xhr.onerror = () => put(i, { state: "error", error: "the connection failed" });
      xhr.send(form);
    });
  }
  return html`
    <div class="card drop" onDragOver=${(e) => e.preventDefault()} onDrop=${(e) => { e.preventDefault(); send(e.dataTransfer.files); }}>
      <p>Upload files into “${info.name}”. You cannot see what is already there.</p>
      <label class="button primary big">Choose files
        <input type="file" multiple class="visually-hidden" aria-label="Files to upload" onChange=${(e) => { send(e.currentTarget.files); e.currentTarget.value = ""; }} />
      </label>
      <ul class="entries">${items.map((u, i) => html`<li key=${i}>
        <span class="fname">${u.name}</span>
        <${Progress} label=${"Uploading " + u.name} done=${u.sent} total=${u.size} />
        <span class=${u.state === "error" ? "error" : "muted"}>${u.state === "done" ? "Uploaded" : u.state === "error" ? u.error : ""}</span>
      </li>`)}</ul>
    </div>`;
}

const MESSAGES = { 404: "This link does not exist or was revoked.", 410: "This link has expired or has been used up.",
  429: "Too many wrong passwords. Try again later." };

function Page() {
  const [state, setState] = useState({ step: "loading" });
  const encryptedLink = !!fragment;
  async function open(password) {
    let auth = null, keyBytes = null;
    try {
      if (encryptedLink) {
        if (fragmentNeedsPassword(fragment) && !password) { setState({ step: "password" }); return; }
        ({ key: keyBytes, auth } = await keyFromFragment(fragment, password));
      } else {
        auth = password || null;
      }
      const info = await getJSON(API, auth);
      if (info.encrypted && !keyBytes) {
        setState({ step: "error", message: "This is an encrypted link, but the key is missing (the part after #). Ask the sender for the whole link." });
        return;
      }
      setState({ step: "ready", info, auth, keyBytes });
    } catch (e) {
      if (e instanceof CryptoError && e.kind === "password") setState({ step: "password", wrong: e.message });
      else if (e instanceof CryptoError) setState({ step: "error", message: e.message });
      else if (e.status === 401) setState({ step: "password" });
      else if (e.status === 403) setState({ step: "password", wrong: "Wrong password." });
      else setState({ step: "error", message: MESSAGES[e.status] || e.message });
    }
  }
  useEffect(() => { open(null); }, []);
  const { step, info } = state;
  return html`
    <header class="top"><span class="brand">Suite</span><span class="muted">Shared with you</span></header>
    ${step === "loading" && html`<p role="status">Loading…</p>`}
    ${step === "password" && html`<${PasswordForm} onPassword=${open} wrong=${state.wrong} />`}
    ${step === "error" && html`<div class="card"><h1>Not available</h1><p class="error" role="alert">${state.message}</p></div>`}
    ${step === "ready" && info.kind === "drop" && html`<${Drop} info=${info} auth=${state.auth} />`}
    ${step === "ready" && info.kind !== "drop" && info.type === "folder" && html`<${Folder} info=${info} auth=${state.auth} />`}
    ${step === "ready" && info.kind !== "drop" && info.type === "file" && (info.encrypted
      ? html`<${EncryptedFile} info=${info} keyBytes=${state.keyBytes} auth=${state.auth} />`
      : html`<${PlainFile} info=${info} auth=${state.auth} />`)}
    ${step === "ready" && info.expires && html`<p class="muted small foot">This link expires ${new Date(info.expires * 1000).toLocaleString()}.</p>`}`;
}

const root = document.getElementById("share");
root.textContent = "";
render(html`<${Page} />`, root);
