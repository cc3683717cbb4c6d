// Bundles src/main.js (and the CSS it imports) into dist/assets/ with content-hashed names and
// writes dist/index.html pointing at them. `node build.mjs --watch` rebuilds on change.
import * as esbuild from "esbuild";
import { readFile, writeFile, rm, mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, "dist");
const watch = process.argv.includes("--watch");

// What the browser loads before the app's first paint (the entry, the chunks it imports statically, its
// CSS) and what it loads only when asked (import()): dist/bundle.json, read by bench/web.
function firstLoad(metafile, entry) {
  const outs = metafile.outputs;
  const first = new Set();
  const lazy = new Set();
  const walk = (out) => {
    if (first.has(out)) return;
    first.add(out);
    if (outs[out].cssBundle) first.add(outs[out].cssBundle);
    for (const i of outs[out].imports) {
      if (i.external) continue;
      if (i.kind === "dynamic-import") lazy.add(i.path); else walk(i.path);
    }
  };
  walk(entry);
  const base = (o) => path.basename(o);
  return { first: [...first].map(base), lazy: [...lazy].filter((o) => !first.has(o)).map(base) };
}

// Output names of all builds ("app.js" -> "app-<hash>.js"); the pages are written once every name is known.
const names = {};
const writeIndex = {
  name: "index-html",
  setup(build) {
    build.onEnd(async (result) => {
      if (result.errors.length) return;
      for (const out of Object.keys(result.metafile.outputs)) {
        const base = path.basename(out);
        const m = base.match(/^(.*)-[A-Z0-9]{8}(\.[a-z]+)$/);
        if (m && !base.endsWith(".map") && !base.startsWith("chunk-")) names[m[1] + m[2]] = base;
      }
      const app = Object.keys(result.metafile.outputs).find((o) => /\/app-[A-Z0-9]{8}\.js$/.test(o));
      if (app) await writeFile(path.join(dist, "bundle.json"), JSON.stringify(firstLoad(result.metafile, app), null, 1));
      // index.html: the app; share.html: the public page of a share link (/p/<token>).
      const pages = {};
      for (const page of ["index.html", "share.html"]) {
        let missing = false;
        const text = (await readFile(path.join(here, page), "utf8")).replace(/\{\{([\w.-]+)\}\}/g, (_, k) => {
          if (!names[k]) missing = true;
          return names[k];
        });
        if (missing) return; // the other build has not finished yet
        pages[page] = text;
      }
      for (const [page, text] of Object.entries(pages)) await writeFile(path.join(dist, page), text);
    });
  },
};

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
const common = {
  bundle: true,
  format: "esm",
  target: ["chrome100", "firefox100", "safari15"],
  minify: !watch,
  sourcemap: true,
  entryNames: "[name]-[hash]",
  chunkNames: "chunk-[hash]",
  assetNames: "[name]-[hash]",
  outdir: path.join(dist, "assets"),
  metafile: true,
  logLevel: "warning",
  plugins: [writeIndex],
};
const builds = [
  // The app, split: what only some screens need (the PDF renderer, pdfjs-dist) is a chunk loaded by
  // import() when first used, so the first paint does not wait for it.
  { ...common, entryPoints: { app: path.join(here, "src/main.js") }, splitting: true },
  // The share page, split the same way (a PDF preview loads pdf.js as a chunk; the page stays small),
  { ...common, entryPoints: { share: path.join(here, "src/share/main.js") }, splitting: true },
  // workers that must each be one file: the share page's service worker, the frame encryptor of
  // end-to-end encrypted meetings and the encrypted upload's worker (index.html names their URLs),
  {
    ...common,
    entryPoints: {
      "share-sw": path.join(here, "src/share/sw.js"),
      "meeting-e2ee": path.join(here, "src/meeting/e2ee-worker.js"),
      "e2ee-upload": path.join(here, "src/lib/e2ee-upload-worker.js"),
    },
  },
  // and pdf.js's worker (served from our origin: CSP worker-src 'self'), kept at the syntax it ships with.
  {
    ...common,
    entryPoints: { "pdf-worker": path.join(here, "node_modules/pdfjs-dist/build/pdf.worker.min.mjs") },
    target: "esnext",
    sourcemap: false,
  },
];
if (watch) {
  for (const options of builds) await (await esbuild.context(options)).watch();
  console.log("watching web/src …");
} else {
  await Promise.all(builds.map((options) => esbuild.build(options)));
}
