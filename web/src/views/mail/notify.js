// Desktop notifications for new mail in the Inbox (Settings → "Desktop notifications").
import { prefs } from "../../lib/prefs.js";

// "after" is inclusive (RFC 8621 §4.4.1) and whole seconds: a mail of the same second is asked for
// twice, so remember what was shown.
let since = new Date().toISOString().replace(/\.\d+Z$/, "Z");
const shown = new Set();

export async function notifyNewMail(j, types) {
  if (!types.has("Email") && !types.has("EmailDelivery")) return;
  if (!prefs.get().notify || typeof Notification === "undefined" || Notification.permission !== "granted") return;
  const inbox = j.mailboxByRole("inbox");
  if (!inbox) return;
  const from = since;
  since = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const r = await j.call([
    ["Email/query", { filter: { inMailbox: inbox.id, notKeyword: "$seen", after: from }, sort: [{ property: "receivedAt", isAscending: false }], limit: 3 }, "q"],
    ["Email/get", { "#ids": { resultOf: "q", name: "Email/query", path: "/ids" }, properties: ["from", "subject"] }, "g"],
  ]).catch(() => null);
  for (const e of r ? r.g.list : []) {
    if (shown.has(e.id)) continue;
    shown.add(e.id);
    const who = e.from && e.from[0] ? e.from[0].name || e.from[0].email : "";
    new Notification(who || "New message", { body: e.subject || "(no subject)", tag: e.id });
  }
}
