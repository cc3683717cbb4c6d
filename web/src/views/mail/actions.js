// What the mail views do to Emails and Mailboxes: Email/set and Mailbox/set, then the caches sync.
import { jmap } from "../../lib/jmap.js";
import { Observable } from "../../lib/store.js";

export const toast = new Observable(null); // {text, action?: {label, run}}
let toastTimer = null;
export function showToast(text, action = null, ms = 5000) {
  clearTimeout(toastTimer);
  toast.set({ text, action });
  toastTimer = setTimeout(() => toast.set(null), ms);
}

// With a note, the toast offers Undo: the messages get back the mailboxes and keywords they had.
async function emailSet(update, note) {
  const j = jmap();
  const before = {};
  for (const id of Object.keys(update)) {
    const e = j.caches.Email.get(id);
    if (e && e.mailboxIds) before[id] = { mailboxIds: e.mailboxIds, keywords: e.keywords || {} };
  }
  const r = await j.call([["Email/set", { update }, "s"]]);
  const failed = Object.keys(r.s.notUpdated || {});
  await j.syncTypes(["Email", "Mailbox", "Thread"]);
  if (failed.length) showToast(`${failed.length} message(s) could not be changed`);
  else if (note) {
    const undo = Object.keys(before).length === Object.keys(update).length
      ? { label: "Undo", run: () => emailSet(before, "Undone") } : null;
    showToast(note, note === "Undone" ? null : undo);
  }
}

export function setKeyword(ids, keyword, on) {
  const update = {};
  for (const id of ids) update[id] = { [`keywords/${keyword}`]: on ? true : null };
  return emailSet(update);
}

// Move: the Email leaves `fromId` (or every mailbox when null) and joins `toId`.
export function moveTo(ids, toId, fromId, note) {
  const update = {};
  const emails = jmap().caches.Email;
  for (const id of ids) {
    const e = emails.get(id);
    if (fromId && e && e.mailboxIds && Object.keys(e.mailboxIds).length > 1) {
      update[id] = { [`mailboxIds/${fromId}`]: null, [`mailboxIds/${toId}`]: true };
    } else {
      update[id] = { mailboxIds: { [toId]: true } };
    }
  }
  return emailSet(update, note);
}

export async function archive(ids, fromId) {
  const j = jmap();
  const box = j.mailboxByRole("archive");
  if (!box) return showToast("There is no Archive folder");
  return moveTo(ids, box.id, fromId, `Archived ${ids.length === 1 ? "1 message" : ids.length + " messages"}`);
}

export async function markJunk(ids, fromId) {
  const j = jmap();
  const box = j.mailboxByRole("junk");
  if (!box) return showToast("There is no Junk folder");
  const update = {};
  for (const id of ids) update[id] = { mailboxIds: { [box.id]: true }, "keywords/$junk": true, "keywords/$notjunk": null };
  return emailSet(update, `Moved ${ids.length === 1 ? "1 message" : ids.length + " messages"} to Junk`);
}

// Delete: to Trash; from Trash (or Junk), for good.
export async function remove(ids, fromId) {
  const j = jmap();
  const trash = j.mailboxByRole("trash");
  const from = fromId && j.caches.Mailbox.get(fromId);
  if (!trash || (from && (from.role === "trash" || from.role === "junk"))) {
    const r = await j.call([["Email/set", { destroy: ids }, "s"]]);
    await j.syncTypes(["Email", "Mailbox", "Thread"]);
    const failed = Object.keys(r.s.notDestroyed || {}).length;
    return showToast(failed ? `${failed} message(s) could not be deleted` : `Deleted ${ids.length === 1 ? "1 message" : ids.length + " messages"} for good`);
  }
  return moveTo(ids, trash.id, fromId, `Moved ${ids.length === 1 ? "1 message" : ids.length + " messages"} to Trash`);
}

export async function mailboxSet(args) {
  const j = jmap();
  const r = await j.call([["Mailbox/set", args, "s"]]);
  await j.syncTypes(["Mailbox"]);
  const err = Object.values({ ...(r.s.notCreated || {}), ...(r.s.notUpdated || {}), ...(r.s.notDestroyed || {}) })[0];
  if (err) throw new Error(err.description || err.type);
  return r.s;
}

// Out of Trash or Junk, back to the Inbox (from Junk: marked $notjunk, so filters learn).
export async function restore(ids, fromId, notJunk = false) {
  const inbox = jmap().mailboxByRole("inbox");
  if (!inbox) return showToast("There is no Inbox");
  const update = {};
  for (const id of ids) {
    update[id] = { [`mailboxIds/${fromId}`]: null, [`mailboxIds/${inbox.id}`]: true };
    if (notJunk) Object.assign(update[id], { "keywords/$junk": null, "keywords/$notjunk": true });
  }
  return emailSet(update, `Moved ${ids.length === 1 ? "1 message" : ids.length + " messages"} to Inbox`);
}
