// The web app's shell: session check, login, logout. Other views (mail, files, calls) plug in here.
const state = { csrf: null };

async function api(path, { method = "GET", body } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (state.csrf && method !== "GET") headers["X-CSRF-Token"] = state.csrf;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                  credentials: "same-origin" });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(data.message || res.statusText), { status: res.status });
  return data;
}

function show(view) {
  for (const id of ["login-view", "home-view"]) document.getElementById(id).hidden = id !== view;
}

function fmtBytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function renderMe(me) {
  state.csrf = me.csrf_token;
  document.getElementById("me-address").textContent = me.address;
  document.getElementById("me-usage").textContent = `${fmtBytes(me.used_bytes)} of ${fmtBytes(me.quota_bytes)}`;
  show("home-view");
}

document.getElementById("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  try {
    renderMe(await api("/api/login", { method: "POST", body: Object.fromEntries(form) }));
  } catch (err) {
    document.getElementById("login-error").textContent = err.message;
  }
});

document.getElementById("logout").addEventListener("click", async () => {
  await api("/api/logout", { method: "POST" }).catch(() => {});
  state.csrf = null;
  show("login-view");
});

api("/api/me").then(renderMe, () => show("login-view"));
