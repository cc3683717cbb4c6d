// The reader's preferences, kept in this browser (localStorage).
import { Observable } from "./store.js";

const KEY = "suite.prefs";
const DEFAULTS = { threads: true, notify: false, imageSenders: [] };

function load() {
  try { return { ...DEFAULTS, ...JSON.parse(localStorage.getItem(KEY) || "{}") }; } catch { return { ...DEFAULTS }; }
}

export const prefs = new Observable(load());
prefs.subscribe((v) => { try { localStorage.setItem(KEY, JSON.stringify(v)); } catch { /* private mode */ } });
