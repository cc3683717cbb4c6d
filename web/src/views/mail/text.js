// A plain-text body as the reader shows it: links made clickable (new tab, no opener/referrer) and
// quoted blocks (lines starting with ">") folded. Everything is text nodes: nothing is parsed as HTML.
import { html } from "../../lib/html.js";

const URL_RE = /\b(https?:\/\/[^\s<>"')\]]+[^\s<>"'.,;:!?)\]])/g;

function linkify(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    out.push(html`<a href=${m[1]} target="_blank" rel="noopener noreferrer">${m[1]}</a>`);
    last = m.index + m[1].length;
  }
  out.push(text.slice(last));
  return out;
}

export function PlainText({ text }) {
  const lines = text.replace(/\r\n/g, "\n").split("\n");
  const blocks = [];
  let cur = null;
  for (const line of lines) {
    const quoted = /^\s*>/.test(line);
    if (!cur || cur.quoted !== quoted) { cur = { quoted, lines: [] }; blocks.push(cur); }
    cur.lines.push(line);
  }
  return html`<div class="msg-text">${blocks.map((b) => b.quoted
    ? html`<details class="quote"><summary>Show quoted text (${b.lines.length === 1 ? "1 line" : `${b.lines.length} lines`})</summary><div>${linkify(b.lines.join("\n"))}</div></details>`
    : linkify(b.lines.join("\n") + "\n"))}</div>`;
}
