// Entry point of the web app bundle (esbuild: src/main.js -> dist/assets/app-<hash>.js).
import "./app.css";
import { render } from "preact";
import { html } from "./lib/html.js";
import { interceptLinks } from "./lib/router.js";
import { App } from "./app.js";

const root = document.getElementById("app");
root.textContent = "";
interceptLinks(document.body);
render(html`<${App} />`, root);
