// The sign-in page (fields "Email" and "Password", button "Sign in"); the URL stays where it was.
import { useState } from "preact/hooks";
import { html } from "../lib/html.js";
import { api } from "../lib/api.js";
import { SecondFactorStep } from "./settings-security.js";

export function LoginView({ onSignedIn }) {
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const [step, setStep] = useState(null); // {second_factor, challenge}: the password was right
  async function submit(ev) {
    ev.preventDefault();
    const form = new FormData(ev.currentTarget);
    setBusy(true);
    setError("");
    try {
      const r = await api("/api/login", { method: "POST", body: { address: form.get("email"), password: form.get("password") } });
      if (r.second_factor) setStep(r);
      else onSignedIn(r);
    } catch (err) {
      setError(err.status === 401 ? "Wrong email or password." : err.message);
    } finally {
      setBusy(false);
    }
  }
  if (step) return html`<${SecondFactorStep} step=${step} onSignedIn=${onSignedIn} />`;
  return html`
    <main class="login">
      <form class="card" onSubmit=${submit} aria-labelledby="login-title">
        <h1 id="login-title"><span class="brand">Suite</span> Sign in</h1>
        <label for="login-email">Email</label>
        <input id="login-email" name="email" type="email" autocomplete="username" required autofocus />
        <label for="login-password">Password</label>
        <input id="login-password" name="password" type="password" autocomplete="current-password" required />
        <button type="submit" class="primary" disabled=${busy}>Sign in</button>
        <p class="error" role="alert">${error}</p>
      </form>
    </main>`;
}
