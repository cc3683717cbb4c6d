// The Files view (a first version): the folder the URL names (/files/<path>), sizes, downloads, storage.
import { useEffect, useState } from "preact/hooks";
import { html } from "../lib/html.js";
import { api } from "../lib/api.js";
import { fmtBytes, fmtDate } from "../lib/format.js";
import { route } from "../lib/router.js";
import { useObservable } from "../lib/store.js";
import { StorageMeter } from "./settings.js";
import { Icon } from "../lib/icons.js";

const enc = (path) => path.split("/").filter(Boolean).map(encodeURIComponent).join("/");

export function FilesView({ user }) {
  const r = useObservable(route);
  const path = "/" + r.parts.slice(1).join("/");
  const [data, setData] = useState(null);
  const [error, setError] = useState("");
  useEffect(() => {
    let live = true;
    setError("");
    api(path === "/" ? "/api/files/list" : `/api/files/list/${enc(path)}`)
      .then((d) => live && setData(d), (e) => live && setError(e.message));
    return () => { live = false; };
  }, [path]);
  const crumbs = path.split("/").filter(Boolean);
  return html`
    <div class="page files">
      <div class="view-head">
        <h1>Files</h1>
        <${StorageMeter} user=${user} />
      </div>
      <nav aria-label="Folder path" class="crumbs">
        <a href="/files">My files</a>
        ${crumbs.map((c, i) => html`<span aria-hidden="true">›</span><a href=${"/files/" + enc(crumbs.slice(0, i + 1).join("/"))}>${c}</a>`)}
      </nav>
      ${error && html`<p class="error" role="alert">${error}</p>`}
      ${data && (data.children.length === 0
        ? html`<p class="empty">This folder is empty.</p>`
        : html`
          <table class="filelist">
            <thead><tr><th scope="col">Name</th><th scope="col" class="num">Size</th><th scope="col">Modified</th></tr></thead>
            <tbody>
              ${data.children.map((f) => html`
                <tr key=${f.id}>
                  <td>${f.type === "folder"
                    ? html`<a href=${"/files/" + enc(f.path)}><${Icon} name="folder" size=${16} /> ${f.name}</a>`
                    : html`<a href=${"/api/files/content/" + enc(f.path)} download=${f.name}>${f.name}</a>`}</td>
                  <td class="num">${f.type === "folder" ? "" : fmtBytes(f.size)}</td>
                  <td>${fmtDate(typeof f.modified === "number" ? f.modified * 1000 : f.modified)}</td>
                </tr>`)}
            </tbody>
          </table>`)}
    </div>`;
}
