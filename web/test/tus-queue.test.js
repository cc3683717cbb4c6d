// The upload queue's scheduling (src/lib/tus-uploads.js): two uploads at a time, but only one of them
// encrypted (each holds up to two encrypted chunks in the browser). Run by node's test runner
// (tests/e2e/test_web_units.py); the uploads themselves never reach a server here: only the states
// the queue gives them as it starts them are read.
import { test } from "node:test";
import assert from "node:assert/strict";

globalThis.location ??= { href: "http://127.0.0.1/", origin: "http://127.0.0.1" };
const { enqueue, uploads, cancel } = await import("../src/lib/tus-uploads.js");

const file = (name) => ({ name, size: 10, type: "text/plain", lastModified: 0, slice: () => new Blob(["x"]) });
// an encrypted job's source as e2ee-upload.js makes it; its file reader never answers (nothing is sent)
const source = () => ({ size: 42, fileReader: { openFile: () => new Promise(() => {}) }, httpStack: null, close() {} });

test("one encrypted upload at a time; a plain upload may run beside it", () => {
  enqueue([
    { file: file("a.e2ee"), folder: "/", source: source() },
    { file: file("b.e2ee"), folder: "/", source: source() },
    { file: file("c.txt"), folder: "/" },
  ]).catch(() => {});
  const states = Object.fromEntries(uploads.get().map((u) => [u.name, u.state]));
  assert.deepEqual(states, { "a.e2ee": "uploading", "b.e2ee": "queued", "c.txt": "uploading" });
  for (const u of uploads.get()) cancel(u.id);
});
