// Simple rich text for the composer: bold, italic, underline, lists, quote. The editor is a
// contenteditable on the app's page, so what enters it is kept harmless: pastes go in as plain text,
// and the HTML that leaves (draft, send) passes DOMPurify with a small allow-list.
import DOMPurify from "dompurify";
import { useEffect, useRef } from "preact/hooks";
import { html } from "../../lib/html.js";

const ALLOWED = { ALLOWED_TAGS: ["b", "strong", "i", "em", "u", "ul", "ol", "li", "p", "br", "div", "blockquote"], ALLOWED_ATTR: [] };

export function cleanHtml(source) {
  return DOMPurify.sanitize(source, ALLOWED);
}

export function textToHtml(text) {
  const esc = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  return text.split("\n").map((l) => `<div>${l ? esc(l) : "<br>"}</div>`).join("");
}

const TOOLS = [
  ["bold", "Bold", "B"], ["italic", "Italic", "I"], ["underline", "Underline", "U"],
  ["insertUnorderedList", "Bulleted list", "•"], ["insertOrderedList", "Numbered list", "1."],
];

export function RichEditor({ initial, onChange }) {
  const ref = useRef(null);
  useEffect(() => { ref.current.innerHTML = cleanHtml(initial); }, []); // once: the editor owns its DOM
  const changed = () => onChange(cleanHtml(ref.current.innerHTML), ref.current.innerText);
  const run = (cmd) => { ref.current.focus(); document.execCommand(cmd, false); changed(); };
  return html`
    <div class="rich">
      <div class="rich-tools" role="toolbar" aria-label="Formatting">
        ${TOOLS.map(([cmd, label, glyph]) => html`<button type="button" class="ghost small" aria-label=${label} title=${label}
          onMouseDown=${(ev) => ev.preventDefault()} onClick=${() => run(cmd)}><span class=${"glyph " + cmd}>${glyph}</span></button>`)}
        <button type="button" class="ghost small" aria-label="Quote" title="Quote" onMouseDown=${(ev) => ev.preventDefault()}
          onClick=${() => { ref.current.focus(); document.execCommand("formatBlock", false, "blockquote"); changed(); }}>❝</button>
      </div>
      <div ref=${ref} id="c-body" class="rich-body" contenteditable="true" role="textbox" aria-multiline="true" aria-label="Message"
        onInput=${changed}
        onPaste=${(ev) => { ev.preventDefault(); document.execCommand("insertText", false, ev.clipboardData.getData("text/plain")); changed(); }}></div>
    </div>`;
}
