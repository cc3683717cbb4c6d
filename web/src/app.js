// The shell: who is signed in, the navigation, and the view the URL names.
import { useEffect } from "preact/hooks";
import { html } from "./lib/html.js";
import { api, session } from "./lib/api.js";
import { Observable, useObservable } from "./lib/store.js";
import { navigate, route } from "./lib/router.js";
import { LoginView } from "./views/login.js";
import { MailView } from "./views/mail/mail.js";
import { FilesView } from "./views/files.js";
import { CallsView, stopCalls } from "./views/calls.js";
import { SettingsView } from "./views/settings.js";
import { AdminView } from "./views/admin.js";
import { closeJmap } from "./lib/jmap.js";
import { Icon } from "./lib/icons.js";
import { MeetingView, NewMeeting } from "./views/meeting.js";

// undefined: asking the server; null: signed out; else the /api/me answer.
export const me = new Observable(undefined);

export async function refreshMe() {
  try {
    const data = await api("/api/me");
    session.csrf = data.csrf_token;
    me.set(data);
  } catch (err) {
    if (err.status === 401) { session.csrf = null; me.set(null); }
    else me.set(me.get() ?? null);
  }
}

// Any API answering 401 means the session is over (expired, signed out in another tab).
session.onUnauthorized = () => {
  if (me.get()) { stopCalls(); closeJmap(); session.csrf = null; me.set(null); }
};

export async function signOut() {
  await api("/api/logout", { method: "POST" }).catch(() => {});
  stopCalls();
  closeJmap();
  session.csrf = null;
  me.set(null);
}

const VIEWS = [
  { id: "mail", label: "Mail", icon: "mail" },
  { id: "files", label: "Files", icon: "folder" },
  { id: "calls", label: "Calls", icon: "phone" },
  { id: "settings", label: "Settings", icon: "settings" },
];

function Nav({ current, user }) {
  const views = user.is_admin ? [...VIEWS, { id: "admin", label: "Admin", icon: "shield" }] : VIEWS;
  return html`
    <nav class="appnav" aria-label="Main">
      <ul>
        ${views.map((v) => html`
          <li key=${v.id}>
            <a href=${"/" + v.id} aria-current=${current === v.id ? "page" : undefined}>
              <span class="icon"><${Icon} name=${v.icon} /></span><span class="label">${v.label}</span>
            </a>
          </li>`)}
      </ul>
    </nav>`;
}

function Shell({ user }) {
  const r = useObservable(route);
  const view = r.parts[0] || "";
  useEffect(() => {
    if (!view || !["mail", "files", "calls", "settings", "admin"].includes(view)) navigate("/mail", { replace: true });
  }, [view]);
  useEffect(() => {
    const label = { mail: "Mail", files: "Files", calls: "Calls", settings: "Settings", admin: "Admin" }[view];
    document.title = label ? `${label} · Suite` : "Suite";
  }, [view]);
  return html`
    <div class="shell" data-view=${view}>
      <header class="topbar">
        <a class="brand" href="/mail">Suite</a>
        <${Nav} current=${view} user=${user} />
        <div class="account">
          <span class="who" title=${user.address}>${user.display_name || user.address}</span>
          <button type="button" class="ghost" onClick=${signOut}>Sign out</button>
        </div>
      </header>
      <main class="view" id="main">
        ${view === "mail" && html`<${MailView} user=${user} parts=${r.parts.slice(1)} query=${r.query} />`}
        ${view === "files" && html`<${FilesView} user=${user} />`}
        ${view === "settings" && html`<${SettingsView} user=${user} parts=${r.parts.slice(1)} />`}
        ${view === "admin" && html`<${AdminView} user=${user} />`}
        <${CallsView} active=${view === "calls"} user=${user} />
      </main>
    </div>`;
}

export function App() {
  const user = useObservable(me);
  const r = useObservable(route);
  useEffect(() => { refreshMe(); }, []);
  if (user === undefined) return html`<p class="boot" role="status">Loading…</p>`;
  // Meetings: a link /m/<token> opens for guests too; /m (new meeting) needs an account.
  if (r.parts[0] === "m" && r.parts[1]) return html`<${MeetingView} token=${r.parts[1]} user=${user} />`;
  if (r.parts[0] === "m" && user) return html`<${NewMeeting} />`;
  if (user === null) return html`<${LoginView} onSignedIn=${(data) => { session.csrf = data.csrf_token; me.set(data); }} />`;
  return html`<${Shell} user=${user} />`;
}
