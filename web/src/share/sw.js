// The share page's Service Worker (scope /p/): it answers the navigation to /p/_dl/<id> with a stream
// the page feeds, record by record, as it decrypts — the browser saves it as a download. Memory: the
// stream pulls one chunk at a time from the page (highWaterMark 1), so a few 64 KiB records at most.
const pending = new Map(); // id -> {stream, name, size}

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (e) => e.waitUntil(self.clients.claim()));

self.addEventListener("message", (e) => {
  const { id, name, size } = e.data || {};
  const port = e.ports[0];
  if (!id || !port) return;
  let wake = null;
  const stream = new ReadableStream({
    start(controller) {
      port.onmessage = ({ data }) => {
        if (data.chunk) controller.enqueue(new Uint8Array(data.chunk));
        else if (data.done) controller.close();
        else if (data.error) controller.error(new Error(data.error));
        if (wake) { wake(); wake = null; }
      };
    },
    pull() {
      port.postMessage("pull");
      return new Promise((resolve) => { wake = resolve; });
    },
    cancel() { port.postMessage("cancel"); },
  }, { highWaterMark: 1 });
  pending.set(id, { stream, name, size });
  port.postMessage("ready");
});

self.addEventListener("fetch", (e) => {
  const m = new URL(e.request.url).pathname.match(/^\/p\/_dl\/([A-Za-z0-9_-]+)$/);
  if (!m || !pending.has(m[1])) return;
  const { stream, name, size } = pending.get(m[1]);
  pending.delete(m[1]);
  e.respondWith(new Response(stream, {
    headers: {
      "Content-Type": "application/octet-stream",
      "Content-Disposition": `attachment; filename*=UTF-8''${encodeURIComponent(name)}`,
      "Content-Length": String(size),
      "X-Content-Type-Options": "nosniff",
    },
  }));
});
