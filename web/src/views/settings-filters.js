// Settings → Filters (issue 16 item 3): a rule builder — when From / To / Subject / size matches →
// move to a folder, flag, forward, discard, reply. The rules go to the server as data
// (PUT /api/sieve/rules); the server writes the Sieve script from them, quoting every value, so
// nothing typed here becomes Sieve syntax. The script itself is shown read-only for ManageSieve users.
import { useEffect, useState } from "preact/hooks";
import { html } from "../lib/html.js";
import { api } from "../lib/api.js";
import { jmap } from "../lib/jmap.js";

const FIELDS = [["subject", "Subject"], ["from", "From"], ["to", "To or Cc"], ["size", "Size"]];
const TEXT_OPS = [["contains", "contains"], ["not_contains", "does not contain"], ["is", "is"], ["not_is", "is not"],
  ["matches", "matches (* and ?)"]];
const SIZE_OPS = [["over", "is over"], ["under", "is under"]];
const ACTIONS = [["move", "Move to folder"], ["flag", "Flag"], ["forward", "Forward to"], ["discard", "Delete"],
  ["reply", "Reply with"]];
const KB = 1024;

const newCondition = () => ({ field: "subject", op: "contains", value: "" });
const newAction = (type = "move") => ({
  move: { type: "move", mailbox: "", keep: false },
  flag: { type: "flag", flag: "\\Flagged" },
  forward: { type: "forward", address: "", keep: true },
  discard: { type: "discard" },
  reply: { type: "reply", text: "", subject: null, days: 7 },
}[type]);
const newRule = () => ({ name: "", enabled: true, match: "all", conditions: [newCondition()], actions: [newAction()], stop: true });

const label = (list, v) => (list.find(([k]) => k === v) || [v, v])[1];

function describe(rule) {
  const when = rule.conditions.length === 0 ? "Every message"
    : rule.conditions.map((c) => c.field === "size"
      ? `size ${label(SIZE_OPS, c.op)} ${Math.round(c.value / KB)} KB`
      : `${label(FIELDS, c.field)} ${label(TEXT_OPS, c.op)} “${c.value}”`).join(rule.match === "all" ? " and " : " or ");
  const then = rule.actions.map((a) => ({
    move: () => `move to ${a.mailbox}${a.keep ? " (and keep in Inbox)" : ""}`,
    flag: () => "flag",
    forward: () => `forward to ${a.address}${a.keep ? "" : " (not kept)"}`,
    discard: () => "delete",
    reply: () => "reply",
  }[a.type]())).join(", ");
  return `${when} → ${then}`;
}

function ConditionRow({ c, i, set, remove }) {
  const size = c.field === "size";
  const ops = size ? SIZE_OPS : TEXT_OPS;
  function field(ev) {
    const f = ev.currentTarget.value;
    if ((f === "size") !== size) set(f === "size" ? { field: f, op: "over", value: 1024 * KB } : { field: f, op: "contains", value: "" });
    else set({ ...c, field: f });
  }
  return html`
    <li class="sfilt-row">
      <select aria-label=${`Condition ${i + 1} field`} value=${c.field} onChange=${field}>
        ${FIELDS.map(([k, v]) => html`<option value=${k}>${v}</option>`)}
      </select>
      <select aria-label=${`Condition ${i + 1} test`} value=${c.op} onChange=${(e) => set({ ...c, op: e.currentTarget.value })}>
        ${ops.map(([k, v]) => html`<option value=${k}>${v}</option>`)}
      </select>
      ${size
        ? html`<input aria-label=${`Condition ${i + 1} size in KB`} type="number" min="0" required
            value=${Math.round(c.value / KB)} onInput=${(e) => set({ ...c, value: Math.max(0, Number(e.currentTarget.value) || 0) * KB })} /> <span>KB</span>`
        : html`<input aria-label=${`Condition ${i + 1} value`} required maxlength="1000" value=${c.value}
            onInput=${(e) => set({ ...c, value: e.currentTarget.value })} />`}
      <button type="button" class="ghost small" aria-label=${`Remove condition ${i + 1}`} onClick=${remove}>✕</button>
    </li>`;
}

function ActionRow({ a, i, set, remove }) {
  const n = i + 1;
  return html`
    <li class="sfilt-row">
      <select aria-label=${`Action ${n}`} value=${a.type} onChange=${(e) => set(newAction(e.currentTarget.value))}>
        ${ACTIONS.map(([k, v]) => html`<option value=${k}>${v}</option>`)}
      </select>
      ${a.type === "move" && html`
        <input aria-label=${`Action ${n} folder`} list="sfilt-folders" required maxlength="500" value=${a.mailbox}
          onInput=${(e) => set({ ...a, mailbox: e.currentTarget.value })} />
        <label class="sfilt-check"><input type="checkbox" checked=${a.keep} onChange=${(e) => set({ ...a, keep: e.currentTarget.checked })} /> also keep in Inbox</label>`}
      ${a.type === "forward" && html`
        <input aria-label=${`Action ${n} address`} type="email" required maxlength="320" value=${a.address}
          onInput=${(e) => set({ ...a, address: e.currentTarget.value })} />
        <label class="sfilt-check"><input type="checkbox" checked=${a.keep} onChange=${(e) => set({ ...a, keep: e.currentTarget.checked })} /> keep a copy</label>`}
      ${a.type === "reply" && html`
        <textarea aria-label=${`Action ${n} reply text`} required maxlength="10000" rows="3" value=${a.text}
          onInput=${(e) => set({ ...a, text: e.currentTarget.value })}></textarea>`}
      <button type="button" class="ghost small" aria-label=${`Remove action ${n}`} onClick=${remove}>✕</button>
    </li>`;
}

function RuleEditor({ rule, onSave, onCancel, folders }) {
  const [r, setR] = useState(rule);
  const setAt = (key, i, v) => setR({ ...r, [key]: r[key].map((x, j) => (j === i ? v : x)) });
  const drop = (key, i) => setR({ ...r, [key]: r[key].filter((_, j) => j !== i) });
  return html`
    <form class="sfilt-editor" aria-label="Rule" onSubmit=${(ev) => { ev.preventDefault(); onSave(r); }}>
      <div class="field">
        <label for="sfilt-name">Rule name</label>
        <input id="sfilt-name" maxlength="200" value=${r.name} onInput=${(e) => setR({ ...r, name: e.currentTarget.value })} />
      </div>
      <fieldset>
        <legend>When a message arrives and
          <select aria-label="Match" value=${r.match} onChange=${(e) => setR({ ...r, match: e.currentTarget.value })}>
            <option value="all">all</option><option value="any">any</option>
          </select> of these match</legend>
        <ol class="sfilt-rows" aria-label="Conditions">
          ${r.conditions.map((c, i) => html`<${ConditionRow} key=${i} c=${c} i=${i} set=${(v) => setAt("conditions", i, v)} remove=${() => drop("conditions", i)} />`)}
        </ol>
        ${r.conditions.length === 0 && html`<p class="muted">No condition: every message.</p>`}
        <button type="button" class="small" onClick=${() => setR({ ...r, conditions: [...r.conditions, newCondition()] })}>Add condition</button>
      </fieldset>
      <fieldset>
        <legend>Then</legend>
        <ol class="sfilt-rows" aria-label="Actions">
          ${r.actions.map((a, i) => html`<${ActionRow} key=${i} a=${a} i=${i} set=${(v) => setAt("actions", i, v)} remove=${() => drop("actions", i)} />`)}
        </ol>
        <button type="button" class="small" onClick=${() => setR({ ...r, actions: [...r.actions, newAction("flag")] })}>Add action</button>
      </fieldset>
      <datalist id="sfilt-folders">${folders.map((f) => html`<option value=${f} />`)}</datalist>
      <div class="field check">
        <input type="checkbox" id="sfilt-stop" checked=${r.stop} onChange=${(e) => setR({ ...r, stop: e.currentTarget.checked })} />
        <label for="sfilt-stop">Stop here (later rules do not run for a matching message)</label>
      </div>
      <div class="sfilt-buttons">
        <button type="submit" class="primary" disabled=${r.actions.length === 0}>Save rule</button>
        <button type="button" onClick=${onCancel}>Cancel</button>
      </div>
    </form>`;
}

// The account's folders as "Parent/Child" paths (the store's separator), offered in the folder field.
function useFolders() {
  const [folders, setFolders] = useState([]);
  useEffect(() => {
    (async () => {
      const j = jmap();
      if (!j.session) await j.connect();
      const r = await j.call([["Mailbox/get", { ids: null, properties: ["name", "parentId", "role"] }, "m"]]);
      const byId = new Map(r.m.list.map((m) => [m.id, m]));
      const path = (m) => (m.parentId && byId.has(m.parentId) ? path(byId.get(m.parentId)) + "/" : "") + m.name;
      setFolders(r.m.list.filter((m) => m.role !== "inbox").map(path).sort());
    })().catch(() => {}); // the field still takes any name (":create" makes a missing folder)
  }, []);
  return folders;
}

export function FiltersSettings() {
  const [data, setData] = useState(null); // GET /api/sieve/rules
  const [script, setScript] = useState(null); // the active script's text
  const [editing, setEditing] = useState(null); // {index|-1, rule}
  const [msg, setMsg] = useState("");
  const folders = useFolders();
  async function load() {
    try {
      const [rules, active] = await Promise.all([api("/api/sieve/rules"), api("/api/sieve/active")]);
      setData(rules); setScript(active);
    } catch (e) { setMsg(e.message); }
  }
  useEffect(() => { load(); }, []);
  async function save(rules, done) {
    try {
      // the out-of-office part of the same script as it is now (it may have changed in another tab or over JMAP)
      const now = await api("/api/sieve/rules");
      const ooo = now.editable ? now.out_of_office : data.out_of_office || {};
      await api("/api/sieve/rules", { method: "PUT", body: { rules, out_of_office: ooo, active: true } });
      setEditing(null); setMsg(done); await load();
    } catch (e) { setMsg(e.message); }
  }
  if (!data) return html`<section class="panel" aria-labelledby="sfilt-h"><h2 id="sfilt-h">Filters</h2><p class="status" role="status">${msg || "Loading…"}</p></section>`;
  const rules = data.rules || [];
  const move = (i, d) => { const r = [...rules]; [r[i], r[i + d]] = [r[i + d], r[i]]; save(r, "Order saved."); };
  return html`
    <section class="panel sfilt" aria-labelledby="sfilt-h">
      <h2 id="sfilt-h">Filters</h2>
      <p class="muted">Rules run in this order on every message that arrives, before it reaches the Inbox.</p>
      ${!data.editable && html`
        <div class="sfilt-hand" role="note">
          <p>Your filters were written as a Sieve script (for example with a ManageSieve add-on), so they are not shown as rules here.</p>
          <button type="button" onClick=${() => { setData({ ...data, editable: true, rules: [], out_of_office: {} }); }}>Replace them with rules</button>
        </div>`}
      ${data.editable && html`
        <ol class="sfilt-list" aria-label="Rules">
          ${rules.map((r, i) => html`
            <li key=${i} class=${r.enabled ? "" : "sfilt-off"}>
              <div class="sfilt-text"><strong>${r.name || `Rule ${i + 1}`}</strong>${r.enabled ? "" : " (off)"}<br /><span class="muted">${describe(r)}</span></div>
              <div class="sfilt-tools">
                <button type="button" class="small" aria-label=${`Edit ${r.name || `rule ${i + 1}`}`} onClick=${() => setEditing({ index: i, rule: r })}>Edit</button>
                <button type="button" class="small" aria-label=${`Move ${r.name || `rule ${i + 1}`} up`} disabled=${i === 0} onClick=${() => move(i, -1)}>↑</button>
                <button type="button" class="small" aria-label=${`Move ${r.name || `rule ${i + 1}`} down`} disabled=${i === rules.length - 1} onClick=${() => move(i, 1)}>↓</button>
                <button type="button" class="small" aria-label=${`${r.enabled ? "Turn off" : "Turn on"} ${r.name || `rule ${i + 1}`}`}
                  onClick=${() => save(rules.map((x, j) => (j === i ? { ...x, enabled: !x.enabled } : x)), "Saved.")}>${r.enabled ? "Turn off" : "Turn on"}</button>
                <button type="button" class="small danger" aria-label=${`Delete ${r.name || `rule ${i + 1}`}`}
                  onClick=${() => save(rules.filter((_, j) => j !== i), "Rule deleted.")}>Delete</button>
              </div>
            </li>`)}
        </ol>
        ${rules.length === 0 && !editing && html`<p class="muted">No rules yet.</p>`}
        ${editing
          ? html`<${RuleEditor} rule=${editing.rule} folders=${folders} onCancel=${() => setEditing(null)}
              onSave=${(r) => save(editing.index < 0 ? [...rules, r] : rules.map((x, j) => (j === editing.index ? r : x)), "Rule saved.")} />`
          : html`<button type="button" class="primary" onClick=${() => setEditing({ index: -1, rule: newRule() })}>Add rule</button>`}`}
      <p class="status" role="status">${msg}</p>
      <details class="sfilt-raw">
        <summary>Sieve script${script && script.name ? ` (“${script.name}”, active)` : ""}</summary>
        <p class="muted">Read-only here. Mail programs with a ManageSieve add-on can edit it (then it is no longer shown as rules).</p>
        <pre aria-label="Sieve script" tabindex="0">${script && script.content ? script.content : "(no active script)"}</pre>
      </details>
    </section>`;
}
