// The folder tree: roles first, unread counts, nesting, create/rename/delete, drop targets for moves.
import { useState } from "preact/hooks";
import { html } from "../../lib/html.js";
import { jmap } from "../../lib/jmap.js";
import { Icon } from "../../lib/icons.js";
import { navigate } from "../../lib/router.js";
import { openComposer } from "./compose.js";
import { mailboxSet, moveTo, showToast } from "./actions.js";

const ROLE_ORDER = ["inbox", "drafts", "sent", "archive", "junk", "trash"];
const ROLE_ICON = { inbox: "inbox", drafts: "drafts", sent: "send", archive: "archive", junk: "junk", trash: "trash" };
export const DRAG_TYPE = "application/x-suite-email-ids";

// IMAP calls it INBOX; people call it Inbox.
export function boxName(box) {
  return box.role === "inbox" ? "Inbox" : box.name;
}

function sortBoxes(list) {
  return [...list].sort((a, b) => {
    const ra = ROLE_ORDER.indexOf(a.role), rb = ROLE_ORDER.indexOf(b.role);
    if ((ra >= 0 || rb >= 0) && ra !== rb) return (ra < 0 ? 99 : ra) - (rb < 0 ? 99 : rb);
    return (a.sortOrder || 0) - (b.sortOrder || 0) || a.name.localeCompare(b.name);
  });
}

function Box({ box, byParent, current, threads, onPick }) {
  const [over, setOver] = useState(false);
  const kids = sortBoxes(byParent.get(box.id) || []);
  const unread = threads ? box.unreadThreads : box.unreadEmails;
  const onDrop = (ev) => {
    ev.preventDefault();
    setOver(false);
    const ids = JSON.parse(ev.dataTransfer.getData(DRAG_TYPE) || "[]");
    if (ids.length && box.id !== current) moveTo(ids, box.id, current, `Moved ${ids.length === 1 ? "1 message" : ids.length + " messages"} to ${boxName(box)}`);
  };
  return html`
    <li>
      <a href=${"/mail/" + encodeURIComponent(box.id)} aria-current=${box.id === current ? "page" : undefined}
         class=${over ? "drop-target" : ""} data-mailbox-id=${box.id} data-role=${box.role || ""}
         onDragOver=${(ev) => { if ([...ev.dataTransfer.types].includes(DRAG_TYPE)) { ev.preventDefault(); setOver(true); } }}
         onDragLeave=${() => setOver(false)} onDrop=${onDrop} onClick=${onPick}>
        <span class="mb-icon"><${Icon} name=${ROLE_ICON[box.role] || "folder"} size=${16} /></span>
        <span class="mb-name">${boxName(box)}</span>
        ${unread > 0 && html`<span class="count" aria-label=${`${unread} unread`}>${unread}</span>`}
      </a>
      ${kids.length > 0 && html`<ul>${kids.map((k) => html`<${Box} key=${k.id} box=${k} byParent=${byParent} current=${current} threads=${threads} onPick=${onPick} />`)}</ul>`}
    </li>`;
}

function FolderForm({ title, initial = "", parents, parentId = null, submitLabel, onSubmit, onCancel }) {
  const [error, setError] = useState("");
  return html`
    <form class="mb-form" aria-label=${title} onSubmit=${async (ev) => {
      ev.preventDefault();
      const f = new FormData(ev.currentTarget);
      try { await onSubmit(String(f.get("name")).trim(), f.get("parent") || null); } catch (err) { setError(err.message); }
    }}>
      <label for="mb-name">Folder name</label>
      <input id="mb-name" name="name" required value=${initial} autofocus />
      ${parents && html`
        <label for="mb-parent">Inside</label>
        <select id="mb-parent" name="parent" value=${parentId || ""}>
          <option value="">(top level)</option>
          ${parents.map((p) => html`<option value=${p.id}>${p.name}</option>`)}
        </select>`}
      <div class="row"><button type="submit" class="primary">${submitLabel}</button><button type="button" onClick=${onCancel}>Cancel</button></div>
      <p class="error" role="alert">${error}</p>
    </form>`;
}

export function Mailboxes({ current, threads, onPick }) {
  const j = jmap();
  const [mode, setMode] = useState(null); // null | "new" | "rename"
  const boxes = j.mailboxes();
  const byParent = new Map();
  for (const b of boxes) {
    const k = b.parentId || null;
    if (!byParent.has(k)) byParent.set(k, []);
    byParent.get(k).push(b);
  }
  const cur = current && j.caches.Mailbox.get(current);
  const custom = cur && !cur.role;
  async function del() {
    if (!confirm(`Delete the folder "${cur.name}"? Its messages stay in their other folders or go with it.`)) return;
    try {
      await mailboxSet({ destroy: [cur.id], onDestroyRemoveEmails: true });
      const inbox = j.mailboxByRole("inbox");
      navigate(inbox ? `/mail/${encodeURIComponent(inbox.id)}` : "/mail");
      showToast(`Deleted the folder ${cur.name}`);
    } catch (err) { showToast(`Could not delete: ${err.message}`); }
  }
  return html`
    <aside class="mail-side" aria-label="Folders">
      <button type="button" class="primary compose-btn" onClick=${() => openComposer({})}><${Icon} name="pencil" size=${16} /> New message</button>
      <nav aria-label="Mailboxes"><ul class="mailboxes">
        ${sortBoxes(byParent.get(null) || []).map((b) => html`<${Box} key=${b.id} box=${b} byParent=${byParent} current=${current} threads=${threads} onPick=${onPick} />`)}
      </ul></nav>
      ${mode === "new" && html`<${FolderForm} title="New folder" submitLabel="Create" parents=${sortBoxes(boxes)} parentId=${custom ? cur.id : null}
          onCancel=${() => setMode(null)} onSubmit=${async (name, parentId) => {
            const r = await mailboxSet({ create: { n: { name, parentId } } });
            setMode(null);
            if (r.created && r.created.n) navigate(`/mail/${encodeURIComponent(r.created.n.id)}`);
          }} />`}
      ${mode === "rename" && cur && html`<${FolderForm} title="Rename folder" submitLabel="Rename" initial=${cur.name}
          parents=${sortBoxes(boxes.filter((b) => b.id !== cur.id))} parentId=${cur.parentId}
          onCancel=${() => setMode(null)} onSubmit=${async (name, parentId) => {
            await mailboxSet({ update: { [cur.id]: { name, parentId } } });
            setMode(null);
          }} />`}
      ${!mode && html`<div class="mb-tools">
        <button type="button" class="ghost small" onClick=${() => setMode("new")}><${Icon} name="plus" size=${14} /> New folder</button>
        ${custom && html`<button type="button" class="ghost small" onClick=${() => setMode("rename")}>Rename</button>
          <button type="button" class="ghost small" onClick=${del}>Delete folder</button>`}
      </div>`}
    </aside>`;
}
