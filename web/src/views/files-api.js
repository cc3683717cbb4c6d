// The Files view's calls to /api/files/... (paths are "/"-separated names under the account's root).
import { api } from "../lib/api.js";

export const enc = (path) => path.split("/").filter(Boolean).map(encodeURIComponent).join("/");
export const join = (folder, name) => (folder.replace(/\/+$/, "") + "/" + name).replace(/^\/*/, "/");
export const parentOf = (path) => "/" + path.split("/").filter(Boolean).slice(0, -1).join("/");
export const baseName = (path) => path.split("/").filter(Boolean).pop() || "";

export const contentUrl = (path, inline = false) => `/api/files/content/${enc(path)}${inline ? "?inline=1" : ""}`;
export const zipUrl = (path) => `/api/files/zip/${enc(path)}`;

export const list = (path) => api(path === "/" ? "/api/files/list" : `/api/files/list/${enc(path)}`);
export const mkdir = (path, parents = false) => api("/api/files/mkdir", { method: "POST", body: { path, parents } });
export const move = (from, to) => api("/api/files/move", { method: "POST", body: { from, to } });
export const copy = (from, to) => api("/api/files/copy", { method: "POST", body: { from, to } });
export const remove = (path) => api("/api/files/delete", { method: "POST", body: { path } });
export const search = (q) => api(`/api/files/search?q=${encodeURIComponent(q)}`);
export const trash = () => api("/api/files/trash");
export const restore = (id) => api("/api/files/trash/restore", { method: "POST", body: { id } });
export const purge = (id) => api("/api/files/trash/purge", { method: "POST", body: id === "all" ? { all: true } : { id } });
export const versions = (path) => api(`/api/files/versions/${enc(path)}`);
export const restoreVersion = (path, id) => api(`/api/files/versions/${enc(path)}`, { method: "POST", body: { id } });
export const shares = () => api("/api/files/shares");
export const createShare = (body) => api("/api/files/shares", { method: "POST", body });
export const revokeShare = (id) => api(`/api/files/shares/${id}`, { method: "DELETE" });

// A public share page's address: /p/<token> (the fragment, for encrypted links, is added by the caller).
export const pageUrl = (token) => `${location.origin}/p/${token}`;
