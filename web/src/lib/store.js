// A tiny observable value and the Preact hook that re-renders a component when it changes.
import { useEffect, useState } from "preact/hooks";

export class Observable {
  constructor(value) { this.value = value; this.listeners = new Set(); }
  get() { return this.value; }
  set(value) { this.value = value; for (const fn of [...this.listeners]) fn(value); }
  update(fn) { this.set(fn(this.value)); }
  subscribe(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }
}

// Re-render on every change of one or more observables (or anything with subscribe()).
export function useObservable(...sources) {
  const [, tick] = useState(0);
  useEffect(() => {
    const offs = sources.map((s) => s.subscribe(() => tick((n) => n + 1)));
    return () => offs.forEach((off) => off());
  }, sources);
  return sources.length === 1 && sources[0].get ? sources[0].get() : undefined;
}
