// The gateway's JSON APIs (login, /api/me, files, calls): same-origin cookie + the session's CSRF token.
export const session = { csrf: null, onUnauthorized: () => {} };

export class ApiError extends Error {
  constructor(message, status, code) { super(message); this.status = status; this.code = code; }
}

export async function api(path, { method = "GET", body, headers = {} } = {}) {
  const h = { ...headers };
  if (body !== undefined) h["Content-Type"] = "application/json";
  if (session.csrf && method !== "GET" && method !== "HEAD") h["X-CSRF-Token"] = session.csrf;
  const res = await fetch(path, {
    method, headers: h, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({}));
  if (res.status === 401 && path !== "/api/me" && path !== "/api/login") session.onUnauthorized();
  if (!res.ok) throw new ApiError(data.message || res.statusText, res.status, data.error);
  return data;
}
