// The Admin view (admins only): what this page can tell today; the admin tools are a later issue.
import { html } from "../lib/html.js";
import { StorageMeter } from "./settings.js";
import { AdminConsole } from "./admin-console.js";

export function AdminView({ user }) {
  if (!user.is_admin) return html`<div class="page"><h1>Admin</h1><p>Only administrators can open this page.</p></div>`;
  return html`
    <div class="page admin">
      <div class="view-head"><h1>Admin</h1></div>
      <section class="panel">
        <h2>This server</h2>
        <p>Signed in as administrator <strong>${user.address}</strong>.</p>
        <${StorageMeter} user=${user} />
      </section>
      <${AdminConsole} />
    </div>`;
}
