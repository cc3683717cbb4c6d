// Big attachments become share links: the file goes into the sender's Files (folder "Mail attachments",
// resumable upload with tus) and the message carries an expiring download link (name, size, expiry)
// that the recipient opens without an account. With "Encrypt" chosen in compose, the file is encrypted
// here first (the encrypted-link format, docs/ENCRYPTED-LINKS.md): the server stores ciphertext and the
// key travels only in the link's fragment, inside the message.
import * as tus from "tus-js-client";
import { api, session } from "../../lib/api.js";
import { fmtBytes } from "../../lib/format.js";
import { b64u, makeFragment, randomKey, E2EE_TYPE } from "../../lib/crypto-format.js";
import { encryptedUpload } from "../../lib/e2ee-upload.js";
import { CHUNK_ENCRYPTED } from "../../lib/tus-uploads.js";

export const BIG_ATTACHMENT = 10 * 1024 * 1024; // bytes; above this a file is shared, not attached
export const LINK_DAYS = 30;

// The server's threshold and link lifetime (the same for mail programs: /api/settings/mail), asked once.
let limits = null;
export function bigLimits() {
  limits ??= api("/api/settings/mail").then(
    (st) => ({ bytes: st.big_attachment_bytes, days: st.big_attachment_link_days }),
    () => ({ bytes: BIG_ATTACHMENT, days: LINK_DAYS }),
  );
  return limits;
}

function stamp(d = new Date()) {
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}.${p(d.getMinutes())}.${p(d.getSeconds())}`;
}

// source: an encrypted upload (e2ee-upload.js, made for CHUNK_ENCRYPTED, the Files view's chunk size)
// instead of the file's own bytes.
const CHUNK = 8 * 1024 * 1024;
function tusUpload(file, folder, onProgress, { name = file.name, type = file.type, source = null } = {}) {
  return new Promise((resolve, reject) => {
    const up = new tus.Upload(source ? new Blob([]) : file, {
      endpoint: "/api/tus/",
      metadata: { filename: name, filetype: type || "application/octet-stream", folder },
      headers: { "X-CSRF-Token": session.csrf || "" },
      chunkSize: source ? CHUNK_ENCRYPTED : CHUNK,
      retryDelays: [0, 1000, 3000, 5000],
      storeFingerprintForResuming: false,
      ...(source ? { fileReader: source.fileReader, httpStack: source.httpStack, uploadSize: source.size } : {}),
      onProgress: (sent, total) => onProgress(total ? sent / total : 0),
      onError: (err) => reject(new Error(`upload failed: ${err.message || err}`)),
      onSuccess: () => resolve(),
    });
    up.start();
  });
}

export async function shareBigFile(file, onProgress, { encrypt = false } = {}) {
  const { days } = await bigLimits();
  const folder = `/Mail attachments/${stamp()}`;
  let stored = file.name, fragment = "";
  if (encrypt) {
    const key = randomKey();
    fragment = "#" + (await makeFragment(key)).fragment;
    const source = await encryptedUpload(file, key, CHUNK_ENCRYPTED);
    stored = `${file.name}.${b64u(crypto.getRandomValues(new Uint8Array(3)))}.e2ee`;
    await tusUpload(file, folder, onProgress, { name: stored, type: E2EE_TYPE, source });
  } else {
    await tusUpload(file, folder, onProgress);
  }
  const share = await api("/api/files/shares", {
    method: "POST",
    body: { path: `${folder}/${stored}`, expires_in: days * 86400 },
  });
  const expires = share.expires || Date.now() / 1000 + days * 86400;
  const url = (share.url || `${location.origin}/p/${share.token}`) + fragment;
  return { link: url, expires, name: file.name, size: file.size, type: file.type, encrypted: encrypt };
}

export function linksText(attachments) {
  const links = attachments.filter((a) => a.link);
  if (!links.length) return "";
  const lines = links.map((a) =>
    `${a.name} (${fmtBytes(a.size)}, ${a.encrypted ? "end-to-end encrypted, " : ""}until ${new Date(a.expires * 1000).toISOString().slice(0, 10)}):\n${a.link}`);
  return `\n\n--\nFiles shared with this message:\n${lines.join("\n")}\n`;
}
