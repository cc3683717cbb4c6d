// htm bound to Preact: html`<p>${text}</p>` — text is always inserted as text, never as markup.
import { h } from "preact";
import htm from "htm";

export const html = htm.bind(h);
