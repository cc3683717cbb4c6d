// The Settings view (a first version): the account, its storage, and the mail reader's preferences.
import { useState } from "preact/hooks";
import { html } from "../lib/html.js";
import { fmtBytes } from "../lib/format.js";
import { prefs } from "../lib/prefs.js";
import { useObservable } from "../lib/store.js";
import { SecuritySettings } from "./settings-security.js";

export function StorageMeter({ user }) {
  const pct = user.quota_bytes ? Math.min(100, (100 * user.used_bytes) / user.quota_bytes) : 0;
  return html`
    <div class="storage">
      <span>${fmtBytes(user.used_bytes)} of ${fmtBytes(user.quota_bytes)} used</span>
      <progress max="100" value=${pct} aria-label="Storage used">${Math.round(pct)}%</progress>
    </div>`;
}

export function SettingsView({ user }) {
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
        <div class="field">
          <span id="senders-l">Always show remote images from</span>
          ${p.imageSenders.length === 0
            ? html`<p class="muted" aria-labelledby="senders-l">No senders yet ("Show images" → "Always for this sender").</p>`
            : html`<ul class="chips" aria-labelledby="senders-l">${p.imageSenders.map((s) => html`
                <li key=${s}>${s} <button type="button" class="ghost small" aria-label=${"Forget " + s}
                  onClick=${() => set("imageSenders", p.imageSenders.filter((x) => x !== s))}>✕</button></li>`)}</ul>`}
        </div>
      </section>
      <${SecuritySettings} />
    </div>`;
}
