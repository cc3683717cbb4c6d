// Settings → security (issue 16 item 1): password, two-factor (TOTP with QR code, passkeys),
// app passwords (shown once), sessions and live connections with "End", sign out everywhere.
// Everything goes through /api/settings/... (cookie session + CSRF, see lib/api.js).
import { useEffect, useState } from "preact/hooks";
import { startAuthentication, startRegistration } from "@simplewebauthn/browser";
import { html } from "../lib/html.js";
import { api } from "../lib/api.js";

const SCOPES = ["imap", "smtp", "dav", "jmap"];
// the live connections' services (LiveConnection.service on the server) as the Sessions table names them
const KINDS = { imap: "IMAP", smtp: "SMTP", managesieve: "ManageSieve", calls: "Calls", meeting: "Meeting",
  "jmap-push": "JMAP push" };
const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "never");

function useLoad(path) {
  const [data, setData] = useState(null);
  const [error, setError] = useState("");
  const reload = async () => {
    try { setData(await api(path)); setError(""); } catch (e) { setError(e.message); }
  };
  useEffect(() => { reload(); }, [path]);
  return [data, reload, error];
}

function Status({ msg }) {
  return html`<p class="status" role="status">${msg}</p>`;
}

function PasswordSection() {
  const [msg, setMsg] = useState("");
  async function submit(ev) {
    ev.preventDefault();
    const f = new FormData(ev.currentTarget);
    if (f.get("new") !== f.get("again")) { setMsg("The new passwords differ."); return; }
    try {
      await api("/api/settings/password", { method: "POST", body: { current: f.get("current"), new: f.get("new") } });
      setMsg("Password changed. Every session was signed out; sign in again.");
      setTimeout(() => location.reload(), 1500);
    } catch (e) { setMsg(e.message); }
  }
  return html`
    <section class="panel" aria-labelledby="pw-h">
      <h2 id="pw-h">Password</h2>
      <form onSubmit=${submit} class="stack">
        <label for="pw-current">Current password</label>
        <input id="pw-current" name="current" type="password" autocomplete="current-password" required />
        <label for="pw-new">New password</label>
        <input id="pw-new" name="new" type="password" autocomplete="new-password" minlength="8" required />
        <label for="pw-again">New password again</label>
        <input id="pw-again" name="again" type="password" autocomplete="new-password" minlength="8" required />
        <button type="submit" class="primary">Change password</button>
      </form>
      <${Status} msg=${msg} />
    </section>`;
}

function RecoveryCodes({ codes }) {
  return html`
    <div class="recovery">
      <p><strong>Recovery codes</strong> — each works once if the phone is lost. They are shown only now.</p>
      <ul aria-label="Recovery codes" class="codes">${codes.map((c) => html`<li key=${c}><code>${c}</code></li>`)}</ul>
    </div>`;
}

function TwoFactorSection({ overview, reload }) {
  const [enrol, setEnrol] = useState(null);
  const [codes, setCodes] = useState(null);
  const [msg, setMsg] = useState("");
  async function begin() {
    setMsg("");
    try { setEnrol(await api("/api/settings/totp", { method: "POST" })); } catch (e) { setMsg(e.message); }
  }
  async function verify(ev) {
    ev.preventDefault();
    const code = new FormData(ev.currentTarget).get("code");
    try {
      const r = await api("/api/settings/totp/confirm", { method: "POST", body: { code } });
      setCodes(r.recovery_codes); setEnrol(null); setMsg("Two-factor authentication is on."); reload();
    } catch (e) { setMsg(e.message); }
  }
  async function off(ev) {
    ev.preventDefault();
    const password = new FormData(ev.currentTarget).get("password");
    try {
      await api("/api/settings/totp/disable", { method: "POST", body: { password } });
      setCodes(null); setMsg("Two-factor authentication is off."); reload();
    } catch (e) { setMsg(e.message); }
  }
  return html`
    <section class="panel" aria-labelledby="tfa-h">
      <h2 id="tfa-h">Two-factor authentication</h2>
      ${overview && overview.totp
        ? html`<p>Authenticator app: <strong>on</strong> (${overview.recovery_codes_left} recovery codes left).</p>
            <form onSubmit=${off} class="inline">
              <label for="tfa-off-pw">Password</label>
              <input id="tfa-off-pw" name="password" type="password" autocomplete="current-password" required />
              <button type="submit">Turn off</button>
            </form>`
        : !enrol && html`<p>Authenticator app: off.</p>
            <button type="button" class="primary" onClick=${begin}>Set up authenticator app</button>`}
      ${enrol && html`
        <div class="enrol">
          <p>Scan this code with the authenticator app, then type the six digits it shows.</p>
          <div class="qr" role="img" aria-label="QR code for the authenticator app" dangerouslySetInnerHTML=${{ __html: enrol.qr_svg }}></div>
          <p>Or type the key: <code aria-label="Secret key">${enrol.secret}</code></p>
          <form onSubmit=${verify} class="inline">
            <label for="tfa-code">Verification code</label>
            <input id="tfa-code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required />
            <button type="submit" class="primary">Verify</button>
          </form>
        </div>`}
      ${codes && html`<${RecoveryCodes} codes=${codes} />`}
      ${overview && overview.mail_clients_need_app_passwords &&
        html`<p class="muted">Mail, calendar and file apps now sign in with app passwords only.</p>`}
      <${Status} msg=${msg} />
      <${PasskeysPart} reload=${reload} />
    </section>`;
}

function PasskeysPart({ reload }) {
  const [data, load] = useLoad("/api/settings/passkeys");
  const [msg, setMsg] = useState("");
  async function add(ev) {
    ev.preventDefault();
    const label = new FormData(ev.currentTarget).get("label");
    try {
      const { ticket, options } = await api("/api/settings/passkeys/options", { method: "POST" });
      const credential = await startRegistration({ optionsJSON: options });
      await api("/api/settings/passkeys", { method: "POST", body: { ticket, label, credential } });
      setMsg("Passkey added."); load(); reload();
    } catch (e) { setMsg(e.message); }
  }
  async function remove(p) {
    try { await api(`/api/settings/passkeys/${p.id}`, { method: "DELETE" }); load(); reload(); } catch (e) { setMsg(e.message); }
  }
  return html`
    <h3>Passkeys</h3>
    <ul aria-label="Passkeys" class="rows">${(data ? data.passkeys : []).map((p) => html`
      <li key=${p.id}><span>${p.label}</span> <span class="muted">added ${when(p.created_at)}, last used ${when(p.last_used_at)}</span>
        <button type="button" class="small" aria-label=${"Remove passkey " + p.label} onClick=${() => remove(p)}>Remove</button></li>`)}
    </ul>
    <form onSubmit=${add} class="inline">
      <label for="pk-label">Passkey name</label>
      <input id="pk-label" name="label" maxlength="100" required placeholder="e.g. YubiKey" />
      <button type="submit">Add a passkey</button>
    </form>
    <${Status} msg=${msg} />`;
}

function AppPasswordsSection() {
  const [data, load] = useLoad("/api/settings/app-passwords");
  const [secret, setSecret] = useState(null);
  const [msg, setMsg] = useState("");
  async function create(ev) {
    ev.preventDefault();
    const form = ev.currentTarget; // null once the handler awaited
    const f = new FormData(form);
    const scopes = SCOPES.filter((s) => f.get("scope-" + s));
    try {
      const r = await api("/api/settings/app-passwords", { method: "POST", body: { label: f.get("label"), scopes } });
      setSecret({ label: r.label, secret: r.secret }); form.reset(); load();
    } catch (e) { setMsg(e.message); }
  }
  async function revoke(a) {
    try { await api(`/api/settings/app-passwords/${a.id}`, { method: "DELETE" }); setMsg(`Revoked ${a.label}.`); load(); }
    catch (e) { setMsg(e.message); }
  }
  return html`
    <section class="panel" aria-labelledby="app-h">
      <h2 id="app-h">App passwords</h2>
      <p class="muted">For mail, calendar and file apps. Each one can be revoked alone; revoking closes its open connections.</p>
      ${secret && html`<div class="secret" role="status">
          <p>App password for <strong>${secret.label}</strong> — copy it now, it is not shown again:</p>
          <code aria-label="New app password">${secret.secret}</code>
          <button type="button" class="small" onClick=${() => setSecret(null)}>Done</button></div>`}
      <table aria-label="App passwords"><thead><tr><th>Name</th><th>Access</th><th>Created</th><th>Last used</th><th></th></tr></thead>
        <tbody>${(data ? data.app_passwords : []).map((a) => html`
          <tr key=${a.id}><td>${a.label}</td><td>${a.scopes.join(", ")}</td><td>${when(a.created_at)}</td><td>${when(a.last_used_at)}</td>
            <td><button type="button" class="small" aria-label=${"Revoke " + a.label} onClick=${() => revoke(a)}>Revoke</button></td></tr>`)}
        </tbody></table>
      <form onSubmit=${create} class="stack">
        <label for="app-label">Name</label>
        <input id="app-label" name="label" maxlength="100" required placeholder="e.g. Thunderbird on the laptop" />
        <fieldset><legend>Access</legend>${SCOPES.map((s) => html`
          <label key=${s} class="check"><input type="checkbox" name=${"scope-" + s} checked=${s !== "dav"} /> ${s.toUpperCase()}</label>`)}
        </fieldset>
        <button type="submit" class="primary">Create app password</button>
      </form>
      <${Status} msg=${msg} />
    </section>`;
}

function SessionsSection() {
  const [data, load] = useLoad("/api/settings/sessions");
  const [msg, setMsg] = useState("");
  async function end(path, what) {
    try { await api(path, { method: "DELETE" }); setMsg(`Ended ${what}.`); load(); } catch (e) { setMsg(e.message); }
  }
  async function everywhere() {
    try { await api("/api/settings/sign-out-everywhere", { method: "POST" }); location.reload(); } catch (e) { setMsg(e.message); }
  }
  const rows = data
    ? [
        ...data.web.map((w) => ({ key: "w" + w.id, kind: "Web", client: w.client, ip: w.ip, since: w.since, current: w.current,
          path: `/api/settings/sessions/${w.id}` })),
        ...data.connections.map((c) => ({ key: "c" + c.id, kind: KINDS[c.kind] || c.kind.toUpperCase(), client: c.client || (c.credential === "app_password" ? "app password" : "password"),
          ip: c.ip, since: c.since, path: `/api/settings/connections/${c.id}` })),
      ]
    : [];
  return html`
    <section class="panel" aria-labelledby="ses-h">
      <h2 id="ses-h">Sessions</h2>
      <table aria-label="Sessions"><thead><tr><th>Kind</th><th>Client</th><th>IP</th><th>Since</th><th></th></tr></thead>
        <tbody>${rows.map((r) => html`
          <tr key=${r.key}><td>${r.kind}${r.current ? " (this one)" : ""}</td><td class="clip">${r.client}</td><td>${r.ip || ""}</td><td>${when(r.since)}</td>
            <td>${!r.current && html`<button type="button" class="small" aria-label=${`End ${r.kind} session from ${r.ip || "unknown"}`} onClick=${() => end(r.path, r.kind)}>End</button>`}</td></tr>`)}
        </tbody></table>
      <button type="button" onClick=${load}>Refresh</button>
      <button type="button" class="danger" onClick=${everywhere}>Sign out everywhere</button>
      <${Status} msg=${msg} />
    </section>`;
}

export function SecuritySettings() {
  const [overview, reload] = useLoad("/api/settings");
  return html`
    <${PasswordSection} />
    <${TwoFactorSection} overview=${overview} reload=${reload} />
    <${AppPasswordsSection} />
    <${SessionsSection} />`;
}

// The login's second step (used by views/login.js): a TOTP or recovery code, or a passkey.
export function SecondFactorStep({ step, onSignedIn }) {
  const [error, setError] = useState("");
  async function withCode(ev) {
    ev.preventDefault();
    const code = new FormData(ev.currentTarget).get("code");
    try { onSignedIn(await api("/api/login/second-factor", { method: "POST", body: { challenge: step.challenge, code } })); }
    catch (e) { setError(e.status === 401 ? "Wrong or already used code." : e.message); }
  }
  async function withPasskey() {
    try {
      const { options } = await api("/api/login/passkey-options", { method: "POST", body: { challenge: step.challenge } });
      const passkey = await startAuthentication({ optionsJSON: options });
      onSignedIn(await api("/api/login/second-factor", { method: "POST", body: { challenge: step.challenge, passkey } }));
    } catch (e) { setError(e.message); }
  }
  const codes = step.second_factor.includes("totp");
  return html`
    <main class="login">
      <div class="card" aria-labelledby="tfa-title">
        <h1 id="tfa-title"><span class="brand">Suite</span> Two-factor authentication</h1>
        ${codes && html`<form onSubmit=${withCode} class="stack">
          <label for="login-code">Code</label>
          <input id="login-code" name="code" autocomplete="one-time-code" required autofocus />
          <p class="muted">The six digits of the authenticator app, or a recovery code.</p>
          <button type="submit" class="primary">Verify</button></form>`}
        ${step.second_factor.includes("passkey") && html`<button type="button" onClick=${withPasskey}>Use a passkey</button>`}
        <p class="error" role="alert">${error}</p>
      </div>
    </main>`;
}
