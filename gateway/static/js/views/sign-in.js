// Sign in: one answer for a wrong password and an unknown email; a throttled sign-in counts
// down the wait the API gives in Retry-After.
import { html, nothing } from "../lit.js";
import { api } from "../api.js";
import { banner, icon } from "../ui.js";
import { formatDuration } from "../format.js";

export class SignInView {
  constructor(app) {
    this.app = app;
    this.title = "Sign in";
    this.section = null;
    this.notice = app.takeNotice();
    this.error = null;
    this.busy = false;
    this.waitUntil = 0;
    this.timer = null;
  }

  connected() {}

  disconnected() {
    clearInterval(this.timer);
  }

  get waitSeconds() {
    return Math.max(0, Math.ceil((this.waitUntil - Date.now()) / 1000));
  }

  async submit(event) {
    event.preventDefault();
    if (this.busy || this.waitSeconds > 0) return;
    const form = new FormData(event.currentTarget);
    this.busy = true;
    this.error = null;
    this.app.update();
    try {
      const session = await api("POST", "/api/v1/auth/login", {
        body: { email: String(form.get("email")).trim(), password: String(form.get("password")) },
        anonymous: true,
      });
      this.app.signedIn(session, new URLSearchParams(location.search).get("next"));
      return;
    } catch (error) {
      this.error = error;
      if (error.status === 429) this.throttle(error.retryAfter || 60);
      this.app.announce(this.errorText());
    } finally {
      this.busy = false;
    }
    this.app.update();
    const password = document.getElementById("password");
    if (password) {
      password.value = "";
      password.focus();
    }
  }

  throttle(seconds) {
    this.waitUntil = Date.now() + seconds * 1000;
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      if (this.waitSeconds === 0) {
        clearInterval(this.timer);
        this.error = null;
      }
      this.app.update();
    }, 1000);
  }

  errorText() {
    const error = this.error;
    if (!error) return "";
    if (error.status === 429) {
      return `Too many failed sign-in attempts. Try again in ${formatDuration(this.waitSeconds)}.`;
    }
    if (error.status === 401) return "The email or password is wrong.";
    return error.message;
  }

  render() {
    const waiting = this.waitSeconds > 0;
    return html`<div class="signin"><main id="main" tabindex="-1" class="card">
      <div class="card-body">
        <span class="brand">${icon("logo")}<span>Server Scout</span></span>
        <div class="stack">
          <h1>Sign in</h1>
          ${this.notice ? banner("info", this.notice, { role: "status" }) : nothing}
          ${this.error ? banner(this.error.status === 429 ? "warning" : "error", this.errorText(), { role: "alert" }) : nothing}
        </div>
        <form @submit=${(e) => this.submit(e)} novalidate>
          <div class="field">
            <label for="email">Email</label>
            <input id="email" name="email" type="email" autocomplete="username" required autofocus
              aria-invalid=${this.error && this.error.status === 401 ? "true" : "false"}>
          </div>
          <div class="field">
            <label for="password">Password</label>
            <input id="password" name="password" type="password" autocomplete="current-password" required
              aria-invalid=${this.error && this.error.status === 401 ? "true" : "false"}>
          </div>
          <button class="primary" type="submit" ?disabled=${this.busy || waiting}>
            ${waiting ? `Wait ${formatDuration(this.waitSeconds)}` : this.busy ? "Signing in…" : "Sign in"}
          </button>
        </form>
        <p class="small muted">Agents and scripts use the same API with a server's API key or
          <code>scoutctl login</code>.</p>
      </div>
    </main></div>`;
  }
}
