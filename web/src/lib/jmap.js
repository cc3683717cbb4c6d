// A small JMAP client (RFC 8620 core, RFC 8621 mail) with one cache per type.
//
// The cache of a type holds records by id and the type's `state`. Views read the cache and the open
// list's query; they never fetch on their own. A push StateChange (EventSource, RFC 8620 §7.3) makes
// the client ask `Foo/changes` since the cached state and patch the cache (`Foo/get` for created and
// updated ids, drop destroyed ones); then listeners re-run the open list's query.
// Auth is the web session: same-origin cookie, and the CSRF token on every POST.
import { session as web } from "./api.js";
import { Observable } from "./store.js";

export const CORE = "urn:ietf:params:jmap:core";
export const MAIL = "urn:ietf:params:jmap:mail";
export const SUBMISSION = "urn:ietf:params:jmap:submission";
export const VACATION = "urn:ietf:params:jmap:vacationresponse";
const USING = [CORE, MAIL, SUBMISSION];

export class JmapError extends Error {
  constructor(type, description, extra = {}) {
    super(description || type);
    this.type = type;
    Object.assign(this, extra);
  }
}

class TypeCache {
  constructor(name) {
    this.name = name;
    this.state = null;
    this.records = new Map();
    this.version = new Observable(0); // bumped on every patch: views re-render
  }
  get(id) { return this.records.get(id); }
  put(list) { for (const r of list) this.records.set(r.id, { ...(this.records.get(r.id) || {}), ...r }); }
  drop(ids) { for (const id of ids) this.records.delete(id); }
  bump() { this.version.set(this.version.get() + 1); }
}

export const EMAIL_LIST_PROPS = ["id", "threadId", "mailboxIds", "keywords", "from", "to", "subject", "receivedAt",
  "preview", "hasAttachment", "size"];
export const EMAIL_FULL_PROPS = [...EMAIL_LIST_PROPS, "cc", "bcc", "replyTo", "sentAt", "messageId", "inReplyTo",
  "references", "textBody", "htmlBody", "attachments", "bodyValues", "blobId"];

export class Jmap {
  constructor() {
    this.session = null;
    this.accountId = null;
    this.caches = Object.fromEntries(["Mailbox", "Email", "Thread", "Identity"].map((t) => [t, new TypeCache(t)]));
    this.status = new Observable("connecting"); // connecting | ready | offline | error
    this.listeners = new Set(); // fn(changedTypes: Set)
    this.events = null;
    this.full = new Set(); // Email ids whose full (reader) properties are cached
    this.running = 0; // requests in flight, kept under the server's maxConcurrentRequests
    this.waiting = [];
  }

  // --- session and requests ---------------------------------------------------------------------

  async connect() {
    const res = await fetch("/.well-known/jmap", { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!res.ok) throw new JmapError("session", `JMAP session: HTTP ${res.status}`, { status: res.status });
    this.session = await res.json();
    // The page talks to its own origin only (CSP connect-src 'self'): keep the paths of the URLs.
    for (const k of ["apiUrl", "downloadUrl", "uploadUrl", "eventSourceUrl"]) {
      if (this.session[k]) this.session[k] = this.session[k].replace(/^https?:\/\/[^/]+/i, "");
    }
    this.accountId = this.session.primaryAccounts[MAIL];
    if (!this.accountId) throw new JmapError("session", "this account has no mail");
    this.status.set("ready");
    return this;
  }

  get maxConcurrent() {
    return this.session?.capabilities?.[CORE]?.maxConcurrentRequests || 4;
  }

  async slot() {
    while (this.running >= this.maxConcurrent) await new Promise((r) => this.waiting.push(r));
    this.running++;
  }

  release() {
    this.running--;
    const next = this.waiting.shift();
    if (next) next();
  }

  get maxObjectsInGet() {
    return this.session?.capabilities?.[CORE]?.maxObjectsInGet || 500;
  }

  // methodCalls: [[name, args, callId]]; args.accountId filled in. Returns {callId: args} and
  // throws the first method-level error (RFC 8620 §3.6.2) unless allowErrors; opts.using adds
  // capabilities (e.g. VACATION) to the three every request declares.
  async call(methodCalls, opts = {}) {
    // RFC 8620 §2: at most maxConcurrentRequests at once; a "limit" refusal is tried again shortly
    for (let attempt = 0; ; attempt++) {
      await this.slot();
      try {
        return await this.callOnce(methodCalls, opts);
      } catch (err) {
        if (!(err.type === "urn:ietf:params:jmap:error:limit" || err.status === 429) || attempt >= 5) throw err;
      } finally {
        this.release();
      }
      await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
    }
  }

  async callOnce(methodCalls, { allowErrors = false, using = [] } = {}) {
    const body = {
      using: [...USING, ...using],
      methodCalls: methodCalls.map(([name, args, id], i) => [name, { accountId: this.accountId, ...args }, id || `c${i}`]),
    };
    const res = await fetch(this.session.apiUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": web.csrf || "" },
      body: JSON.stringify(body),
    });
    if (res.status === 401) web.onUnauthorized(); // the web session ended: back to the sign-in page
    if (!res.ok) {
      const problem = await res.json().catch(() => ({}));
      throw new JmapError(problem.type || "http", problem.detail || problem.message || `HTTP ${res.status}`, { status: res.status });
    }
    const data = await res.json();
    const out = {};
    for (const [name, args, id] of data.methodResponses) {
      if (name === "error" && !allowErrors) throw new JmapError(args.type, args.description, args);
      // the method's own response comes first; an implicit one follows with the same id
      // (EmailSubmission/set's Email/set, RFC 8621 §7.5) and must not replace it
      if (!(id in out)) out[id] = name === "error" ? { error: args } : args;
    }
    return out;
  }

  // --- caches ------------------------------------------------------------------------------------

  async loadAll(type, properties = null) {
    const r = await this.call([[`${type}/get`, { ids: null, properties }, "g"]]);
    const cache = this.caches[type];
    cache.records.clear();
    cache.put(r.g.list);
    cache.state = r.g.state;
    cache.bump();
    return r.g.list;
  }

  // Email/get for ids not cached yet (or not with full properties when full).
  async ensureEmails(ids, { full = false } = {}) {
    const cache = this.caches.Email;
    const missing = ids.filter((id) => !cache.get(id) || (full && !this.full.has(id)));
    for (let i = 0; i < missing.length; i += this.maxObjectsInGet) {
      const chunk = missing.slice(i, i + this.maxObjectsInGet);
      const args = full
        ? { ids: chunk, properties: EMAIL_FULL_PROPS, fetchTextBodyValues: true, maxBodyValueBytes: 512 * 1024 }
        : { ids: chunk, properties: EMAIL_LIST_PROPS };
      const r = await this.call([["Email/get", args, "g"]]);
      cache.put(r.g.list);
      if (full) chunk.forEach((id) => this.full.add(id));
      if (cache.state === null) cache.state = r.g.state;
    }
    if (missing.length) cache.bump();
    return ids.map((id) => cache.get(id)).filter(Boolean);
  }

  async ensureThreads(ids) {
    const cache = this.caches.Thread;
    const missing = [...new Set(ids)].filter((id) => !cache.get(id));
    if (!missing.length) return;
    const r = await this.call([["Thread/get", { ids: missing }, "g"]]);
    cache.put(r.g.list);
    if (cache.state === null) cache.state = r.g.state;
    cache.bump();
  }

  // Foo/changes since the cached state, then Foo/get of what changed (RFC 8620 §5.2).
  async sync(type) {
    const cache = this.caches[type];
    if (cache.state === null) return false;
    let changed = false;
    for (let guard = 0; guard < 20; guard++) {
      const r = await this.call([[`${type}/changes`, { sinceState: cache.state, maxChanges: 256 }, "c"]], { allowErrors: true });
      if (r.c.error) {
        if (r.c.error.type !== "cannotCalculateChanges") throw new JmapError(r.c.error.type, r.c.error.description);
        // too old: start again from nothing (lists re-query anyway)
        if (type === "Mailbox" || type === "Identity") await this.loadAll(type);
        else { cache.records.clear(); cache.state = null; this.full.clear(); cache.bump(); }
        return true;
      }
      const { created, updated, destroyed, newState, hasMoreChanges } = r.c;
      cache.drop(destroyed);
      destroyed.forEach((id) => this.full.delete(id));
      // Only records the page holds are refetched; new Emails and Threads arrive through queries.
      const keep = type === "Mailbox" || type === "Identity";
      const want = [...(keep ? created : []), ...updated.filter((id) => keep || cache.get(id))];
      // (an Email's content never changes, RFC 8621 §4: only keywords and mailboxIds; full stays full)
      for (let i = 0; i < want.length; i += this.maxObjectsInGet) {
        const ids = want.slice(i, i + this.maxObjectsInGet);
        const props = type === "Email" ? EMAIL_LIST_PROPS : null;
        const g = await this.call([[`${type}/get`, { ids, properties: props }, "g"]]);
        cache.put(g.g.list);
        cache.drop(g.g.notFound || []);
      }
      changed = changed || created.length + updated.length + destroyed.length > 0;
      cache.state = newState;
      if (!hasMoreChanges) break;
    }
    if (changed) cache.bump();
    return changed;
  }

  onChange(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }

  // `states`: the server's new state per type, when a push said so (listeners may skip what they hold).
  async syncTypes(types, states = {}) {
    const changed = new Set();
    for (const t of types) if (this.caches[t] && (await this.sync(t).catch(() => false))) changed.add(t);
    // A list shows Emails: any Email/Mailbox/Thread state change may move rows.
    for (const fn of [...this.listeners]) fn(new Set(types), states);
    return changed;
  }

  // --- push (RFC 8620 §7.3) ----------------------------------------------------------------------

  listen() {
    const tpl = this.session.eventSourceUrl;
    if (!tpl || this.events) return;
    const url = tpl.replace("{types}", "*").replace("{closeafter}", "no").replace("{ping}", "30");
    const es = new EventSource(url, { withCredentials: true });
    this.events = es;
    const seen = {};
    es.addEventListener("state", (ev) => {
      let data;
      try { data = JSON.parse(ev.data); } catch { return; }
      const changed = data.changed?.[this.accountId];
      if (!changed) return;
      const types = Object.keys(changed).filter((t) => seen[t] !== changed[t]);
      Object.assign(seen, changed);
      const relevant = types.map((t) => (t === "EmailDelivery" ? "Email" : t)).filter((t) => t in this.caches);
      if (relevant.length) this.syncTypes([...new Set(relevant)], changed);
      if (types.includes("EmailDelivery")) for (const fn of [...this.listeners]) fn(new Set(["EmailDelivery"]), changed);
    });
    let dropped = false;
    es.onopen = () => {
      this.status.set("ready");
      // reconnected: events may have been missed while away, so catch up on every type
      if (dropped) this.syncTypes(Object.keys(this.caches));
      dropped = false;
    };
    es.onerror = () => {
      dropped = true;
      this.status.set(es.readyState === EventSource.CLOSED ? "offline" : "connecting");
    };
  }

  close() {
    if (this.events) this.events.close();
    this.events = null;
  }

  // --- blobs (RFC 8620 §6) -----------------------------------------------------------------------

  downloadUrl(blobId, name, type = "application/octet-stream") {
    return this.session.downloadUrl
      .replace("{accountId}", encodeURIComponent(this.accountId))
      .replace("{blobId}", encodeURIComponent(blobId))
      .replace("{name}", encodeURIComponent(name || "attachment"))
      .replace("{type}", encodeURIComponent(type));
  }

  // Upload with progress (XMLHttpRequest: fetch has no upload progress). Resolves {blobId, type, size}.
  upload(file, onProgress) {
    const url = this.session.uploadUrl.replace("{accountId}", encodeURIComponent(this.accountId));
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.withCredentials = true;
      xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
      xhr.setRequestHeader("X-CSRF-Token", web.csrf || "");
      xhr.upload.onprogress = (ev) => ev.lengthComputable && onProgress && onProgress(ev.loaded / ev.total);
      xhr.onload = () => {
        let data = {};
        try { data = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
        if (xhr.status >= 200 && xhr.status < 300) resolve(data);
        else reject(new JmapError(data.type || "upload", data.detail || data.message || `upload failed (HTTP ${xhr.status})`));
      };
      xhr.onerror = () => reject(new JmapError("upload", "upload failed (network)"));
      xhr.send(file);
    });
  }

  // --- mail helpers ------------------------------------------------------------------------------

  mailboxes() { return [...this.caches.Mailbox.records.values()]; }
  mailboxByRole(role) { return this.mailboxes().find((m) => m.role === role); }
}

// The one client of the page (made on first use of the Mail view, closed on sign-out).
let current = null;
export function jmap() {
  if (!current) current = new Jmap();
  return current;
}
export function closeJmap() {
  if (current) current.close();
  current = null;
}
