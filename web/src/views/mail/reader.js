// The reader: one message, or its whole conversation (older ones folded). Headers as text; plain
// bodies with links and folded quotes; HTML bodies sanitised on the server and shown in a sandboxed
// frame (no scripts, opaque origin, its own CSP) with remote images off until "Show images".
import { useEffect, useRef, useState } from "preact/hooks";
import { html } from "../../lib/html.js";
import { jmap } from "../../lib/jmap.js";
import { Icon } from "../../lib/icons.js";
import { navigate } from "../../lib/router.js";
import { useObservable } from "../../lib/store.js";
import { prefs } from "../../lib/prefs.js";
import { addrName, addrText, fmtBytes, fmtFullDate } from "../../lib/format.js";
import { PlainText } from "./text.js";
import { archive, markJunk, moveTo, remove, restore, setKeyword } from "./actions.js";
import { openDraft, openReply } from "./compose.js";
import { boxName } from "./mailboxes.js";
import { PdfPreview } from "../../lib/pdf-preview.js";

// No allow-scripts, no allow-same-origin: the frame can neither run code nor reach the app.
// Popups only so that its links (target=_blank, rel=noopener noreferrer) open in a new tab.
export const FRAME_SANDBOX = "allow-popups allow-popups-to-escape-sandbox";
const PREVIEW_TYPES = /^image\/(png|jpe?g|gif|webp)$/;

function hasHtml(email) {
  return (email.htmlBody || []).some((p) => p.type === "text/html");
}

function textOf(email) {
  return (email.textBody || []).map((p) => (email.bodyValues?.[p.partId]?.value || "")).join("\n");
}

// Height of the visible frame: a frame without scripts cannot tell its parent how tall its body is, so
// the reader lays the same document out once more in a hidden frame that keeps the app's origin
// (sandbox="allow-same-origin" without allow-scripts, and the server's CSP for it loads nothing: see
// suite/mail/sanitize.py frame_csp) at the visible frame's width, and reads its height. The visible
// frame gets exactly that height, so the reader scrolls and the frame never does. Until measured (or if
// measuring fails) it has the server's estimate, at most 75 % of the window, and scrolls inside.
const UNSIZED_IMAGE_PX = 200; // a remote image without a height, shown: the measuring copy loads no image

function HtmlBody({ email }) {
  const p = useObservable(prefs);
  const sender = email.from?.[0]?.email?.toLowerCase() || "";
  const always = sender && p.imageSenders.includes(sender);
  const [shown, setShown] = useState(always);
  const [info, setInfo] = useState({ blocked: 0, height: 0, unsized: 0 });
  const [measured, setMeasured] = useState(0);
  const frame = useRef(null);
  const probe = useRef(null);
  const blocked = info.blocked;
  const images = shown || always;
  const src = `/api/mail/html/${encodeURIComponent(email.id)}?images=${images ? 1 : 0}`;
  useEffect(() => { // how many images are held back, and how tall the body roughly is
    let live = true;
    fetch(src, { method: "HEAD", credentials: "same-origin" })
      .then((r) => live && setInfo({
        blocked: Number(r.headers.get("X-Blocked-Images") || 0),
        height: Number(r.headers.get("X-Height-Hint") || 0),
        unsized: Number(r.headers.get("X-Unsized-Images") || 0),
      }))
      .catch(() => {});
    return () => { live = false; };
  }, [src]);
  const measure = () => {
    const f = frame.current;
    const m = probe.current;
    const doc = m && m.contentDocument;
    if (!f || !doc || !doc.body || doc.URL === "about:blank") return;
    m.style.width = `${f.clientWidth}px`;
    setMeasured(Math.ceil(doc.documentElement.scrollHeight));
  };
  useEffect(() => { // the frame's width follows the window: measure again at the new width
    const f = frame.current;
    if (!f || typeof ResizeObserver === "undefined") return undefined;
    let width = f.clientWidth;
    const ro = new ResizeObserver(() => {
      if (f.clientWidth !== width) { width = f.clientWidth; measure(); }
    });
    ro.observe(f);
    return () => ro.disconnect();
  }, [src]);
  const extra = images ? info.unsized * UNSIZED_IMAGE_PX : 0;
  const height = measured ? `${measured + extra + 2}px`
    : info.height ? `min(75vh, ${Math.max(120, info.height + 24)}px)` : "min(75vh, 900px)";
  return html`
    ${!images && blocked > 0 && html`
      <div class="images-bar" role="region" aria-label="Remote images">
        <span>Remote images are hidden to protect your privacy.</span>
        <button type="button" class="small" onClick=${() => setShown(true)}>Show images</button>
        ${sender && html`<button type="button" class="small ghost" onClick=${() => {
          prefs.update((o) => ({ ...o, imageSenders: [...new Set([...o.imageSenders, sender])] }));
          setShown(true);
        }}>Always for this sender</button>`}
      </div>`}
    <iframe ref=${frame} class="html-frame" title=${`Message: ${email.subject || "(no subject)"}`} sandbox=${FRAME_SANDBOX}
      referrerpolicy="no-referrer" src=${src} style=${{ height }} data-measured=${measured ? "yes" : "no"}></iframe>
    <iframe ref=${probe} class="html-measure" sandbox="allow-same-origin" inert aria-hidden="true" tabindex="-1" title=""
      referrerpolicy="no-referrer" src=${src + "&measure=1"} onLoad=${measure}></iframe>`;
}

const isPdf = (a) => a.type === "application/pdf" || (/\.pdf$/i.test(a.name || "") && /octet-stream/.test(a.type || ""));
const PDF_AUTO_BYTES = 8 * 1024 * 1024; // larger PDFs are drawn when asked ("Preview")

function Attachments({ email }) {
  const j = jmap();
  const list = (email.attachments || []).filter((a) => a.blobId);
  if (!list.length) return null;
  const pdfs = list.filter(isPdf);
  return html`
    ${pdfs.map((a) => html`<${PdfPreview} key=${"pdf-" + (a.partId || a.blobId)} name=${a.name || "attachment.pdf"}
      size=${a.size} autoBytes=${PDF_AUTO_BYTES} url=${j.downloadUrl(a.blobId, a.name || "attachment.pdf", "application/pdf")} />`)}
    <ul class="attachments" aria-label="Attachments">
      ${list.map((a) => {
        const name = a.name || "attachment";
        const url = j.downloadUrl(a.blobId, name, "application/octet-stream");
        return html`<li key=${a.partId || a.blobId}>
          ${PREVIEW_TYPES.test(a.type || "") && html`<img class="thumb" alt="" src=${j.downloadUrl(a.blobId, name, a.type)} />`}
          <${Icon} name="file" size=${16} />
          <a href=${url} download=${name} class="name" title=${name}>${name}</a>
          <span class="size">${fmtBytes(a.size)}</span>
        </li>`;
      })}
    </ul>`;
}

function Message({ email, expanded, onExpand, user }) {
  const from = email.from?.[0];
  const recips = [
    ["to", email.to], ["cc", email.cc], ["bcc", email.bcc],
  ].filter(([, l]) => l && l.length).map(([k, l]) => `${k} ${l.map(addrText).join(", ")}`).join(" · ");
  const initial = (addrName(from) || "?").trim().charAt(0);
  if (!expanded) {
    return html`<article class="message collapsed" data-email-id=${email.id} onClick=${onExpand}>
      <div class="msg-head">
        <span class="avatar" aria-hidden="true">${initial}</span>
        <button type="button" class="ghost sender" aria-expanded="false" onClick=${(ev) => { ev.stopPropagation(); onExpand(); }}>${addrName(from) || "(no sender)"}</button>
        <span class="when">${fmtFullDate(email.receivedAt)}</span>
        <span class="recips">${email.preview || ""}</span>
      </div>
    </article>`;
  }
  return html`<article class="message" data-email-id=${email.id} aria-label=${`Message from ${addrName(from)}`}>
    <div class="msg-head">
      <span class="avatar" aria-hidden="true">${initial}</span>
      <span class="sender">${from ? from.name || from.email : "(no sender)"}${from && from.name && html` <span class="addr">${"<" + from.email + ">"}</span>`}</span>
      <span class="when">${fmtFullDate(email.sentAt || email.receivedAt)}</span>
      <span class="recips">${recips}</span>
    </div>
    <div class="msg-content">
      ${hasHtml(email) ? html`<${HtmlBody} email=${email} />` : html`<${PlainText} text=${textOf(email)} />`}
      <${Attachments} email=${email} />
    </div>
    <div class="reply-bar">
      ${email.keywords?.$draft && html`<button type="button" class="primary" onClick=${() => openDraft(email)}><${Icon} name="pencil" size=${16} /> Edit draft</button>`}
      <button type="button" onClick=${() => openReply(email, "reply", user)}><${Icon} name="reply" size=${16} /> Reply</button>
      <button type="button" onClick=${() => openReply(email, "replyAll", user)}><${Icon} name="replyAll" size=${16} /> Reply all</button>
      <button type="button" onClick=${() => openReply(email, "forward", user)}><${Icon} name="forward" size=${16} /> Forward</button>
    </div>
  </article>`;
}

export function Reader({ emailId, mailbox, base, threads, user }) {
  const j = jmap();
  useObservable(j.caches.Email.version, j.caches.Thread.version);
  const [error, setError] = useState("");
  const [open, setOpen] = useState(new Set());
  const email = emailId && j.caches.Email.get(emailId);

  useEffect(() => {
    if (!emailId) return;
    let live = true;
    (async () => {
      try {
        const [e] = await j.ensureEmails([emailId], { full: true });
        if (!e) { if (live) setError("This message is gone (moved or deleted)."); return; }
        if (threads) {
          await j.ensureThreads([e.threadId]);
          const t = j.caches.Thread.get(e.threadId);
          if (t) await j.ensureEmails(t.emailIds, { full: true });
        }
        // opening marks read (the whole conversation when shown as one)
        const ids = threads && j.caches.Thread.get(e.threadId) ? j.caches.Thread.get(e.threadId).emailIds : [emailId];
        const unread = ids.filter((id) => !j.caches.Email.get(id)?.keywords?.$seen);
        if (unread.length) await setKeyword(unread, "$seen", true);
      } catch (err) {
        if (live) setError(err.message);
      }
    })();
    return () => { live = false; };
  }, [emailId]);

  if (!emailId) {
    return html`<section class="mail-reader" aria-label="Reader"><div class="reader-empty">
      <${Icon} name="mail" size=${40} /><p>Select a message to read it.</p></div></section>`;
  }
  if (error) return html`<section class="mail-reader" aria-label="Reader"><p class="error" role="alert">${error}</p></section>`;
  if (!email || !j.full.has(emailId)) return html`<section class="mail-reader" aria-label="Reader"><p class="boot">Loading…</p></section>`;

  const thread = threads ? j.caches.Thread.get(email.threadId) : null;
  const ids = thread ? thread.emailIds.filter((id) => j.full.has(id)) : [email.id];
  const list = ids.map((id) => j.caches.Email.get(id)).filter(Boolean);
  const last = list[list.length - 1];
  const isOpen = (e) => e.id === emailId || e === last || open.has(e.id) || !e.keywords?.$seen;
  const back = base + (base.endsWith("/search") ? location.search : "");
  const fromId = mailbox ? mailbox.id : null;
  const acted = list.filter((e) => !fromId || e.mailboxIds?.[fromId]).map((e) => e.id);
  const after = (p) => p.then(() => navigate(back));
  const flagged = !!email.keywords?.$flagged;
  const moveTargets = j.mailboxes().filter((m) => m.id !== fromId && m.role !== "drafts");

  return html`
    <section class="mail-reader" aria-label="Reader">
      <div class="reader-bar" role="toolbar" aria-label="Message actions">
        <a class="button ghost back" href=${back} aria-label="Back to the list"><${Icon} name="back" /></a>
        ${mailbox && (mailbox.role === "trash" || mailbox.role === "junk") && j.mailboxByRole("inbox") && html`
          <button type="button" class="ghost" onClick=${() => after(restore(acted, fromId, mailbox.role === "junk"))}>
            <${Icon} name="inbox" size=${16} /> ${mailbox.role === "junk" ? "Not junk" : "Restore"}</button>`}
        <button type="button" class="ghost" onClick=${() => after(archive(acted, fromId))}><${Icon} name="archive" size=${16} /> Archive</button>
        <button type="button" class="ghost" onClick=${() => after(remove(acted, fromId))}><${Icon} name="trash" size=${16} /> Delete</button>
        <button type="button" class="ghost" onClick=${() => after(markJunk(acted, fromId))}><${Icon} name="junk" size=${16} /> Junk</button>
        <button type="button" class="ghost" aria-pressed=${flagged ? "true" : "false"} onClick=${() => setKeyword([email.id], "$flagged", !flagged)}>
          <${Icon} name="flag" size=${16} /> ${flagged ? "Unflag" : "Flag"}</button>
        <button type="button" class="ghost" onClick=${() => after(setKeyword(acted, "$seen", false))}>Mark unread</button>
        <label class="visually-hidden" for="move-to">Move to</label>
        <select id="move-to" class="move-select" value="" onChange=${(ev) => {
          const to = ev.currentTarget.value;
          const box = j.caches.Mailbox.get(to);
          if (to) after(moveTo(acted, to, fromId, `Moved to ${box ? boxName(box) : "folder"}`));
        }}>
          <option value="">Move to…</option>
          ${moveTargets.map((m) => html`<option value=${m.id}>${boxName(m)}</option>`)}
        </select>
      </div>
      <div class="reader-body">
        <h1>${email.subject || "(no subject)"}</h1>
        ${list.map((e) => html`<${Message} key=${e.id} email=${e} user=${user} expanded=${isOpen(e)}
          onExpand=${() => setOpen(new Set([...open, e.id]))} />`)}
      </div>
    </section>`;
}
