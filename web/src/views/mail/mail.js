import { html } from "../../lib/html.js";
export function MailView() { return html`<div class="page"><h1>Mail</h1></div>`; }
