// The Mail view: folders | message list | reader (one pane at a time on a phone).
// URLs: /mail (the Inbox), /mail/<mailboxId>, /mail/<mailboxId>/<emailId>, /mail/search?q=…[/<emailId>].
import { useEffect, useState } from "preact/hooks";
import { html } from "../../lib/html.js";
import { jmap } from "../../lib/jmap.js";
import { navigate } from "../../lib/router.js";
import { useObservable } from "../../lib/store.js";
import { prefs } from "../../lib/prefs.js";
import { Mailboxes } from "./mailboxes.js";
import { MessageList, openList } from "./list.js";
import { Reader } from "./reader.js";
import { Composer, composer } from "./compose.js";

// Keyboard shortcuts (as in most webmails): c compose, / search, j/k next/previous message,
// u back to the list, e archive, # delete. Never while typing in a field.
function useShortcuts(emailId, mailbox, base) {
  useEffect(() => {
    function onKey(ev) {
      const t = ev.target;
      if (ev.ctrlKey || ev.metaKey || ev.altKey || (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName)))) return;
      if (composer.get()) return;
      const suffix = base.endsWith("/search") ? location.search : "";
      const go = (id) => id && navigate(`${openList.base}/${encodeURIComponent(id)}${suffix}`);
      const at = openList.ids.indexOf(emailId);
      if (ev.key === "c") { ev.preventDefault(); openComposer({}); }
      else if (ev.key === "/") { ev.preventDefault(); document.querySelector('input[name="q"]')?.focus(); }
      else if (ev.key === "j") go(emailId ? openList.ids[at + 1] : openList.ids[0]);
      else if (ev.key === "k" && at > 0) go(openList.ids[at - 1]);
      else if (ev.key === "u" && emailId) navigate(base + suffix);
      else if ((ev.key === "e" || ev.key === "#") && emailId) {
        const next = openList.ids[at + 1];
        (ev.key === "e" ? archive : remove)([emailId], mailbox ? mailbox.id : null)
          .then(() => (next ? go(next) : navigate(base + suffix)));
      }
    }
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [emailId, mailbox && mailbox.id, base]);
}
import { archive, remove, toast } from "./actions.js";
import { openComposer } from "./compose.js";
import { notifyNewMail } from "./notify.js";

function Toast() {
  const t = useObservable(toast);
  if (!t) return null;
  return html`<div class="toast" role="status">
    <span>${t.text}</span>
    ${t.action && html`<button type="button" onClick=${() => { toast.set(null); t.action.run(); }}>${t.action.label}</button>`}
  </div>`;
}

export function MailView({ user, parts, query }) {
  const [ready, setReady] = useState(!!jmap().session);
  const [error, setError] = useState("");
  const [showFolders, setShowFolders] = useState(false);
  const j = jmap();
  useObservable(j.caches.Mailbox.version);
  useObservable(prefs);
  const c = useObservable(composer);

  useEffect(() => {
    if (j.session) return;
    let live = true;
    (async () => {
      try {
        await j.connect();
        await Promise.all([j.loadAll("Mailbox"), j.loadAll("Identity").catch(() => [])]);
        j.listen();
        j.onChange((types) => notifyNewMail(j, types));
        if (live) setReady(true);
      } catch (err) {
        if (live) setError(err.status === 404 ? "Mail is not available on this server yet." : `Mail could not be loaded: ${err.message}`);
      }
    })();
    return () => { live = false; };
  }, []);

  const search = parts[0] === "search" ? query.get("q") || "" : null;
  const inbox = ready ? j.mailboxByRole("inbox") : null;
  const mailboxId = search !== null ? null : parts[0] || (inbox && inbox.id);
  const emailId = search !== null ? parts[1] : parts[1];

  useEffect(() => {
    if (ready && search === null && !parts[0] && inbox) navigate(`/mail/${encodeURIComponent(inbox.id)}`, { replace: true });
  }, [ready, parts[0]]);
  useEffect(() => { setShowFolders(false); }, [mailboxId, search]);

  const mailbox = mailboxId ? j.caches.Mailbox.get(mailboxId) : null;
  const base = search !== null ? `/mail/search` : `/mail/${encodeURIComponent(mailboxId || "")}`;
  useShortcuts(emailId, mailbox, base);

  if (error) return html`<div class="page"><h1>Mail</h1><p class="error" role="alert">${error}</p></div>`;
  if (!ready) return html`<p class="boot" role="status">Loading mail…</p>`;

  const pane = emailId ? "reader" : showFolders ? "side" : "list";
  return html`
    <div class="mail" data-pane=${pane}>
      <${Mailboxes} current=${mailboxId} threads=${prefs.get().threads} onPick=${() => setShowFolders(false)} />
      <${MessageList} key=${search !== null ? "search" : mailboxId} mailbox=${mailbox} search=${search} base=${base}
        openId=${emailId} threads=${prefs.get().threads} onFolders=${() => setShowFolders(true)} />
      <${Reader} key=${emailId || "none"} emailId=${emailId} mailbox=${mailbox} base=${base} threads=${prefs.get().threads} user=${user} />
      ${c && html`<${Composer} key=${c.key} user=${user} />`}
      <${Toast} />
    </div>`;
}
