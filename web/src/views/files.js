// The Files view: the folder the URL names (/files/<path>), with breadcrumbs, list or grid, sort, select
// many, search by name; uploads (drop files or folders anywhere on the view, or the pickers); rename,
// move (also by dragging onto a folder), copy, delete to trash, versions, previews, share links; the
// trash (?tab=trash) and my links (?tab=links); the storage bar (mail and files, from /api/me).
import "./files.css";
import { useEffect, useMemo, useState } from "preact/hooks";
import { html } from "../lib/html.js";
import { route, navigate } from "../lib/router.js";
import { useObservable } from "../lib/store.js";
import { fmtBytes, fmtFullDate } from "../lib/format.js";
import { StorageMeter } from "./settings.js";
import { Icon } from "../lib/icons.js";
import { refreshMe } from "../app.js";
import { onUploaded } from "../lib/tus-uploads.js";
import * as F from "./files-api.js";
import { FileList, sortItems, dropProps, DRAG_TYPE } from "./files-list.js";
import { UploadButtons, UploadPanel, filesFromDrop, uploadInto } from "./files-upload.js";
import { Prompt, Versions, Preview } from "./files-dialogs.js";
import { ShareDialog, MyLinks } from "./share-dialog.js";

function useFolder(path) {
  const [data, setData] = useState(null);
  const [error, setError] = useState("");
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setError("");
    F.list(path).then((d) => live && setData(d), (e) => live && setError(e.message));
    return () => { live = false; };
  }, [path, tick]);
  useEffect(() => onUploaded(() => { setTick((n) => n + 1); refreshMe(); }), []);
  return { data, error, reload: () => { setTick((n) => n + 1); refreshMe(); } };
}

function Crumbs({ path, onMoveInto }) {
  const parts = path.split("/").filter(Boolean);
  return html`
    <nav aria-label="Folder path" class="crumbs">
      <a href="/files" ...${dropProps("/", onMoveInto)}>My files</a>
      ${parts.map((c, i) => {
        const p = "/" + parts.slice(0, i + 1).join("/");
        return html`<span aria-hidden="true">›</span><a href=${"/files/" + F.enc(p)} ...${dropProps(p, onMoveInto)}
          aria-current=${i === parts.length - 1 ? "page" : undefined}>${c}</a>`;
      })}
    </nav>`;
}

// Names containing the search anywhere in the tree (the list above filters this folder at once).
function SearchEverywhere({ q, onOpen }) {
  const [found, setFound] = useState(null);
  useEffect(() => {
    let live = true;
    setFound(null);
    const t = setTimeout(() => F.search(q).then((d) => live && setFound(d.results), () => live && setFound([])), 250);
    return () => { live = false; clearTimeout(t); };
  }, [q]);
  return html`
    <section class="panel search-all" aria-label="Search results in all folders">
      <h2 class="small">In all folders</h2>
      ${found === null && html`<p role="status" class="muted">Searching…</p>`}
      ${found && found.length === 0 && html`<p class="muted">No file or folder by that name.</p>`}
      ${found && found.length > 0 && html`<ul>${found.map((f) => html`<li key=${f.path}>
        <a href=${f.type === "folder" ? "/files/" + F.enc(f.path) : "/files/" + F.enc(F.parentOf(f.path))}
          onClick=${f.type === "file" ? (ev) => { ev.preventDefault(); onOpen(f); } : undefined}>${f.path}</a>
        <span class="muted small">${f.type === "folder" ? "Folder" : fmtBytes(f.size)}</span></li>`)}</ul>`}
    </section>`;
}

function Trash({ onChanged }) {
  const [items, setItems] = useState(null);
  const [err, setErr] = useState("");
  const load = () => F.trash().then((d) => setItems(d.items), (e) => setErr(e.message));
  useEffect(load, []);
  const act = (fn) => async () => { try { await fn(); await load(); onChanged(); } catch (e) { setErr(e.message); } };
  return html`
    ${err && html`<p class="error" role="alert">${err}</p>`}
    ${items && items.length === 0 && html`<p class="empty">The trash is empty. Deleted items stay here 30 days.</p>`}
    ${items && items.length > 0 && html`
      <div class="toolbar"><button type="button" class="danger" onClick=${act(() => F.purge("all"))}>Empty trash</button></div>
      <table class="filelist" aria-label="Trash">
        <thead><tr><th scope="col">Name</th><th scope="col" class="num">Size</th><th scope="col">Deleted</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
        <tbody>${items.map((n) => html`
          <tr key=${n.id}>
            <td class="fname">${n.name}</td>
            <td class="num">${n.type === "folder" ? "Folder" : fmtBytes(n.size)}</td>
            <td>${fmtFullDate(n.trashed * 1000)}</td>
            <td class="actions">
              <button type="button" class="small" aria-label=${"Restore " + n.name} onClick=${act(() => F.restore(n.id))}>Restore</button>
              <button type="button" class="small danger" aria-label=${"Delete forever " + n.name} onClick=${act(() => F.purge(n.id))}>Delete forever</button>
            </td>
          </tr>`)}</tbody>
      </table>`}`;
}

// What can be done with the selected items, shown only while something is selected (as Nextcloud and
// Google Drive do): a bar floating at the bottom of the window, so the list never moves under the
// pointer when the first checkbox is ticked. Share, Rename and Versions take one item.
function SelectionBar({ sel, one, onClear, onDialog, onDelete }) {
  const n = sel.length;
  return html`
    <div class="selbar" role="region" aria-label="Selected items">
      <span class="sel-count" role="status">${n} selected</span>
      <button type="button" class="ghost icon" aria-label="Clear selection" title="Clear selection" onClick=${onClear}><${Icon} name="x" /></button>
      <span class="selbar-actions">
        ${one && one.type === "file" && html`<a class="button" href=${F.contentUrl(one.path)} download=${one.name}>Download</a>`}
        ${one && one.type === "folder" && html`<a class="button" href=${F.zipUrl(one.path)} download=${one.name + ".zip"}>Download ZIP</a>`}
        <button type="button" disabled=${!one} title=${one ? undefined : "Select one item to share it"} onClick=${() => onDialog({ type: "share", item: one })}>Share</button>
        <button type="button" disabled=${!one} title=${one ? undefined : "Select one item to rename it"} onClick=${() => onDialog({ type: "rename", item: one })}>Rename</button>
        <button type="button" onClick=${() => onDialog({ type: "move" })}>Move</button>
        <button type="button" onClick=${() => onDialog({ type: "copy" })}>Copy</button>
        <button type="button" disabled=${!(one && one.type === "file")} title=${one && one.type === "file" ? undefined : "Select one file to see its versions"}
          onClick=${() => onDialog({ type: "versions", item: one })}>Versions</button>
        <button type="button" class="danger" onClick=${onDelete}>Delete</button>
      </span>
    </div>`;
}

export function FilesView({ user }) {
  const r = useObservable(route);
  const path = "/" + r.parts.slice(1).join("/");
  const tab = r.query.get("tab") || "files";
  const { data, error, reload } = useFolder(path);
  const [selected, setSelected] = useState(new Set());
  const [mode, setMode] = useState(() => localStorage.getItem("suite.files.mode") || "list");
  const [sort, setSort] = useState("name:asc");
  const [q, setQ] = useState("");
  const [dialog, setDialog] = useState(null);
  const [msg, setMsg] = useState("");
  const [dragging, setDragging] = useState(false);
  useEffect(() => { setSelected(new Set()); setQ(""); }, [path]);
  useEffect(() => localStorage.setItem("suite.files.mode", mode), [mode]);
  useEffect(() => { refreshMe(); }, [tab]); // fresh storage figures

  const items = useMemo(() => {
    if (!data) return [];
    const [k, d] = sort.split(":");
    const needle = q.trim().toLowerCase();
    return sortItems(data.children.filter((f) => !needle || f.name.toLowerCase().includes(needle)), k, d);
  }, [data, sort, q]);
  const sel = items.filter((f) => selected.has(f.path));
  const one = sel.length === 1 ? sel[0] : null;

  function select(p, how) {
    setSelected((old) => {
      if (how === "only") return new Set(old.size === 1 && old.has(p) ? [] : [p]);
      const s = new Set(old);
      s.has(p) ? s.delete(p) : s.add(p);
      return s;
    });
  }
  async function run(label, fn) {
    setMsg("");
    try { await fn(); setMsg(label); } catch (e) { setMsg("Error: " + e.message); }
    setSelected(new Set());
    reload();
  }
  const moveInto = (paths, dest) => run(`Moved ${paths.length} item(s) to ${dest === "/" ? "My files" : F.baseName(dest)}`,
    () => Promise.all(paths.map((p) => F.move(p, F.join(dest, F.baseName(p))))));
  const open = (f) => (f.type === "folder" ? navigate("/files/" + F.enc(f.path)) : setDialog({ type: "preview", item: f }));

  // drops of files/folders from the desktop anywhere on the view (internal drags carry DRAG_TYPE)
  const dropZone = {
    onDragOver: (ev) => {
      if (ev.dataTransfer.types.includes(DRAG_TYPE) || !ev.dataTransfer.types.includes("Files")) return;
      ev.preventDefault(); setDragging(true);
    },
    onDragLeave: (ev) => { if (ev.currentTarget === ev.target) setDragging(false); },
    onDrop: async (ev) => {
      if (ev.dataTransfer.types.includes(DRAG_TYPE)) return;
      ev.preventDefault(); setDragging(false);
      const picked = await filesFromDrop(ev.dataTransfer);
      if (picked.length) uploadInto(path, picked);
    },
  };
  // Clearing the selection removes its bar: focus in the bar goes to the list's first checkbox.
  const clearSelection = () => {
    const inBar = document.activeElement?.closest(".selbar");
    setSelected(new Set());
    if (inBar) document.querySelector(".files .fitem input[type=checkbox]")?.focus();
  };
  // Escape clears the selection (not when it closes a dialog or clears the search box)
  const onKeyDown = (ev) => {
    if (ev.key !== "Escape" || !selected.size || ev.target.closest("dialog, input[type=search]")) return;
    clearSelection();
  };
  const close = () => setDialog(null);
  const folders = items.filter((f) => f.type === "folder").map((f) => f.path);
  const tabLink = (t, label) => html`<a href=${t === "files" ? "/files" + (path === "/" ? "" : "/" + F.enc(path)) : `/files?tab=${t}`}
    aria-current=${tab === t ? "page" : undefined}>${label}</a>`;

  return html`
    <div class=${"page files" + (dragging ? " dragging" : "") + (sel.length ? " has-selection" : "")} onKeyDown=${onKeyDown}
      ...${tab === "files" ? dropZone : {}}>
      <div class="view-head">
        <h1>Files</h1>
        <div class="quota"><span class="muted small">Mail and files</span><${StorageMeter} user=${user} /></div>
      </div>
      <nav class="files-tabs" aria-label="Files sections">${tabLink("files", "My files")}${tabLink("trash", "Trash")}${tabLink("links", "My links")}</nav>
      ${tab === "trash" && html`<${Trash} onChanged=${reload} />`}
      ${tab === "links" && html`<${MyLinks} />`}
      ${tab === "files" && html`
        <${Crumbs} path=${path} onMoveInto=${moveInto} />
        <div class="toolbar files-toolbar">
          <${UploadButtons} folder=${path} />
          <button type="button" onClick=${() => setDialog({ type: "mkdir" })}>New folder</button>
          <button type="button" onClick=${() => setDialog({ type: "share", item: null })}>Encrypted link</button>
        </div>
        ${sel.length > 0 && html`<${SelectionBar} sel=${sel} one=${one} onClear=${clearSelection} onDialog=${setDialog}
          onDelete=${() => run(`Moved ${sel.length} item(s) to the trash`, () => Promise.all(sel.map((f) => F.remove(f.path))))} />`}
        <div class="toolbar files-tools">
          <input type="search" aria-label="Search by name" placeholder="Search by name" value=${q} onInput=${(e) => setQ(e.currentTarget.value)} />
          <label class="small">Sort by <select aria-label="Sort by" value=${sort} onChange=${(e) => setSort(e.currentTarget.value)}>
            <option value="name:asc">Name A–Z</option><option value="name:desc">Name Z–A</option>
            <option value="modified:desc">Newest</option><option value="modified:asc">Oldest</option>
            <option value="size:desc">Largest</option><option value="size:asc">Smallest</option>
          </select></label>
          <button type="button" class="small" aria-pressed=${mode === "grid"} onClick=${() => setMode(mode === "grid" ? "list" : "grid")}>Grid view</button>
          <button type="button" class="small" onClick=${() => setSelected(new Set(items.map((f) => f.path)))} disabled=${!items.length}>Select all</button>
        </div>
        ${msg && html`<p class=${msg.startsWith("Error") ? "error" : "muted"} role="status">${msg}</p>`}
        <${UploadPanel} />
        ${error && html`<p class="error" role="alert">${error}</p>`}
        ${data && items.length === 0 && html`<p class="empty drop-hint">${q ? "Nothing here by that name." : "This folder is empty. Drop files or folders here, or use Upload."}</p>`}
        ${items.length > 0 && html`<${FileList} items=${items} mode=${mode} selected=${selected} onSelect=${select} onOpen=${open} onMoveInto=${moveInto} />`}
        ${q.trim() && html`<${SearchEverywhere} q=${q.trim()} onOpen=${open} />`}
      `}
      ${dialog && dialog.type === "preview" && html`<${Preview} item=${dialog.item} onClose=${close} />`}
      ${dialog && dialog.type === "versions" && html`<${Versions} item=${dialog.item} onClose=${close} onChanged=${reload} />`}
      ${dialog && dialog.type === "share" && html`<${ShareDialog} item=${dialog.item} onClose=${close} onCreated=${reload} />`}
      ${dialog && dialog.type === "mkdir" && html`<${Prompt} title="New folder" label="Folder name" action="Create" onClose=${close}
        onSubmit=${(name) => F.mkdir(F.join(path, name)).then(reload)} />`}
      ${dialog && dialog.type === "rename" && html`<${Prompt} title=${"Rename " + dialog.item.name} label="New name" action="Rename"
        initial=${dialog.item.name} onClose=${close} onSubmit=${(name) => F.move(dialog.item.path, F.join(path, name)).then(() => { setSelected(new Set()); reload(); })} />`}
      ${dialog && (dialog.type === "move" || dialog.type === "copy") && html`<${Prompt}
        title=${(dialog.type === "move" ? "Move " : "Copy ") + sel.length + " item(s)"} label="Destination folder" action=${dialog.type === "move" ? "Move" : "Copy"}
        initial=${path} list=${["/", ...folders]} hint="A folder path such as /Projects/2025 (created when missing)." onClose=${close}
        onSubmit=${async (dest) => {
          const d = "/" + dest.split("/").filter(Boolean).join("/");
          if (d !== "/") await F.mkdir(d, true).catch(() => {});
          const op = dialog.type === "move" ? F.move : F.copy;
          for (const f of sel) await op(f.path, F.join(d, f.name));
          setSelected(new Set()); reload();
        }} />`}
    </div>`;
}
