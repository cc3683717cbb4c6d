// URLs for every view (history API): navigate() pushes, the back button pops, a reload keeps the place.
import { Observable } from "./store.js";

export const route = new Observable(parse());

function parse() {
  const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  return { path: location.pathname, parts, query: new URLSearchParams(location.search) };
}

export function navigate(to, { replace = false } = {}) {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  route.set(parse());
}

addEventListener("popstate", () => route.set(parse()));

const APP_PATH = /^\/(?:(?:mail|files|calls|settings|admin|m)(?:\/.*)?)?$/;

// Same-origin <a href> clicks without modifier keys stay in the app.
export function interceptLinks(root) {
  root.addEventListener("click", (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const a = ev.target.closest && ev.target.closest("a[href]");
    if (!a || a.target || a.hasAttribute("download")) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || !APP_PATH.test(url.pathname)) return; // APIs, share links, downloads
    ev.preventDefault();
    navigate(url.pathname + url.search);
  });
}
