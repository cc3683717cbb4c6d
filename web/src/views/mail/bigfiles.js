// Big attachments become share links: the file goes into the sender's Files (folder "Mail attachments",
// resumable upload with tus) and the message carries an expiring download link (name, size, expiry)
// that the recipient opens without an account.
import * as tus from "tus-js-client";
import { api, session } from "../../lib/api.js";
import { fmtBytes } from "../../lib/format.js";

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

function tusUpload(file, folder, onProgress) {
  return new Promise((resolve, reject) => {
    const up = new tus.Upload(file, {
      endpoint: "/api/tus/",
      metadata: { filename: file.name, filetype: file.type || "application/octet-stream", folder },
      headers: { "X-CSRF-Token": session.csrf || "" },
      chunkSize: 8 * 1024 * 1024,
      retryDelays: [0, 1000, 3000, 5000],
      storeFingerprintForResuming: false,
      onProgress: (sent, total) => onProgress(total ? sent / total : 0),
      onError: (err) => reject(new Error(`upload failed: ${err.message || err}`)),
      onSuccess: () => resolve(),
    });
    up.start();
  });
}

export async function shareBigFile(file, onProgress) {
  const { days } = await bigLimits();
  const folder = `/Mail attachments/${stamp()}`;
  await tusUpload(file, folder, onProgress);
  const share = await api("/api/files/shares", {
    method: "POST",
    body: { path: `${folder}/${file.name}`, expires_in: days * 86400 },
  });
  const expires = share.expires || Date.now() / 1000 + days * 86400;
  const url = share.url || `${location.origin}/p/${share.token}`;
  return { link: url, expires, name: file.name, size: file.size, type: file.type };
}

export function linksText(attachments) {
  const links = attachments.filter((a) => a.link);
  if (!links.length) return "";
  const lines = links.map((a) =>
    `${a.name} (${fmtBytes(a.size)}, until ${new Date(a.expires * 1000).toISOString().slice(0, 10)}):\n${a.link}`);
  return `\n\n--\nFiles shared with this message:\n${lines.join("\n")}\n`;
}
