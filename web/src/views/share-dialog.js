// The share dialog (a link to a file or folder: expiry, password, download limit, drop links; or an
// encrypted link made from a file on this device) and the list of my links (uses, revoke).
import { useEffect, useState } from "preact/hooks";
import { html } from "../lib/html.js";
import { fmtBytes, fmtFullDate } from "../lib/format.js";
import { useObservable } from "../lib/store.js";
import { uploads, enqueue, CHUNK_ENCRYPTED } from "../lib/tus-uploads.js";
import { b64u, makeFragment, randomKey, E2EE_TYPE } from "../lib/crypto-format.js";
import { encryptedUpload } from "../lib/e2ee-upload.js";
import { Modal } from "./files-dialogs.js";
import * as F from "./files-api.js";

export const ENCRYPTED_FOLDER = "/Encrypted links";
const EXPIRY = [["", "Never"], ["3600", "1 hour"], ["86400", "1 day"], ["604800", "7 days"], ["2592000", "30 days"]];

async function encryptAndUpload(file, password, onJob) {
  const key = randomKey();
  const { fragment, auth } = await makeFragment(key, password);
  const source = await encryptedUpload(file, key, CHUNK_ENCRYPTED);
  const name = `${file.name}.${b64u(crypto.getRandomValues(new Uint8Array(3)))}.e2ee`;
  const done = enqueue([{ file, folder: ENCRYPTED_FOLDER, source, name, type: E2EE_TYPE }]);
  onJob(name);
  const [result] = await done;
  if (!result) throw new Error("The encrypted upload did not finish (see Uploads).");
  return { path: F.join(ENCRYPTED_FOLDER, name), fragment, auth };
}

export function ShareDialog({ item, encrypt: encrypt0 = false, onClose, onCreated }) {
  const [encrypt, setEncrypt] = useState(encrypt0 || !item);
  const [kind, setKind] = useState("download");
  const [expiry, setExpiry] = useState("");
  const [password, setPassword] = useState("");
  const [limit, setLimit] = useState("");
  const [file, setFile] = useState(null);
  const [link, setLink] = useState("");
  const [err, setErr] = useState("");
  const [busy, setBusy] = useState("");
  const [job, setJob] = useState(null);
  const [copied, setCopied] = useState(false);
  const ups = useObservable(uploads);
  const up = job && ups.find((u) => u.name === job);
  const isFolder = item && item.type === "folder";

  async function create(ev) {
    ev.preventDefault();
    setErr(""); setLink("");
    const body = {};
    if (expiry) body.expires_in = Number(expiry);
    if (limit) body.max_uses = Number(limit);
    try {
      let fragment = "";
      if (encrypt) {
        if (!file) throw new Error("Choose the file to encrypt.");
        setBusy("Encrypting and uploading…");
        const r = await encryptAndUpload(file, password, setJob);
        body.path = r.path;
        fragment = "#" + r.fragment;
        if (r.auth) body.password = r.auth; // derived from the password; the server cannot unwrap the key with it
      } else {
        body.path = item.path;
        body.kind = kind;
        if (password) body.password = password;
      }
      setBusy("Creating the link…");
      const share = await F.createShare(body);
      setLink(F.pageUrl(share.token) + fragment);
      onCreated && onCreated();
    } catch (e) {
      setErr(e.message);
    } finally {
      setBusy("");
    }
  }
  async function copy() {
    try { await navigator.clipboard.writeText(link); setCopied(true); } catch {
      const el = document.getElementById("share-link"); el.select(); document.execCommand("copy"); setCopied(true);
    }
  }
  const pct = up ? Math.round((100 * up.sent) / (up.size || 1)) : 0;
  return html`
    <${Modal} title=${item ? `Share “${item.name}”` : "New encrypted link"} onClose=${onClose}>
      <form class="stack share-form" onSubmit=${create}>
        <div class="field check">
          <input type="checkbox" id="sh-enc" checked=${encrypt} disabled=${!item} onChange=${(e) => setEncrypt(e.currentTarget.checked)} />
          <label for="sh-enc">Encrypt</label>
        </div>
        ${encrypt && html`
          <p class="muted small">An encrypted link is made from a file on this device: it is encrypted here before it is
            uploaded, and the key is only in the link (after the #), so the server never sees the file's content or name.
            Keep the link: it cannot be shown again.</p>
          <label for="sh-file">File to encrypt</label>
          <input type="file" id="sh-file" onChange=${(e) => setFile(e.currentTarget.files[0] || null)} />
          ${file && html`<span class="muted small">${file.name} · ${fmtBytes(file.size)}</span>`}`}
        ${!encrypt && isFolder && html`
          <fieldset class="kind"><legend>Link type</legend>
            <label><input type="radio" name="kind" checked=${kind === "download"} onChange=${() => setKind("download")} /> Download (browse and ZIP)</label>
            <label><input type="radio" name="kind" checked=${kind === "drop"} onChange=${() => setKind("drop")} /> Upload only (file drop)</label>
          </fieldset>`}
        <label for="sh-exp">Expiry</label>
        <select id="sh-exp" value=${expiry} onChange=${(e) => setExpiry(e.currentTarget.value)}>
          ${EXPIRY.map(([v, l]) => html`<option value=${v}>${l}</option>`)}
        </select>
        <label for="sh-pw">Password</label>
        <input type="password" id="sh-pw" autocomplete="new-password" value=${password} onInput=${(e) => setPassword(e.currentTarget.value)}
          placeholder="Optional" />
        <label for="sh-max">${kind === "drop" && !encrypt ? "Upload limit" : "Download limit"}</label>
        <input type="number" id="sh-max" min="1" value=${limit} onInput=${(e) => setLimit(e.currentTarget.value)} placeholder="Unlimited"
          aria-label=${kind === "drop" && !encrypt ? "Download limit (uploads, for a drop)" : "Download limit"} />
        ${busy && html`<p role="status">${busy}</p>`}
        ${up && up.state !== "done" && html`<div role="progressbar" aria-label="Encrypted upload" aria-valuemin="0" aria-valuemax="100"
          aria-valuenow=${pct} class="bar"><span style=${`width:${pct}%`}></span></div>`}
        ${err && html`<p class="error" role="alert">${err}</p>`}
        <div class="row-end"><button class="primary" disabled=${!!busy}>Create link</button></div>
        ${link && html`
          <label for="share-link">Link</label>
          <div class="link-row">
            <input id="share-link" readonly value=${link} onFocus=${(e) => e.currentTarget.select()} />
            <button type="button" onClick=${copy}>${copied ? "Copied" : "Copy"}</button>
          </div>`}
      </form>
    <//>`;
}

export function MyLinks() {
  const [list, setList] = useState(null);
  const [err, setErr] = useState("");
  const load = () => F.shares().then((d) => setList(d.shares), (e) => setErr(e.message));
  useEffect(load, []);
  async function revoke(s) {
    try { await F.revokeShare(s.id); load(); } catch (e) { setErr(e.message); }
  }
  if (err) return html`<p class="error" role="alert">${err}</p>`;
  if (!list) return html`<p role="status">Loading…</p>`;
  if (!list.length) return html`<p class="empty">No links yet: select a file or folder and press Share.</p>`;
  return html`
    <table class="filelist links-table" aria-label="My links">
      <thead><tr><th scope="col">Shared</th><th scope="col">Type</th><th scope="col" class="num">Downloads</th>
        <th scope="col">Expires</th><th scope="col">State</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody>${list.map((s) => html`
        <tr key=${s.id}>
          <td class="fname">${s.path}</td>
          <td>${s.kind === "drop" ? "File drop" : s.path.endsWith(".e2ee") ? "Encrypted" : "Download"}${s.has_password ? " · password" : ""}</td>
          <td class="num">${s.uses}${s.max_uses ? ` of ${s.max_uses}` : ""}</td>
          <td>${s.expires ? fmtFullDate(s.expires * 1000) : "Never"}</td>
          <td>${s.revoked ? "Revoked" : s.active ? "Active" : "Ended"}</td>
          <td>${!s.revoked && html`<button type="button" class="small danger" aria-label=${"Revoke link to " + s.path} onClick=${() => revoke(s)}>Revoke</button>`}</td>
        </tr>`)}</tbody>
    </table>`;
}
