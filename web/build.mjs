// Bundles src/main.js (and the CSS it imports) into dist/assets/ with content-hashed names and
// writes dist/index.html pointing at them. `node build.mjs --watch` rebuilds on change.
import * as esbuild from "esbuild";
import { readFile, writeFile, rm, mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, "dist");
const watch = process.argv.includes("--watch");

const writeIndex = {
  name: "index-html",
  setup(build) {
    build.onEnd(async (result) => {
      if (result.errors.length) return;
      const names = {};
      for (const out of Object.keys(result.metafile.outputs)) {
        const base = path.basename(out);
        const m = base.match(/^(.*)-[A-Z0-9]{8}(\.[a-z]+)$/);
        if (m && !base.endsWith(".map")) names[m[1] + m[2]] = base;
      }
      // index.html: the app; share.html: the public page of a share link (/p/<token>).
      for (const page of ["index.html", "share.html"]) {
        let html = await readFile(path.join(here, page), "utf8");
        html = html.replace(/\{\{([\w.-]+)\}\}/g, (_, k) => {
          if (!names[k]) throw new Error(`build output ${k} missing`);
          return names[k];
        });
        await writeFile(path.join(dist, page), html);
      }
    });
  },
};

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
const options = {
  entryPoints: { app: path.join(here, "src/main.js"), share: path.join(here, "src/share/main.js"),
    "share-sw": path.join(here, "src/share/sw.js"),
    // The frame encryptor of end-to-end encrypted meetings (a worker; index.html names its URL).
    "meeting-e2ee": path.join(here, "src/meeting/e2ee-worker.js") },
  bundle: true,
  format: "esm",
  target: ["chrome100", "firefox100", "safari15"],
  minify: !watch,
  sourcemap: true,
  entryNames: "[name]-[hash]",
  assetNames: "[name]-[hash]",
  outdir: path.join(dist, "assets"),
  metafile: true,
  logLevel: "warning",
  plugins: [writeIndex],
};
if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
  console.log("watching web/src …");
} else {
  await esbuild.build(options);
}
