// Settings → Set up a mail app (issue 16 item 5): per client what to do, from the server's
// /api/settings/mail-setup (host, ports, security, the autoconfig and profile URLs, and a QR code of
// the phone profile's URL drawn by the server). Neither the page nor the profile holds a password.
import { useEffect, useState } from "preact/hooks";
import { html } from "../lib/html.js";
import { api } from "../lib/api.js";
import { navigate } from "../lib/router.js";

const CLIENTS = [
  ["thunderbird", "Thunderbird"],
  ["ios", "iPhone and iPad"],
  ["macos", "Apple Mail on a Mac"],
  ["android", "Android"],
  ["outlook", "Outlook"],
  ["other", "Other apps"],
];

function ServerTable({ s }) {
  return html`
    <table class="smapp-table" aria-label="Server settings">
      <thead><tr><th scope="col">Service</th><th scope="col">Server</th><th scope="col">Port</th><th scope="col">Security</th></tr></thead>
      <tbody>
        <tr><td>Incoming mail (IMAP)</td><td>${s.imap.host}</td><td>${s.imap.port}</td><td>${s.imap.security}</td></tr>
        ${s.smtp.map((x) => html`<tr key=${x.port}><td>Outgoing mail (SMTP)</td><td>${x.host}</td><td>${x.port}</td><td>${x.security}</td></tr>`)}
        <tr><td>Filters (ManageSieve)</td><td>${s.managesieve.host}</td><td>${s.managesieve.port}</td><td>${s.managesieve.security}</td></tr>
      </tbody>
    </table>
    <dl class="facts smapp-facts">
      <dt>User name</dt><dd><code>${s.address}</code></dd>
      <dt>Password</dt><dd>${s.needs_app_password ? "an app password (two-factor sign-in is on)" : "your password, or better an app password"}</dd>
      <dt>Files (WebDAV)</dt><dd><code>${s.webdav}</code></dd>
    </dl>`;
}

function AppPasswordHint({ s }) {
  function go(ev) {
    ev.preventDefault();
    navigate("/settings");
    requestAnimationFrame(() => document.getElementById("app-h")?.scrollIntoView());
  }
  return html`
    <p class="smapp-hint">${s.needs_app_password
      ? "Two-factor sign-in is on: mail apps sign in with an app password, not your password."
      : "Give each app its own app password: you can revoke it alone if the device is lost."}
      ${" "}<a href="/settings" onClick=${go}>Create an app password</a></p>`;
}

// links on this page stay on its own origin (the server's base_url may name another front door)
const local = (url) => { const u = new URL(url, location.href); return u.pathname + u.search; };

function Steps({ id, s }) {
  const ask = s.needs_app_password ? "the app password" : "your password (or an app password)";
  if (id === "thunderbird") return html`
    <ol>
      <li>In Thunderbird choose <strong>Account Settings → Account Actions → Add Mail Account</strong>.</li>
      <li>Type your name, <code>${s.address}</code> and ${ask}, then <strong>Continue</strong>.</li>
      <li>Thunderbird finds the settings itself (IMAP, SMTP); choose <strong>Done</strong>.</li>
    </ol>
    <p class="muted">It reads them from <code>${s.autoconfig_url}</code>. For filters, the Sieve add-on uses port ${s.managesieve.port}.</p>`;
  if (id === "ios") return html`
    <div class="smapp-phone">
      <div class="qr" role="img" aria-label="QR code for the iPhone profile" dangerouslySetInnerHTML=${{ __html: s.phone_qr_svg }}></div>
      <ol>
        <li>Scan this code with the iPhone's or iPad's <strong>Camera</strong> and open the link — or, on the device, <a href=${local(s.phone_profile_url)} download="suite-mail.mobileconfig">download the profile</a>.</li>
        <li>Open <strong>Settings → Profile Downloaded</strong> and choose <strong>Install</strong>.</li>
        <li>When asked, type ${ask}. The profile holds no password.</li>
      </ol>
    </div>`;
  if (id === "macos") return html`
    <ol>
      <li><a href=${local(s.mobileconfig_url)} download="suite-mail.mobileconfig">Download the profile</a> and open it.</li>
      <li>Open <strong>System Settings → Privacy & Security → Profiles</strong>, choose the profile and <strong>Install</strong>.</li>
      <li>When asked, type ${ask}. The profile holds no password.</li>
    </ol>`;
  if (id === "android") return html`
    <ol>
      <li>Install <strong>Thunderbird for Android</strong> (or K-9 Mail) and choose <strong>Add account</strong>.</li>
      <li>Type <code>${s.address}</code>; the app finds the settings itself. Then type ${ask}.</li>
      <li>If it asks for the servers, use the table under <strong>Other apps</strong>.</li>
    </ol>`;
  if (id === "outlook") return html`
    <ol>
      <li>In Outlook choose <strong>File → Add Account</strong> (or <strong>Settings → Accounts → Add account</strong>).</li>
      <li>Type <code>${s.address}</code>; if Outlook asks for the kind of account, choose <strong>IMAP</strong>.</li>
      <li>Type ${ask}. If Outlook does not find the servers, enter those of the table under <strong>Other apps</strong>.</li>
    </ol>`;
  return html`<p>Any mail app that speaks IMAP and SMTP works with these settings:</p><${ServerTable} s=${s} />`;
}

export function MailAppsSettings() {
  const [s, setS] = useState(null);
  const [msg, setMsg] = useState("");
  const [tab, setTab] = useState("thunderbird");
  useEffect(() => { api("/api/settings/mail-setup").then(setS, (e) => setMsg(e.message)); }, []);
  function key(ev, i) {
    const d = { ArrowRight: 1, ArrowLeft: -1 }[ev.key];
    if (!d) return;
    const next = CLIENTS[(i + d + CLIENTS.length) % CLIENTS.length][0];
    setTab(next);
    document.getElementById(`smapp-tab-${next}`)?.focus();
  }
  return html`
    <section class="panel smapp" aria-labelledby="smapp-h">
      <h2 id="smapp-h">Set up a mail app</h2>
      ${s && html`
        <${AppPasswordHint} s=${s} />
        <div class="smapp-tabs" role="tablist" aria-label="Mail apps">
          ${CLIENTS.map(([id, name], i) => html`
            <button key=${id} type="button" role="tab" id=${`smapp-tab-${id}`} aria-selected=${tab === id}
              aria-controls="smapp-panel" tabindex=${tab === id ? 0 : -1} onClick=${() => setTab(id)} onKeyDown=${(e) => key(e, i)}>${name}</button>`)}
        </div>
        <div class="smapp-panel" id="smapp-panel" role="tabpanel" aria-labelledby=${`smapp-tab-${tab}`}>
          <${Steps} id=${tab} s=${s} />
        </div>`}
      <p class="status" role="status">${msg}</p>
    </section>`;
}
