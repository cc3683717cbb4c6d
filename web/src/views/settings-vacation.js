// Settings → Out of office (issue 16 item 3): the JMAP VacationResponse (RFC 8621 §8) — on/off,
// from/until, subject, text. The server answers at delivery with the Sieve vacation action: one
// reply per sender per week, never to lists or automatic mail (RFC 3834).
import { useEffect, useState } from "preact/hooks";
import { html } from "../lib/html.js";
import { jmap, VACATION } from "../lib/jmap.js";

const pad = (n) => String(n).padStart(2, "0");
// UTCDate (RFC 8620 §1.4) ⇄ the value of <input type="datetime-local"> in the browser's zone
function toLocal(utc) {
  if (!utc) return "";
  const d = new Date(utc);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
const toUtc = (local) => (local ? new Date(local).toISOString().replace(/\.\d{3}Z$/, "Z") : null);

async function call(methodCalls) {
  const j = jmap();
  if (!j.session) await j.connect();
  return j.call(methodCalls, { using: [VACATION] });
}

export function VacationSettings() {
  const [v, setV] = useState(null);
  const [msg, setMsg] = useState("");
  useEffect(() => {
    call([["VacationResponse/get", { ids: ["singleton"] }, "v"]])
      .then((r) => setV(r.v.list[0]), (e) => setMsg(e.message));
  }, []);
  async function submit(ev) {
    ev.preventDefault();
    const f = new FormData(ev.currentTarget);
    const patch = {
      isEnabled: f.get("enabled") === "on",
      fromDate: toUtc(f.get("from")),
      toDate: toUtc(f.get("until")),
      subject: f.get("subject") || null,
      textBody: f.get("text") || null,
    };
    if (patch.isEnabled && !patch.textBody) { setMsg("Write the reply's text first."); return; }
    try {
      const r = await call([
        ["VacationResponse/set", { update: { singleton: patch } }, "s"],
        ["VacationResponse/get", { ids: ["singleton"] }, "v"],
      ]);
      const failed = r.s.notUpdated && r.s.notUpdated.singleton;
      if (failed) { setMsg(failed.description || failed.type); return; }
      setV(r.v.list[0]);
      setMsg(patch.isEnabled ? "Automatic replies are on." : "Automatic replies are off.");
    } catch (e) { setMsg(e.message); }
  }
  return html`
    <section class="panel svac" aria-labelledby="svac-h">
      <h2 id="svac-h">Out of office</h2>
      <p class="muted">While this is on, each person who writes to you gets one automatic reply a week. Mailing lists and automatic mail get none.</p>
      ${v && html`
        <form class="svac-form" onSubmit=${submit}>
          <div class="field check">
            <input type="checkbox" id="svac-on" name="enabled" checked=${v.isEnabled} />
            <label for="svac-on">Send automatic replies</label>
          </div>
          <div class="svac-dates">
            <div class="field">
              <label for="svac-from">From (optional)</label>
              <input id="svac-from" name="from" type="datetime-local" value=${toLocal(v.fromDate)} />
            </div>
            <div class="field">
              <label for="svac-until">Until (optional)</label>
              <input id="svac-until" name="until" type="datetime-local" value=${toLocal(v.toDate)} />
            </div>
          </div>
          <div class="field">
            <label for="svac-subject">Subject</label>
            <input id="svac-subject" name="subject" maxlength="300" value=${v.subject || ""} placeholder="Out of office" />
          </div>
          <div class="field svac-text">
            <label for="svac-text">Message</label>
            <textarea id="svac-text" name="text" rows="6" maxlength="10000" value=${v.textBody || ""}></textarea>
          </div>
          <button type="submit" class="primary">Save</button>
        </form>`}
      <p class="status" role="status">${msg}</p>
    </section>`;
}
