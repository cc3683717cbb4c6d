// The Settings view (a first version): the account, its storage, and the mail reader's preferences.
import { useEffect, useState } from "preact/hooks";
import { html } from "../lib/html.js";
import { fmtBytes } from "../lib/format.js";
import { api } from "../lib/api.js";
import { prefs } from "../lib/prefs.js";
import { useObservable } from "../lib/store.js";
import { SecuritySettings } from "./settings-security.js";
import { FiltersSettings } from "./settings-filters.js";
import { VacationSettings } from "./settings-vacation.js";
import { MailAppsSettings } from "./settings-mailapps.js";
import { startExport } from "../lib/export-download.js";

// the pages of Settings: /settings, /settings/filters, /settings/out-of-office, /settings/mail-apps
const PAGES = [
  ["", "Account and security"],
  ["filters", "Filters"],
  ["out-of-office", "Out of office"],
  ["mail-apps", "Set up a mail app"],
];

function SettingsNav({ page }) {
  return html`
    <nav class="setnav" aria-label="Settings">
      <ul>${PAGES.map(([id, name]) => html`
        <li key=${id}><a href=${id ? `/settings/${id}` : "/settings"} aria-current=${page === id ? "page" : undefined}>${name}</a></li>`)}
      </ul>
    </nav>`;
}

export function StorageMeter({ user }) {
  const pct = user.quota_bytes ? Math.min(100, (100 * user.used_bytes) / user.quota_bytes) : 0;
  return html`
    <div class="storage">
      <span>${fmtBytes(user.used_bytes)} of ${fmtBytes(user.quota_bytes)} used</span>
      <progress max="100" value=${pct} aria-label="Storage used">${Math.round(pct)}%</progress>
    </div>`;
}

// Mail sent from mail programs (SMTP submission): big attachments become share links, as the web app's
// compose always does (the server's /api/settings/mail; off until the user turns it on).
function BigAttachmentsField() {
  const [st, setSt] = useState(null);
  const [msg, setMsg] = useState("");
  useEffect(() => { api("/api/settings/mail").then(setSt, (e) => setMsg(e.message)); }, []);
  async function change(ev) {
    const on = ev.currentTarget.checked;
    try {
      setSt(await api("/api/settings/mail", { method: "POST", body: { big_attachment_links: on } }));
      setMsg("Saved.");
    } catch (e) { setMsg(e.message); }
  }
  if (!st) return html`<p class="status" role="status">${msg}</p>`;
  return html`
    <div class="field check">
      <input type="checkbox" id="pref-biglinks" checked=${st.big_attachment_links} onChange=${change} />
      <label for="pref-biglinks">Send attachments over ${fmtBytes(st.big_attachment_bytes)} from mail programs as links</label>
      <span class="muted">(kept in Files, "Mail attachments", for ${st.big_attachment_link_days} days)</span>
      <span class="status" role="status">${msg}</span>
    </div>`;
}

export function SettingsView({ user, parts = [] }) {
  const page = PAGES.some(([id]) => id === parts[0]) ? parts[0] || "" : "";
  if (page) {
    return html`
      <div class="page settings">
        <div class="view-head"><h1>Settings</h1></div>
        <${SettingsNav} page=${page} />
        ${page === "filters" && html`<${FiltersSettings} />`}
        ${page === "out-of-office" && html`<${VacationSettings} />`}
        ${page === "mail-apps" && html`<${MailAppsSettings} />`}
      </div>`;
  }
  return html`<${GeneralSettings} user=${user} />`;
}

// the same export as `suite export --user`: one zip, each mailbox as mbox, the files as they are
function ExportData() {
  const [msg, setMsg] = useState("");
  const [busy, setBusy] = useState(false);
  async function go() {
    setBusy(true);
    try { await startExport("/api/settings/export"); setMsg("The download has started."); }
    catch (e) { setMsg(e.message); }
    finally { setBusy(false); }
  }
  return html`
    <section class="panel setexport" aria-labelledby="export-h">
      <h2 id="export-h">Your data</h2>
      <p class="muted">One zip file: each mailbox as an mbox file (Thunderbird, mutt and other mail programs read it) and all your files.</p>
      <div class="setexport-row">
        <button type="button" class="primary" onClick=${go} disabled=${busy}>Export my data</button>
        <span class="status" role="status">${msg}</span>
      </div>
    </section>`;
}

function GeneralSettings({ user }) {
  const p = useObservable(prefs);
  const [notif, setNotif] = useState(typeof Notification !== "undefined" ? Notification.permission : "unsupported");
  const set = (k, v) => prefs.update((old) => ({ ...old, [k]: v }));
  async function enableNotifications(ev) {
    const on = ev.currentTarget.checked;
    if (on && typeof Notification !== "undefined" && Notification.permission !== "granted") {
      setNotif(await Notification.requestPermission());
    }
    set("notify", on);
  }
  return html`
    <div class="page settings">
      <div class="view-head"><h1>Settings</h1></div>
      <${SettingsNav} page="" />
      <section class="panel" aria-labelledby="acct-h">
        <h2 id="acct-h">Account</h2>
        <dl class="facts">
          <dt>Email</dt><dd>${user.address}</dd>
          <dt>Name</dt><dd>${user.display_name || "—"}</dd>
          <dt>Role</dt><dd>${user.is_admin ? "Administrator" : "User"}</dd>
          <dt>Storage</dt><dd><${StorageMeter} user=${user} /></dd>
        </dl>
      </section>
      <section class="panel" aria-labelledby="mail-h">
        <h2 id="mail-h">Mail</h2>
        <div class="field">
          <label for="pref-view">Message list</label>
          <select id="pref-view" value=${p.threads ? "threads" : "messages"} onChange=${(e) => set("threads", e.currentTarget.value === "threads")}>
            <option value="threads">Group by conversation</option>
            <option value="messages">Show every message</option>
          </select>
        </div>
        <div class="field check">
          <input type="checkbox" id="pref-notify" checked=${p.notify} onChange=${enableNotifications} />
          <label for="pref-notify">Desktop notifications for new mail</label>
          ${notif === "denied" && html`<span class="muted">(blocked by the browser)</span>`}
        </div>
        <${BigAttachmentsField} />
        <div class="field">
          <span id="senders-l">Always show remote images from</span>
          ${p.imageSenders.length === 0
            ? html`<p class="muted" aria-labelledby="senders-l">No senders yet ("Show images" → "Always for this sender").</p>`
            : html`<ul class="chips" aria-labelledby="senders-l">${p.imageSenders.map((s) => html`
                <li key=${s}>${s} <button type="button" class="ghost small" aria-label=${"Forget " + s}
                  onClick=${() => set("imageSenders", p.imageSenders.filter((x) => x !== s))}>✕</button></li>`)}</ul>`}
        </div>
      </section>
      <${ExportData} />
      <${SecuritySettings} />
    </div>`;
}
