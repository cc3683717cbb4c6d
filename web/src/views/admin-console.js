// Admin → the server's accounts, domains, aliases, outbound queue, delivery log, health and audit
// log (issue 16 item 4), over /api/admin/... (403 for non-admins on the server side too).
import { useEffect, useState } from "preact/hooks";
import { html } from "../lib/html.js";
import { api } from "../lib/api.js";
import { fmtBytes } from "../lib/format.js";
import { startExport } from "../lib/export-download.js";

const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "");

function useLoad(path) {
  const [data, setData] = useState(null);
  const reload = async () => { try { setData(await api(path)); } catch { setData(null); } };
  useEffect(() => { reload(); }, [path]);
  return [data, reload];
}

function useAct(reload) {
  const [msg, setMsg] = useState("");
  const act = async (fn, ok) => { try { await fn(); setMsg(ok || ""); reload && reload(); } catch (e) { setMsg(e.message); } };
  return [msg, act];
}

function Users() {
  const [data, reload] = useLoad("/api/admin/users");
  const [msg, act] = useAct(reload);
  const patch = (u, body, ok) => act(() => api(`/api/admin/users/${encodeURIComponent(u.address)}`, { method: "PATCH", body }), ok);
  function create(ev) {
    ev.preventDefault();
    const f = new FormData(ev.currentTarget);
    const quota = f.get("quota") ? Math.round(Number(f.get("quota")) * 1024 ** 3) : undefined;
    act(() => api("/api/admin/users", { method: "POST", body: { address: f.get("address"), password: f.get("password"),
      display_name: f.get("name") || "", is_admin: !!f.get("admin"), quota_bytes: quota } }), `Created ${f.get("address")}.`);
  }
  // as `suite user remove`: the account and everything in it
  const remove = (u) => confirm(`Remove ${u.address} with all its mail and files?`) &&
    act(() => api(`/api/admin/users/${encodeURIComponent(u.address)}`, { method: "DELETE" }), `Removed ${u.address}.`);
  return html`
    <section class="panel" aria-labelledby="users-h">
      <h2 id="users-h">Users</h2>
      <table aria-label="Users"><thead><tr><th>Email</th><th>Storage</th><th>Role</th><th>State</th><th>Big attachments</th><th></th></tr></thead>
        <tbody>${(data ? data.users : []).map((u) => html`
          <tr key=${u.address}><td>${u.address}</td><td>${fmtBytes(u.used_bytes)} / ${fmtBytes(u.quota_bytes)}</td>
            <td>${u.is_admin ? "Admin" : "User"}</td><td>${u.disabled ? "Disabled" : "Active"}</td>
            <td><label class="check"><input type="checkbox" checked=${u.big_attachment_links}
              aria-label=${"Send big attachments as links for " + u.address}
              onChange=${(e) => patch(u, { big_attachment_links: e.currentTarget.checked })} /> as links</label></td>
            <td class="actions">
              <button type="button" class="small" aria-label=${(u.disabled ? "Enable " : "Disable ") + u.address}
                onClick=${() => patch(u, { disabled: !u.disabled })}>${u.disabled ? "Enable" : "Disable"}</button>
              <button type="button" class="small" aria-label=${(u.is_admin ? "Remove admin " : "Make admin ") + u.address}
                onClick=${() => patch(u, { is_admin: !u.is_admin })}>${u.is_admin ? "Remove admin" : "Make admin"}</button>
              <button type="button" class="small" aria-label=${"Set quota of " + u.address}
                onClick=${() => { const g = prompt("Quota in GB", String(u.quota_bytes / 1024 ** 3)); if (g) patch(u, { quota_bytes: Math.round(Number(g) * 1024 ** 3) }); }}>Quota</button>
              <button type="button" class="small" aria-label=${"Reset password of " + u.address}
                onClick=${() => { const p = prompt("New password for " + u.address); if (p) patch(u, { password: p }, "Password reset."); }}>Reset password</button>
              <button type="button" class="small" aria-label=${"Export " + u.address}
                onClick=${() => act(() => startExport(`/api/admin/users/${encodeURIComponent(u.address)}/export`), `Exporting ${u.address}…`)}>Export</button>
              <button type="button" class="small danger" aria-label=${"Remove " + u.address} onClick=${() => remove(u)}>Remove</button>
            </td></tr>`)}</tbody></table>
      <form onSubmit=${create} class="inline">
        <label for="nu-address">Email</label><input id="nu-address" name="address" type="email" required />
        <label for="nu-name">Display name</label><input id="nu-name" name="name" maxlength="200" />
        <label for="nu-password">Password</label><input id="nu-password" name="password" type="password" autocomplete="new-password" required />
        <label for="nu-quota">Quota (GB)</label><input id="nu-quota" name="quota" type="number" min="0" step="0.1" />
        <label class="check"><input type="checkbox" name="admin" /> Admin</label>
        <button type="submit" class="primary">Create user</button>
      </form>
      <p role="status">${msg}</p>
    </section>`;
}

function Domains() {
  const [data, reload] = useLoad("/api/admin/domains");
  const [msg, act] = useAct(reload);
  const [records, setRecords] = useState(null);
  const show = (name) => act(async () => setRecords(await api(`/api/admin/domains/${name}`)));
  const check = (name) => act(async () => setRecords(await api(`/api/admin/domains/${name}/check`, { method: "POST" })));
  function add(ev) {
    ev.preventDefault();
    const name = new FormData(ev.currentTarget).get("name");
    act(async () => setRecords(await api("/api/admin/domains", { method: "POST", body: { name } })), `Added ${name}.`);
  }
  return html`
    <section class="panel" aria-labelledby="dom-h">
      <h2 id="dom-h">Domains</h2>
      <ul class="rows" aria-label="Domains">${(data ? data.domains : []).map((d) => html`
        <li key=${d.name}><span>${d.name}</span> <span class="muted">${d.accounts} accounts</span>
          <button type="button" class="small" aria-label=${"DNS records of " + d.name} onClick=${() => show(d.name)}>DNS records</button>
          <button type="button" class="small" aria-label=${"Check " + d.name} onClick=${() => check(d.name)}>Check</button>
          <button type="button" class="small danger" aria-label=${"Remove " + d.name}
            onClick=${() => confirm(`Remove the domain ${d.name}?`) && act(async () => { await api(`/api/admin/domains/${encodeURIComponent(d.name)}`, { method: "DELETE" }); setRecords(null); }, `Removed ${d.name}.`)}>Remove</button></li>`)}</ul>
      <form onSubmit=${add} class="inline">
        <label for="nd-name">Domain</label><input id="nd-name" name="name" required placeholder="example.org" />
        <button type="submit" class="primary">Add domain</button>
      </form>
      ${records && html`
        <table aria-label=${"DNS records of " + records.name}><thead><tr><th>Name</th><th>Type</th><th>Value</th><th>Status</th></tr></thead>
          <tbody>${records.records.map((r, i) => html`
            <tr key=${i}><td>${r.name}</td><td>${r.type}</td><td class="clip"><code>${r.value}</code></td>
              <td>${r.status ? (r.status === "ok" ? "OK" : r.status) : ""}</td></tr>`)}</tbody></table>`}
      <p role="status">${msg}</p>
    </section>`;
}

function Aliases() {
  const [data, reload] = useLoad("/api/admin/aliases");
  const [msg, act] = useAct(reload);
  function add(ev) {
    ev.preventDefault();
    const f = new FormData(ev.currentTarget);
    act(() => api("/api/admin/aliases", { method: "POST", body: { alias: f.get("alias"), target: f.get("target") } }), "Alias added.");
  }
  return html`
    <section class="panel" aria-labelledby="al-h">
      <h2 id="al-h">Aliases</h2>
      <ul class="rows" aria-label="Aliases">${(data ? data.aliases : []).map((a) => html`
        <li key=${a.alias}><span>${a.catch_all ? `Catch-all of ${a.alias.slice(2)}` : a.alias}</span> → <span>${a.target}</span>
          <button type="button" class="small" aria-label=${"Remove alias " + a.alias}
            onClick=${() => act(() => api(`/api/admin/aliases/${encodeURIComponent(a.alias)}`, { method: "DELETE" }))}>Remove</button></li>`)}</ul>
      <form onSubmit=${add} class="inline">
        <label for="na-alias">Alias (or *@domain)</label><input id="na-alias" name="alias" required />
        <label for="na-target">Delivers to</label><input id="na-target" name="target" type="email" required />
        <button type="submit" class="primary">Add alias</button>
      </form>
      <p role="status">${msg}</p>
    </section>`;
}

function Queue() {
  const [data, reload] = useLoad("/api/admin/queue");
  const [msg, act] = useAct(reload);
  const msgs = data ? data.messages : [];
  return html`
    <section class="panel" aria-labelledby="q-h">
      <h2 id="q-h">Outbound queue</h2>
      ${msgs.length === 0 ? html`<p class="muted">Empty.</p>` : html`
        <table aria-label="Outbound queue"><thead><tr><th>From</th><th>To</th><th>Attempts</th><th>Last reply</th><th></th></tr></thead>
          <tbody>${msgs.map((m) => html`
            <tr key=${m.id}><td>${m.from || "<>"}</td><td>${m.recipients.map((r) => `${r.address} (${r.status})`).join(", ")}</td>
              <td>${Math.max(0, ...m.recipients.map((r) => r.attempts))}</td><td class="clip">${m.recipients.map((r) => r.last_reply).join("; ")}</td>
              <td class="actions"><button type="button" class="small" onClick=${() => act(() => api(`/api/admin/queue/${m.id}/retry`, { method: "POST" }), "Retrying.")}>Retry</button>
                <button type="button" class="small" onClick=${() => act(() => api(`/api/admin/queue/${m.id}`, { method: "DELETE" }), "Deleted.")}>Delete</button></td></tr>`)}
          </tbody></table>`}
      <button type="button" onClick=${reload}>Refresh</button>
      ${msgs.length > 0 && html` <button type="button" onClick=${() => act(() => api("/api/admin/queue/retry", { method: "POST" }), "Retrying all.")}>Retry all</button>`}
      <p role="status">${msg}</p>
    </section>`;
}

function DeliveryLog() {
  const [data, reload] = useLoad("/api/admin/delivery-log");
  return html`
    <section class="panel" aria-labelledby="dl-h">
      <h2 id="dl-h">Delivery log</h2>
      <table aria-label="Delivery log"><thead><tr><th>When</th><th></th><th>From</th><th>To</th><th>Status</th><th>Reply</th></tr></thead>
        <tbody>${(data ? data.entries : []).slice(0, 100).map((e, i) => html`
          <tr key=${i}><td>${when(e.at)}</td><td>${e.direction === "in" ? "In" : "Out"}</td><td>${e.from || "<>"}</td><td>${e.to}</td>
            <td>${e.status}</td><td class="clip">${e.reply}</td></tr>`)}</tbody></table>
      <button type="button" onClick=${reload}>Refresh</button>
    </section>`;
}

function Health() {
  const [h, reload] = useLoad("/api/admin/health");
  return html`
    <section class="panel" aria-labelledby="h-h">
      <h2 id="h-h">Service health</h2>
      ${h && html`<dl class="facts">
        <dt>Database</dt><dd>${h.database.status}${h.database.ms !== undefined ? ` (${h.database.ms} ms)` : ""}</dd>
        <dt>Event bus</dt><dd>${h.bus}</dd>
        <dt>Accounts</dt><dd>${h.accounts}</dd>
        <dt>Outbound queue</dt><dd>${h.queue.recipients_queued} waiting, ${h.queue.recipients_failed} failed</dd>
        <dt>Connections</dt><dd>${Object.entries(h.connections).map(([k, v]) => `${k}: ${v}`).join(", ") || "none"}</dd>
      </dl>`}
      <button type="button" onClick=${reload}>Refresh</button>
    </section>`;
}

function Audit() {
  const [data] = useLoad("/api/admin/audit");
  return html`
    <section class="panel" aria-labelledby="au-h">
      <h2 id="au-h">Audit log</h2>
      <table aria-label="Audit log"><thead><tr><th>When</th><th>Who</th><th>What</th><th>Detail</th><th>From</th></tr></thead>
        <tbody>${(data ? data.entries : []).slice(0, 100).map((e, i) => html`
          <tr key=${i}><td>${when(e.at)}</td><td>${e.actor}</td><td>${e.action}</td><td class="clip">${e.detail}</td><td>${e.ip || ""}</td></tr>`)}</tbody></table>
    </section>`;
}

export function AdminConsole() {
  return html`<${Health} /><${Users} /><${Domains} /><${Aliases} /><${Queue} /><${DeliveryLog} /><${Audit} />`;
}
