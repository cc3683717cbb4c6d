// The composer: To/Cc/Bcc (completion from past correspondents), From among the identities, Subject,
// Message; reply/reply all/forward; the draft is saved in Drafts as you type; Send submits through
// EmailSubmission (RFC 8621 §7) held on the server for a few seconds (RFC 4865 HOLDFOR) and moves the
// message to Sent; Undo cancels the held submission (undoStatus "canceled") and reopens the draft.
import { useEffect, useRef, useState } from "preact/hooks";
import { html } from "../../lib/html.js";
import { jmap } from "../../lib/jmap.js";
import { Icon } from "../../lib/icons.js";
import { Observable, useObservable } from "../../lib/store.js";
import { addrText, fmtBytes, fmtFullDate } from "../../lib/format.js";
import { showToast } from "./actions.js";
import { shareBigFile, bigLimits, linksText } from "./bigfiles.js";
import { completions, parseAddresses, validAddress } from "./addresses.js";
import { RichEditor, cleanHtml, textToHtml } from "./richtext.js";

export const composer = new Observable(null);
const UNDO_SECONDS = 5;
const SAVE_DELAY = 1200;
let keys = 0;

const EMPTY = { to: "", cc: "", bcc: "", subject: "", body: "", rich: false, html: "", inReplyTo: null, references: null, attachments: [], draftId: null };

export function openComposer(init) {
  composer.set({ ...EMPTY, ...init, key: ++keys, showCc: !!(init.cc || init.bcc) });
}

function quote(text) {
  return text.replace(/\r\n/g, "\n").split("\n").map((l) => (l.startsWith(">") ? ">" + l : "> " + l)).join("\n");
}

function bodyText(email) {
  return (email.textBody || []).map((p) => email.bodyValues?.[p.partId]?.value || "").join("\n").trimEnd();
}

const list = (addrs) => (addrs || []).map(addrText).join(", ");

// A saved draft opens again in the composer (saving replaces it).
export function openDraft(email) {
  openComposer({
    to: list(email.to), cc: list(email.cc), bcc: list(email.bcc), subject: email.subject || "", body: bodyText(email),
    inReplyTo: email.inReplyTo || null, references: email.references || null, draftId: email.id,
    attachments: (email.attachments || []).filter((a) => a.blobId).map((a) => ({ blobId: a.blobId, name: a.name, type: a.type, size: a.size, progress: 1 })),
  });
}

export function openReply(email, mode, user) {
  const me = (user.address || "").toLowerCase();
  const j = jmap();
  const mine = new Set([me, ...[...j.caches.Identity.records.values()].map((i) => i.email.toLowerCase())]);
  const from = email.from?.[0];
  const when = fmtFullDate(email.sentAt || email.receivedAt);
  const refs = [...(email.references || []), ...(email.messageId || [])];
  if (mode === "forward") {
    const head = [
      "", "", "---------- Forwarded message ----------",
      `From: ${list(email.from)}`, `Date: ${when}`, `Subject: ${email.subject || ""}`, `To: ${list(email.to)}`,
      ...(email.cc && email.cc.length ? [`Cc: ${list(email.cc)}`] : []), "",
    ].join("\n");
    const atts = (email.attachments || []).filter((a) => a.blobId)
      .map((a) => ({ blobId: a.blobId, name: a.name, type: a.type, size: a.size, progress: 1 }));
    return openComposer({ subject: prefixed("Fwd: ", email.subject), body: head + bodyText(email) + "\n", attachments: atts, references: refs.length ? refs : null });
  }
  const replyTo = email.replyTo && email.replyTo.length ? email.replyTo : email.from || [];
  let to = replyTo.filter((a) => !mine.has(a.email.toLowerCase()));
  let cc = [];
  if (mode === "replyAll") {
    const seen = new Set(to.map((a) => a.email.toLowerCase()));
    for (const a of [...(email.to || []), ...(email.cc || [])]) {
      const k = a.email.toLowerCase();
      if (!mine.has(k) && !seen.has(k)) { seen.add(k); cc.push(a); }
    }
  }
  if (!to.length) to = email.to || []; // replying to my own message: to its recipients
  const body = `\n\nOn ${when}, ${from ? from.name || from.email : "someone"} wrote:\n${quote(bodyText(email))}\n`;
  openComposer({
    to: list(to), cc: list(cc), subject: prefixed("Re: ", email.subject), body,
    inReplyTo: email.messageId || null, references: refs.length ? refs : null,
  });
}

function prefixed(prefix, subject) {
  const s = subject || "";
  return s.toLowerCase().startsWith(prefix.toLowerCase()) ? s : prefix + s;
}


function correspondents() {
  const seen = new Map();
  for (const e of jmap().caches.Email.records.values()) {
    for (const a of [...(e.from || []), ...(e.to || []), ...(e.cc || [])]) {
      if (a && a.email && !seen.has(a.email.toLowerCase())) seen.set(a.email.toLowerCase(), addrText(a));
    }
  }
  return [...seen.values()].slice(0, 300);
}

function emailObject(c, identity, mailboxId) {
  const obj = {
    mailboxIds: { [mailboxId]: true },
    keywords: { $draft: true, $seen: true },
    from: [{ name: identity.name || null, email: identity.email }],
    subject: c.subject,
    bodyValues: { body: { value: c.body + linksText(c.attachments) } },
    textBody: [{ partId: "body", type: "text/plain" }],
  };
  if (c.rich) { // multipart/alternative: the plain text above and this HTML
    const links = linksText(c.attachments);
    obj.bodyValues.html = { value: `<!doctype html><html><body>${cleanHtml(c.html)}${links ? textToHtml(links) : ""}</body></html>` };
    obj.htmlBody = [{ partId: "html", type: "text/html" }];
  }
  for (const k of ["to", "cc", "bcc"]) {
    const l = parseAddresses(c[k]);
    if (l.length) obj[k] = l;
  }
  if (c.inReplyTo) obj.inReplyTo = c.inReplyTo;
  if (c.references) obj.references = c.references;
  const atts = c.attachments.filter((a) => a.blobId && !a.link);
  if (atts.length) obj.attachments = atts.map((a) => ({ blobId: a.blobId, type: a.type || "application/octet-stream", name: a.name, disposition: "attachment" }));
  return obj;
}

// Replace the saved draft with the current one (Emails are immutable: create new, destroy old).
async function saveDraft(c, identity) {
  const j = jmap();
  const drafts = j.mailboxByRole("drafts");
  if (!drafts) throw new Error("there is no Drafts folder");
  const r = await j.call([["Email/set", { create: { d: emailObject(c, identity, drafts.id) }, destroy: c.draftId ? [c.draftId] : [] }, "s"]]);
  const err = r.s.notCreated && r.s.notCreated.d;
  if (err) throw new Error(err.description || err.type);
  return r.s.created.d.id;
}

// Submit held for holdSeconds on the server (RFC 4865 HOLDFOR in the envelope): returns the
// submission's and the Email's ids.
async function submit(c, identity, holdSeconds) {
  const j = jmap();
  const drafts = j.mailboxByRole("drafts");
  const sent = j.mailboxByRole("sent");
  if (!drafts) throw new Error("there is no Drafts folder");
  const onSuccess = { "keywords/$draft": null, [`mailboxIds/${drafts.id}`]: null };
  if (sent) onSuccess[`mailboxIds/${sent.id}`] = true;
  const rcptTo = ["to", "cc", "bcc"].flatMap((k) => parseAddresses(c[k])).map((a) => ({ email: a.email }));
  const envelope = { mailFrom: { email: identity.email, parameters: { HOLDFOR: String(holdSeconds) } }, rcptTo };
  const r = await j.call([
    ["Email/set", { create: { m: emailObject(c, identity, drafts.id) }, destroy: c.draftId ? [c.draftId] : [] }, "e"],
    ["EmailSubmission/set", {
      create: { s: { identityId: identity.id, emailId: "#m", envelope } },
      onSuccessUpdateEmail: { "#s": onSuccess },
    }, "s"],
  ], { allowErrors: true });
  const fail = r.e.error || (r.e.notCreated && r.e.notCreated.m) || r.s.error || (r.s.notCreated && r.s.notCreated.s);
  if (fail) throw Object.assign(new Error(fail.description || fail.type), { draftId: r.e.created && r.e.created.m && r.e.created.m.id });
  j.syncTypes(["Email", "Mailbox", "Thread"]);
  return { submissionId: r.s.created.s.id, emailId: r.e.created.m.id };
}

// Undo: cancel the held submission (RFC 8621 §7.5 undoStatus "canceled"); the message goes back to
// Drafts. False when the server has sent it already (cannotUnsend).
async function unsend(sub) {
  const j = jmap();
  const drafts = j.mailboxByRole("drafts");
  const r = await j.call([["EmailSubmission/set", { update: { [sub.submissionId]: { undoStatus: "canceled" } } }, "u"]]);
  if (!(r.u.updated && sub.submissionId in r.u.updated)) return false;
  await j.call([["Email/set", { update: { [sub.emailId]: { mailboxIds: { [drafts.id]: true }, "keywords/$draft": true } } }, "d"]]);
  j.syncTypes(["Email", "Mailbox", "Thread"]);
  return true;
}

// "Message sent" once the server released it (undoStatus no longer pending).
async function whenReleased(sub) {
  const j = jmap();
  for (let i = 0; i < 60; i++) {
    const r = await j.call([["EmailSubmission/get", { ids: [sub.submissionId], properties: ["undoStatus"] }, "g"]]);
    const got = r.g.list[0];
    if (!got || got.undoStatus !== "pending") return got ? got.undoStatus : "canceled";
    await new Promise((ok) => setTimeout(ok, 1000));
  }
  return "pending";
}

function Uploads({ items, onRemove }) {
  if (!items.length) return null;
  return html`<ul class="uploads" aria-label="Attachments">
    ${items.map((a, i) => html`<li key=${i}>
      <${Icon} name=${a.link ? "folder" : "paperclip"} size=${14} /><span>${a.name}</span><span class="muted">${fmtBytes(a.size)}</span>
      ${a.link && html`<span class="muted">· ${a.encrypted ? "encrypted " : ""}link until ${new Date(a.expires * 1000).toLocaleDateString()}</span>`}
      ${a.progress < 1 && html`<progress max="1" value=${a.progress} aria-label=${`Uploading ${a.name}`}></progress>`}
      ${a.error && html`<span class="error">${a.error}</span>`}
      <button type="button" class="ghost small" aria-label=${`Remove ${a.name}`} onClick=${() => onRemove(i)}>✕</button>
    </li>`)}
  </ul>`;
}

export function Composer({ user }) {
  const j = jmap();
  const init = composer.get();
  const [c, setC] = useState(init);
  const [status, setStatus] = useState("");
  const [showCc, setShowCc] = useState(init.showCc);
  const [encryptBig, setEncryptBig] = useState(false); // attachments that become links are encrypted here first
  const identities = [...j.caches.Identity.records.values()];
  const fallback = { id: null, email: user.address, name: user.display_name };
  const [identityId, setIdentityId] = useState(init.identityId || (identities[0] && identities[0].id));
  const identity = identities.find((i) => i.id === identityId) || identities[0] || fallback;
  const saveTimer = useRef(null);
  const saving = useRef(Promise.resolve());
  const dirty = useRef(false);
  const latest = useRef(c);
  latest.current = c;
  const [people] = useState(correspondents);

  const set = (patch) => { dirty.current = true; setC((old) => ({ ...old, ...patch })); };

  // drafts saved as you type
  useEffect(() => {
    if (!dirty.current) return;
    clearTimeout(saveTimer.current);
    saveTimer.current = setTimeout(() => { save(); }, SAVE_DELAY);
    return () => clearTimeout(saveTimer.current);
  }, [c.to, c.cc, c.bcc, c.subject, c.body, c.html, c.rich, c.attachments, identityId]);

  function save() {
    if (c.attachments.some((a) => a.progress < 1)) return saving.current;
    saving.current = saving.current.then(async () => {
      const cur = latest.current;
      setStatus("Saving…");
      try {
        const id = await saveDraft(cur, identity);
        dirty.current = false;
        setC((old) => ({ ...old, draftId: id }));
        latest.current = { ...latest.current, draftId: id };
        setStatus("Draft saved");
      } catch (err) { setStatus(`Draft not saved: ${err.message}`); }
    });
    return saving.current;
  }

  async function attach(files) {
    for (const file of files) {
      const item = { name: file.name, size: file.size, type: file.type, progress: 0 };
      setC((old) => ({ ...old, attachments: [...old.attachments, item] }));
      const progress = (p) => { item.progress = p; setC((old) => ({ ...old, attachments: [...old.attachments] })); };
      try {
        if (file.size > (await bigLimits()).bytes) {
          // too big to mail: into Files ("Mail attachments") and an expiring share link in the message
          Object.assign(item, await shareBigFile(file, progress, { encrypt: encryptBig }), { progress: 1 });
        } else {
          const up = await j.upload(file, progress);
          Object.assign(item, { blobId: up.blobId, type: up.type || file.type, progress: 1 });
        }
      } catch (err) {
        Object.assign(item, { error: err.message, progress: 1 });
      }
      dirty.current = true;
      setC((old) => ({ ...old, attachments: [...old.attachments] }));
    }
  }

  async function send(ev) {
    ev.preventDefault();
    const all = ["to", "cc", "bcc"].flatMap((k) => parseAddresses(c[k]));
    if (!all.length) return setStatus("Add at least one recipient.");
    const bad = all.filter((a) => !validAddress(a));
    if (bad.length) return setStatus(`Not an email address: ${bad.map((a) => a.email).join(", ")}`);
    if (c.attachments.some((a) => a.progress < 1)) return setStatus("Wait for the attachments to upload.");
    if (!identity.id) return setStatus("This account has no identity to send from.");
    clearTimeout(saveTimer.current);
    await saving.current;
    const snapshot = { ...latest.current, identityId: identity.id, key: ++keys, showCc };
    composer.set(null);
    let sub;
    try {
      sub = await submit(snapshot, identity, UNDO_SECONDS);
    } catch (err) {
      console.error("send failed:", err);
      showToast(`Not sent: ${err.message}`, null, 8000);
      composer.set({ ...snapshot, draftId: err.draftId || snapshot.draftId, key: ++keys });
      return;
    }
    let undone = false;
    const undo = async () => {
      undone = true;
      if (await unsend(sub).catch(() => false)) {
        composer.set({ ...snapshot, draftId: sub.emailId, key: ++keys });
      } else {
        showToast("Too late to undo: the message was sent");
      }
    };
    showToast("Sending…", { label: "Undo", run: undo }, UNDO_SECONDS * 1000);
    setTimeout(async () => {
      if (undone) return;
      const status = await whenReleased(sub).catch(() => "pending");
      if (!undone && status === "final") showToast("Message sent");
    }, UNDO_SECONDS * 1000);
  }

  async function discard() {
    clearTimeout(saveTimer.current);
    await saving.current;
    const id = latest.current.draftId;
    composer.set(null);
    if (id) {
      await j.call([["Email/set", { destroy: [id] }, "d"]]).catch(() => {});
      j.syncTypes(["Email", "Mailbox"]);
      showToast("Draft discarded");
    }
  }

  async function close() {
    clearTimeout(saveTimer.current);
    if (dirty.current) await save();
    await saving.current;
    composer.set(null);
    if (latest.current.draftId) showToast("Draft saved in Drafts");
  }

  useEffect(() => { // focus To for a new message, the text for a reply
    const el = document.getElementById(init.to ? "c-body" : "c-to");
    if (el) { el.focus(); if (el.id === "c-body") el.setSelectionRange(0, 0); }
  }, []);

  const title = c.subject ? c.subject : "New message";
  return html`
    <section class="compose" role="dialog" aria-label="Compose" aria-modal="false">
      <form onSubmit=${send} style="display:contents">
        <div class="compose-head">
          <h2>${title}</h2>
          <button type="button" class="ghost icon" aria-label="Close (keep draft)" onClick=${close}><${Icon} name="x" /></button>
        </div>
        <div class="compose-fields">
          ${identities.length > 1 && html`
            <label for="c-from">From</label>
            <select id="c-from" value=${identity.id} onChange=${(ev) => { dirty.current = true; setIdentityId(ev.currentTarget.value); }}>
              ${identities.map((i) => html`<option value=${i.id}>${i.name ? `${i.name} <${i.email}>` : i.email}</option>`)}
            </select>`}
          <label for="c-to">To</label>
          <input id="c-to" type="text" list="c-people-to" autocomplete="off" value=${c.to} onInput=${(ev) => set({ to: ev.currentTarget.value })} />
          ${showCc ? html`
            <label for="c-cc">Cc</label>
            <input id="c-cc" type="text" list="c-people-cc" autocomplete="off" value=${c.cc} onInput=${(ev) => set({ cc: ev.currentTarget.value })} />
            <label for="c-bcc">Bcc</label>
            <input id="c-bcc" type="text" list="c-people-bcc" autocomplete="off" value=${c.bcc} onInput=${(ev) => set({ bcc: ev.currentTarget.value })} />` : html`
            <span></span><span><button type="button" class="ghost small" onClick=${() => setShowCc(true)}>Cc/Bcc</button></span>`}
          <label for="c-subject">Subject</label>
          <input id="c-subject" type="text" value=${c.subject} onInput=${(ev) => set({ subject: ev.currentTarget.value })} />
        </div>
        ${["to", "cc", "bcc"].map((f) => html`<datalist id=${"c-people-" + f} key=${f}>
          ${(f === "to" || showCc) && completions(c[f], people).map((p) => html`<option value=${p} />`)}</datalist>`)}
        ${c.rich
          ? html`<${RichEditor} key=${"rich" + c.key} initial=${c.html} onChange=${(h, text) => set({ html: h, body: text })} />`
          : html`<label for="c-body" class="visually-hidden">Message</label>
            <textarea id="c-body" placeholder="Message" value=${c.body} onInput=${(ev) => set({ body: ev.currentTarget.value })}></textarea>`}
        <${Uploads} items=${c.attachments} onRemove=${(i) => set({ attachments: c.attachments.filter((_, k) => k !== i) })} />
        <div class="compose-foot">
          <button type="submit" class="primary"><${Icon} name="send" size=${16} /> Send</button>
          <label class="button ghost" for="c-files"><${Icon} name="paperclip" size=${16} /> Attach</label>
          <input id="c-files" type="file" multiple class="visually-hidden" aria-label="Attach files"
            onChange=${(ev) => { attach([...ev.currentTarget.files]); ev.currentTarget.value = ""; }} />
          <span class="compose-enc">
            <input type="checkbox" id="c-enc" checked=${encryptBig} aria-describedby="c-enc-hint"
              onChange=${(ev) => setEncryptBig(ev.currentTarget.checked)} />
            <label for="c-enc">Encrypt</label>
            <span id="c-enc-hint" class="visually-hidden">Attachments too big to mail become links to a file encrypted in this browser; the key is only in the link, in the message.</span>
          </span>
          <button type="button" class="ghost" aria-pressed=${c.rich ? "true" : "false"}
            onClick=${() => set(c.rich ? { rich: false } : { rich: true, html: textToHtml(c.body) })}>Rich text</button>
          <button type="button" class="ghost" onClick=${discard}><${Icon} name="trash" size=${16} /> Discard</button>
          <span class="status" role="status">${status}</span>
        </div>
      </form>
    </section>`;
}
