// The message list: one mailbox (or a search), by conversation or by message, windowed: only the
// rows on screen are in the DOM and only their pages (Email/query position+limit) are fetched, so a
// 100 000-message mailbox opens like an empty one. Select many, act on them, drag them to a folder.
import DOMPurify from "dompurify";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { html } from "../../lib/html.js";
import { EMAIL_LIST_PROPS, jmap } from "../../lib/jmap.js";
import { Icon } from "../../lib/icons.js";
import { navigate } from "../../lib/router.js";
import { useObservable } from "../../lib/store.js";
import { addrName, fmtDate } from "../../lib/format.js";
import { parseSearch } from "./search.js";
import { archive, markJunk, remove, setKeyword } from "./actions.js";
import { DRAG_TYPE, boxName } from "./mailboxes.js";

const ROW = 76;
// The open list's order, for the reader's keyboard shortcuts (j/k: next/previous).
export const openList = { ids: [], base: "" };
const PAGE = 50;
const OVERSCAN = 6;

// One open query: sparse ids by position, total, snippets; pages fetched on demand.
class ListQuery {
  constructor(args, onUpdate, snippets = false) {
    this.args = args; // {filter, sort, collapseThreads}
    this.wantSnippets = snippets; // a search: ask for highlighted snippets (SearchSnippet/get)
    this.ids = [];
    this.total = null;
    this.pages = new Map(); // page -> Promise
    this.snippets = new Map();
    this.onUpdate = onUpdate;
    this.generation = 0;
  }

  async page(n, force = false) {
    if (this.pages.has(n) && !force) return this.pages.get(n);
    const gen = this.generation;
    const p = this.fetchPage(n, gen).catch((err) => {
      this.pages.delete(n);
      this.error = err.message;
      this.onUpdate();
      setTimeout(() => { if (!this.pages.has(n)) this.page(n); }, 2000); // try again
    });
    this.pages.set(n, p);
    return p;
  }

  async fetchPage(n, gen) {
    const j = jmap();
    const calls = [
      ["Email/query", { ...this.args, position: n * PAGE, limit: PAGE, calculateTotal: true }, "q"],
      ["Email/get", { "#ids": { resultOf: "q", name: "Email/query", path: "/ids" }, properties: EMAIL_LIST_PROPS }, "g"],
    ];
    if (this.args.collapseThreads) {
      calls.push(["Thread/get", { "#ids": { resultOf: "g", name: "Email/get", path: "/list/*/threadId" } }, "t"]);
    }
    if (this.wantSnippets) {
      calls.push(["SearchSnippet/get", { filter: this.args.filter, "#emailIds": { resultOf: "q", name: "Email/query", path: "/ids" } }, "s"]);
    }
    const r = await j.call(calls, { allowErrors: true });
    if (r.q.error) throw new Error(r.q.error.description || r.q.error.type);
    if (gen !== this.generation) return;
    j.caches.Email.put(r.g.list || []);
    if (j.caches.Email.state === null && r.g.state) j.caches.Email.state = r.g.state;
    if (r.t && r.t.list) {
      j.caches.Thread.put(r.t.list);
      if (j.caches.Thread.state === null) j.caches.Thread.state = r.t.state;
    }
    if (r.s && r.s.list) for (const s of r.s.list) this.snippets.set(s.emailId, s);
    this.total = r.q.total ?? Math.max(this.total || 0, r.q.position + r.q.ids.length);
    this.ids.length = this.total;
    r.q.ids.forEach((id, i) => { this.ids[r.q.position + i] = id; });
    this.queryState = r.q.queryState;
    this.error = null;
    this.onUpdate();
    const pending = this.pending;
    this.pending = undefined;
    if (pending && pending !== this.queryState) this.refresh(pending);
  }

  // Something changed on the server: fetch again the pages the user has seen (new ones on demand).
  // `emailState`, from a push: the list is as of an Email state (its queryState, RFC 8621 §4.4), so a
  // push of that same state (the one EventSource sends on connecting, RFC 8620 §7.3) or of one being
  // fetched already changes nothing; while the first page is on its way, it is compared when it lands.
  refresh(emailState) {
    if (emailState) {
      if (emailState === this.queryState || emailState === this.refreshingFor) return Promise.resolve();
      if (this.queryState === undefined && this.pages.size) { this.pending = emailState; return Promise.resolve(); }
      this.refreshingFor = emailState;
    }
    this.generation++;
    const seen = [...this.pages.keys()];
    this.pages.clear();
    return Promise.all(seen.map((n) => this.page(n)));
  }
}

function Snippet({ value, fallback }) {
  if (!value) return fallback;
  // The server's snippet is HTML with <mark>: keep <mark> and nothing else.
  const clean = DOMPurify.sanitize(value, { ALLOWED_TAGS: ["mark"], ALLOWED_ATTR: [] });
  return html`<span class="snippet" dangerouslySetInnerHTML=${{ __html: clean }} />`;
}

function Row({ email, index, open, selected, onToggle, base, threads, snippet, dragIds }) {
  if (!email) {
    return html`<div class="msg-row placeholder" style=${{ top: index * ROW + "px" }} aria-hidden="true">
      <span class="check"></span><span class="from">loading</span><span class="date"></span><span class="subject">loading</span></div>`;
  }
  const j = jmap();
  const unread = !email.keywords?.$seen;
  const flagged = !!email.keywords?.$flagged;
  const thread = threads ? j.caches.Thread.get(email.threadId) : null;
  const count = thread ? thread.emailIds.length : 1;
  const from = (email.from || []).map(addrName).join(", ") || "(no sender)";
  const subject = email.subject || "(no subject)";
  const href = `${base}/${encodeURIComponent(email.id)}${base.endsWith("/search") ? location.search : ""}`;
  return html`
    <div class=${`msg-row${unread ? " unread" : ""}${selected ? " selected" : ""}${open ? " open" : ""}`}
       style=${{ top: index * ROW + "px" }} data-email-id=${email.id}
       draggable="true" onDragStart=${(ev) => {
         ev.dataTransfer.setData(DRAG_TYPE, JSON.stringify(dragIds(email)));
         ev.dataTransfer.effectAllowed = "move";
       }}>
      <span class="check">
        <input type="checkbox" checked=${selected} aria-label=${`Select: ${subject}`}
          onClick=${(ev) => onToggle(email.id, ev.shiftKey)} />
      </span>
      <a href=${href} class="row-link" aria-current=${open ? "true" : undefined} draggable="false">
        <span class="from">${from}${count > 1 && html`<span class="tcount" aria-label=${`${count} messages`}>${count}</span>`}</span>
        <span class="date">${flagged && html`<span class="flag" aria-label="Flagged"><${Icon} name="flag" size=${13} /> </span>`}${fmtDate(email.receivedAt)}${email.hasAttachment && html`<span class="clip" aria-label="Has attachment"><${Icon} name="paperclip" size=${13} /></span>`}</span>
        <span class="subject">${subject}</span>
        <span class="preview"><${Snippet} value=${snippet && (snippet.preview || snippet.subject)} fallback=${email.preview || ""} /></span>
      </a>
    </div>`;
}

export function MessageList({ mailbox, search, base, openId, threads, onFolders }) {
  const j = jmap();
  const [, setTick] = useState(0);
  const [selected, setSelected] = useState(new Set());
  const [range, setRange] = useState([0, 20]);
  const [lastClicked, setLastClicked] = useState(null);
  const scroller = useRef(null);
  useObservable(j.caches.Email.version, j.caches.Thread.version);

  const args = useMemo(() => {
    let filter;
    if (search !== null) {
      filter = parseSearch(search);
      const skip = ["trash", "junk"].map((r) => j.mailboxByRole(r)).filter(Boolean).map((m) => m.id);
      if (skip.length) filter = { operator: "AND", conditions: [filter, { inMailboxOtherThan: skip }] };
    } else filter = mailbox ? { inMailbox: mailbox.id } : {};
    return { filter, sort: [{ property: "receivedAt", isAscending: false }], collapseThreads: !!threads };
  }, [mailbox && mailbox.id, search, threads]);

  const q = useMemo(() => new ListQuery(args, () => setTick((t) => t + 1), search !== null), [args]);

  // first page now; the rest as the user scrolls
  useEffect(() => { setSelected(new Set()); q.page(0); if (scroller.current) scroller.current.scrollTop = 0; }, [q]);
  useEffect(() => j.onChange((types, states) => {
    if (types.has("Email") || types.has("Thread") || types.has("Mailbox") || types.has("EmailDelivery")) q.refresh(states?.Email);
  }), [q]);
  useEffect(() => {
    const [a, b] = range;
    for (let p = Math.floor(a / PAGE); p <= Math.floor(b / PAGE); p++) if (q.total === null || p * PAGE < q.total) q.page(p);
  }, [range, q, q.total]);

  function onScroll() {
    const el = scroller.current;
    if (!el) return;
    const first = Math.max(0, Math.floor(el.scrollTop / ROW) - OVERSCAN);
    const last = Math.ceil((el.scrollTop + el.clientHeight) / ROW) + OVERSCAN;
    if (first !== range[0] || last !== range[1]) setRange([first, last]);
  }
  useEffect(() => {
    onScroll();
    const ro = new ResizeObserver(onScroll);
    if (scroller.current) ro.observe(scroller.current);
    return () => ro.disconnect();
  }, []);

  // ids acted on: a conversation row stands for its messages in this mailbox (all of them when searching)
  function expand(ids) {
    if (!threads) return ids;
    const out = [];
    for (const id of ids) {
      const e = j.caches.Email.get(id);
      const t = e && j.caches.Thread.get(e.threadId);
      if (!t) { out.push(id); continue; }
      for (const tid of t.emailIds) {
        const te = j.caches.Email.get(tid);
        if (tid === id || !mailbox || !te || te.mailboxIds?.[mailbox.id]) out.push(tid);
      }
    }
    return [...new Set(out)];
  }
  const dragIds = (email) => expand(selected.has(email.id) ? [...selected] : [email.id]);

  function toggle(id, shift) {
    const next = new Set(selected);
    if (shift && lastClicked !== null) {
      const a = q.ids.indexOf(lastClicked), b = q.ids.indexOf(id);
      if (a >= 0 && b >= 0) for (let i = Math.min(a, b); i <= Math.max(a, b); i++) if (q.ids[i]) next.add(q.ids[i]);
    } else if (next.has(id)) next.delete(id);
    else next.add(id);
    setLastClicked(id);
    setSelected(next);
  }

  openList.ids = q.ids;
  openList.base = base;
  const sel = [...selected];
  const allLoaded = q.ids.filter(Boolean);
  const fromId = mailbox ? mailbox.id : null;
  async function act(fn) {
    const ids = expand(sel);
    setSelected(new Set());
    await fn(ids);
  }
  const anyUnread = sel.some((id) => !j.caches.Email.get(id)?.keywords?.$seen);
  const anyUnflagged = sel.some((id) => !j.caches.Email.get(id)?.keywords?.$flagged);

  const title = search !== null ? "Search results" : mailbox ? boxName(mailbox) : "Mail";
  const [first, last] = range;
  const rows = [];
  if (q.total) for (let i = first; i < Math.min(last, q.total); i++) rows.push(i);

  return html`
    <section class="mail-list" aria-label="Messages">
      <div class="list-head">
        <div class="title">
          <button type="button" class="ghost icon folders-btn" aria-label="Folders" onClick=${onFolders}><${Icon} name="menu" /></button>
          <h1>${title}</h1>
          <button type="button" class="ghost icon new-msg-small folders-btn" aria-label="Compose"
            onClick=${() => import("./compose.js").then((m) => m.openComposer({}))}><${Icon} name="pencil" /></button>
        </div>
        <form class="searchbox" role="search" aria-label="Search mail" onSubmit=${(ev) => {
          ev.preventDefault();
          const v = new FormData(ev.currentTarget).get("q").trim();
          navigate(v ? `/mail/search?q=${encodeURIComponent(v)}` : "/mail");
        }}>
          <${Icon} name="search" size=${16} />
          <input type="search" name="q" aria-label="Search" placeholder="Search mail" title="from: to: subject: has:attachment before: after: and words"
            defaultValue=${search || ""} key=${search || ""} />
        </form>
        <div class="toolbar" role="toolbar" aria-label="Selected messages">
          <input type="checkbox" aria-label="Select all" checked=${sel.length > 0 && sel.length === allLoaded.length}
            onChange=${(ev) => setSelected(ev.currentTarget.checked ? new Set(allLoaded) : new Set())} />
          ${sel.length > 0 ? html`
            <span class="sel-count">${sel.length} selected</span>
            <button type="button" class="ghost small" onClick=${() => act((ids) => setKeyword(ids, "$seen", anyUnread))}>${anyUnread ? "Mark read" : "Mark unread"}</button>
            <button type="button" class="ghost small" onClick=${() => act((ids) => setKeyword(ids, "$flagged", anyUnflagged))}>${anyUnflagged ? "Flag" : "Unflag"}</button>
            <button type="button" class="ghost small" onClick=${() => act((ids) => archive(ids, fromId))}>Archive</button>
            <button type="button" class="ghost small" onClick=${() => act((ids) => markJunk(ids, fromId))}>Junk</button>
            <button type="button" class="ghost small" onClick=${() => act((ids) => remove(ids, fromId))}>Delete</button>`
          : html`<span class="sel-count">${q.total === null ? "Loading…" : q.total === 0 ? "" : `${q.total} ${threads ? (q.total === 1 ? "conversation" : "conversations") : q.total === 1 ? "message" : "messages"}`}</span>`}
        </div>
      </div>
      <div class="list-scroll" ref=${scroller} onScroll=${onScroll}>
        ${q.error && html`<p class="error" role="alert">${q.error}</p>`}
        ${q.total === 0 && html`<p class="empty">${search !== null ? "No messages match." : "No messages here."}</p>`}
        <div class="list-inner" style=${{ height: (q.total || 0) * ROW + "px" }}>
          ${rows.map((i) => {
            const id = q.ids[i];
            return html`<${Row} key=${id || "p" + i} index=${i} email=${id && j.caches.Email.get(id)} open=${id === openId}
              selected=${selected.has(id)} onToggle=${toggle} base=${base} threads=${threads} snippet=${q.snippets.get(id)} dragIds=${dragIds} />`;
          })}
        </div>
      </div>
    </section>`;
}
