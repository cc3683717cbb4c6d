// The Calls view: contacts with presence, audio/video calls, screen share, history. The markup is
// rendered once and driven by lib/calls-engine.js; it stays mounted (hidden on other views) so an
// incoming call rings wherever the user is.
import { Component } from "preact";
import { useEffect } from "preact/hooks";
import { html } from "../lib/html.js";
import { startCalls, stopCalls } from "../lib/calls-engine.js";

export { stopCalls };

class CallsMarkup extends Component {
  shouldComponentUpdate() { return false; } // the engine owns this DOM from now on
  render() {
    return html`
      <div class="calls">
        <div class="view-head">
          <h1>Calls</h1>
          <p id="calls-status" class="muted" role="status">Connecting…</p>
          <a class="button primary" href="/m">New meeting</a>
        </div>
        <section id="incall" hidden aria-label="Call" class="incall">
          <div class="videos">
            <video id="remote-video" autoplay playsinline></video>
            <video id="local-video" autoplay playsinline muted></video>
          </div>
          <p><strong id="incall-peer"></strong> · <span id="incall-state"></span> · <span id="incall-timer">00:00</span></p>
          <div class="controls">
            <button id="btn-mute" type="button" aria-pressed="false">Mute</button>
            <button id="btn-camera" type="button" aria-pressed="false">Camera off</button>
            <button id="btn-screen" type="button" aria-pressed="false">Share screen</button>
            <button id="btn-add-person" type="button">Add person</button>
            <button id="btn-hangup" type="button" class="danger">Hang up</button>
          </div>
          <form id="add-person" class="calls-add-person" hidden>
            <label for="add-person-address">Person to add</label>
            <input id="add-person-address" type="email" list="add-person-contacts" autocomplete="off" required />
            <datalist id="add-person-contacts"></datalist>
            <button type="submit" class="primary">Add</button>
          </form>
        </section>
        <section id="incoming" hidden aria-label="Incoming call" role="alertdialog" class="incoming">
          <p>Incoming <span id="incoming-media"></span> call from <strong id="incoming-caller"></strong></p>
          <button id="btn-accept" type="button" class="primary">Accept</button>
          <button id="btn-decline" type="button" class="danger">Decline</button>
        </section>
        <div class="calls-cols">
          <section aria-labelledby="contacts-h" class="panel">
            <h2 id="contacts-h">Contacts</h2>
            <ul id="contacts" class="contacts"></ul>
          </section>
          <section aria-labelledby="history-h" class="panel">
            <h2 id="history-h">History</h2>
            <ul id="history" class="history"></ul>
          </section>
        </div>
      </div>`;
  }
}

export function CallsView({ active, user }) {
  useEffect(() => { // after the first screen: the view the user opened goes first
    let live = true;
    const idle = window.requestIdleCallback || ((fn) => setTimeout(fn, 200));
    idle(() => { if (live) startCalls(user); }, { timeout: 1500 });
    // Leaving the shell (a meeting opens full screen) unmounts this DOM: stop the engine with it, or
    // its contact polling writes into elements that are gone.
    return () => { live = false; stopCalls(); };
  }, []);
  return html`<div class=${active ? "calls-host" : "calls-host is-background"}><${CallsMarkup} /></div>`;
}
