// The folder's items as a list or a grid: select (click, ctrl/shift, checkbox), open (folder link or
// preview), drag items onto a folder (or a breadcrumb) to move them. Names are always text.
import { html } from "../lib/html.js";
import { fmtBytes, fmtDate } from "../lib/format.js";
import { Icon } from "../lib/icons.js";
import { enc } from "./files-api.js";

export const DRAG_TYPE = "application/x-suite-paths";

const when = (t) => fmtDate(typeof t === "number" ? t * 1000 : t);
const icon = (f) => (f.type === "folder" ? "folder" : (f.media_type || "").startsWith("image/") ? "image" : "file");

export function sortItems(items, key, dir) {
  const m = dir === "desc" ? -1 : 1;
  const val = (f) => (key === "size" ? f.size : key === "modified" ? f.modified : f.name.toLowerCase());
  return [...items].sort((a, b) => {
    if (a.type !== b.type) return a.type === "folder" ? -1 : 1;
    const x = val(a), y = val(b);
    return (x < y ? -1 : x > y ? 1 : 0) * m;
  });
}

export function dropProps(target, onDropPaths) {
  return {
    onDragOver: (ev) => {
      if (!ev.dataTransfer.types.includes(DRAG_TYPE)) return;
      ev.preventDefault();
      ev.stopPropagation();
      ev.currentTarget.classList.add("drop-target");
    },
    onDragLeave: (ev) => ev.currentTarget.classList.remove("drop-target"),
    onDrop: (ev) => {
      ev.currentTarget.classList.remove("drop-target");
      const raw = ev.dataTransfer.getData(DRAG_TYPE);
      if (!raw) return;
      ev.preventDefault();
      ev.stopPropagation();
      const paths = JSON.parse(raw).filter((p) => p !== target && !target.startsWith(p + "/"));
      if (paths.length) onDropPaths(paths, target);
    },
  };
}

export function FileList({ items, mode, selected, onSelect, onOpen, onMoveInto }) {
  const click = (ev, f) => {
    if (ev.target.closest("a,button,input")) return;
    onSelect(f.path, ev.ctrlKey || ev.metaKey || ev.shiftKey ? "toggle" : "only");
  };
  const drag = (ev, f) => {
    const paths = selected.has(f.path) ? [...selected] : [f.path];
    ev.dataTransfer.setData(DRAG_TYPE, JSON.stringify(paths));
    ev.dataTransfer.effectAllowed = "move";
  };
  const nameLink = (f) => f.type === "folder"
    ? html`<a href=${"/files/" + enc(f.path)} class="fname">${f.name}</a>`
    : html`<a href=${"/api/files/content/" + enc(f.path)} class="fname" onClick=${(ev) => { ev.preventDefault(); onOpen(f); }}>${f.name}</a>`;
  const row = (f) => ({
    key: f.path,
    "data-path": f.path,
    class: `fitem${selected.has(f.path) ? " selected" : ""}`,
    "aria-selected": selected.has(f.path) ? "true" : "false",
    draggable: true,
    onDragStart: (ev) => drag(ev, f),
    onClick: (ev) => click(ev, f),
    onDblClick: () => onOpen(f),
    ...(f.type === "folder" ? dropProps(f.path, onMoveInto) : {}),
  });
  const check = (f) => html`<input type="checkbox" aria-label=${"Select " + f.name} checked=${selected.has(f.path)}
    onChange=${() => onSelect(f.path, "toggle")} />`;
  if (mode === "grid") {
    return html`
      <ul class="filegrid" role="listbox" aria-multiselectable="true" aria-label="Files">
        ${items.map((f) => html`
          <li role="option" ...${row(f)}>
            ${check(f)}
            <span class="big-ico"><${Icon} name=${icon(f)} size=${40} /></span>
            ${nameLink(f)}
            <span class="muted small">${f.type === "folder" ? "Folder" : fmtBytes(f.size)}</span>
          </li>`)}
      </ul>`;
  }
  return html`
    <table class="filelist files-table" aria-label="Files">
      <thead><tr>
        <th scope="col" class="sel"><span class="visually-hidden">Selected</span></th>
        <th scope="col">Name</th><th scope="col" class="num">Size</th><th scope="col" class="mod">Modified</th>
      </tr></thead>
      <tbody>
        ${items.map((f) => html`
          <tr ...${row(f)}>
            <td class="sel">${check(f)}</td>
            <td><span class="ico-cell"><${Icon} name=${icon(f)} size=${16} /></span>${nameLink(f)}</td>
            <td class="num">${f.type === "folder" ? "" : fmtBytes(f.size)}</td>
            <td class="mod">${when(f.modified)}</td>
          </tr>`)}
      </tbody>
    </table>`;
}
