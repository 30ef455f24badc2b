// The account: sessions (this one marked; end one; end all others), change the password (ends
// every other session, and says so), sign out.
import { html, nothing, repeat } from "../lit.js";
import { api } from "../api.js";
import { describeAgent, formatDateTime, relativeTime } from "../format.js";
import { banner, closeModal, modal, problemText, timeAgo } from "../ui.js";

const CONFIRM_ID = "end-sessions-dialog";

export class AccountView {
  constructor(app) {
    this.app = app;
    this.title = "Account";
    this.section = "account";
    this.sessions = null;
    this.sessionsError = null;
    this.sessionsNotice = null;
    this.password = { busy: false, error: null, done: null, field: null };
    this.confirming = false;
  }

  connected() {
    this.loadSessions();
  }

  disconnected() {}

  async loadSessions() {
    try {
      this.sessions = (await api("GET", "/api/v1/auth/sessions")).sessions;
      this.sessionsError = null;
    } catch (error) {
      if (error.status !== 401) this.sessionsError = problemText(error);
    }
    this.app.update();
  }

  async endSession(session) {
    try {
      await api("DELETE", `/api/v1/auth/sessions/${encodeURIComponent(session.id)}`);
      this.sessionsNotice = `The session of ${describeAgent(session.user_agent)} (${session.client_address || "unknown address"}) was ended.`;
      this.app.announce(this.sessionsNotice);
    } catch (error) {
      this.sessionsError = problemText(error);
    }
    this.loadSessions();
  }

  async endOthers() {
    closeModal(CONFIRM_ID);
    this.confirming = false;
    try {
      const { revoked } = await api("DELETE", "/api/v1/auth/sessions");
      this.sessionsNotice = `${revoked} other ${revoked === 1 ? "session was" : "sessions were"} ended.`;
      this.app.announce(this.sessionsNotice);
    } catch (error) {
      this.sessionsError = problemText(error);
    }
    this.loadSessions();
  }

  async changePassword(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const data = new FormData(form);
    const current = String(data.get("current"));
    const next = String(data.get("new"));
    const state = { busy: false, error: null, done: null, field: null };
    if (next !== String(data.get("confirm"))) {
      this.password = { ...state, error: "The new passwords do not match.", field: "confirm-password" };
    } else if (!current || !next) {
      this.password = { ...state, error: "Fill in your current and your new password.", field: current ? "new-password" : "current-password" };
    } else {
      this.password = { ...state, busy: true };
      this.app.update();
      try {
        const { sessions_ended: ended } = await api("POST", "/api/v1/auth/password", {
          body: { current_password: current, new_password: next },
        });
        form.reset();
        this.password = { ...state, done: `Your password was changed. ${ended} other ${ended === 1 ? "session was" : "sessions were"} signed out; this one stays signed in.` };
        this.app.announce(this.password.done);
        this.loadSessions();
      } catch (error) {
        const field = error.type === "wrong-current-password" ? "current-password" : "new-password";
        this.password = { ...state, error: problemText(error), field };
      }
    }
    this.app.update();
    if (this.password.field) requestAnimationFrame(() => document.getElementById(this.password.field)?.focus());
  }

  render() {
    const user = this.app.session.user;
    return html`
      <div class="page-header"><div class="title"><h1>Account</h1>
        <p class="small muted">Signed in as ${user.email}${user.display_name ? ` (${user.display_name})` : ""}</p></div>
        <div class="toolbar"><button type="button" @click=${() => this.app.signOut()}>Sign out</button></div>
      </div>
      <div class="stack-lg">
        ${this.sessionsSection()}
        ${this.passwordSection()}
      </div>
      ${this.confirming ? this.confirmDialog() : nothing}`;
  }

  sessionsSection() {
    const others = (this.sessions || []).filter((s) => !s.current);
    const now = Date.now();
    return html`<section class="card" aria-labelledby="sessions-title">
      <div class="card-header">
        <div><h2 id="sessions-title">Sessions</h2><p>Where you are signed in. Ending a session signs it out on its next request.</p></div>
        <button type="button" ?disabled=${others.length === 0} @click=${() => { this.confirming = true; this.app.update(); }}>End all other sessions</button>
      </div>
      ${this.sessionsNotice ? html`<div class="card-body">${banner("success", this.sessionsNotice, { role: "status" })}</div>` : nothing}
      ${this.sessionsError ? html`<div class="card-body">${banner("error", this.sessionsError, { role: "alert" })}</div>` : nothing}
      ${this.sessions === null ? html`<p class="card-body muted">Loading…</p>` : html`<div class="table-wrap" tabindex="0" role="region" aria-label="Sessions"><table>
        <caption class="visually-hidden">Your sessions</caption>
        <thead><tr><th scope="col">Device</th><th scope="col">Address</th><th scope="col" class="hide-phone">Signed in</th>
          <th scope="col">Last active</th><th scope="col"><span class="visually-hidden">Action</span></th></tr></thead>
        <tbody>${repeat(this.sessions, (s) => s.id, (s) => html`<tr data-session-id=${s.id}>
          <td>${describeAgent(s.user_agent)} ${s.current ? html`<span class="badge">This session</span>` : nothing}</td>
          <td class="mono">${s.client_address || "—"}</td>
          <td class="hide-phone nowrap">${formatDateTime(s.created_at)}</td>
          <td>${timeAgo(s.last_seen_at, relativeTime(s.last_seen_at, now), formatDateTime(s.last_seen_at))}</td>
          <td class="num">${s.current
            ? html`<button type="button" class="small" @click=${() => this.app.signOut()}>Sign out</button>`
            : html`<button type="button" class="small" @click=${() => this.endSession(s)}
                aria-label="End the session of ${describeAgent(s.user_agent)} from ${s.client_address || "an unknown address"}">End</button>`}</td>
        </tr>`)}</tbody>
      </table></div>`}
    </section>`;
  }

  passwordSection() {
    const p = this.password;
    const invalid = (id) => (p.field === id ? "true" : "false");
    return html`<section class="card" aria-labelledby="password-title">
      <div class="card-header"><div><h2 id="password-title">Change password</h2>
        <p>Changing it signs out every other session; this one stays signed in.</p></div></div>
      <form class="card-body stack" @submit=${(e) => this.changePassword(e)} novalidate>
        ${p.done ? banner("success", p.done, { role: "status" }) : nothing}
        ${p.error ? banner("error", p.error, { role: "alert" }) : nothing}
        <input type="text" name="username" autocomplete="username" .value=${this.app.session.user.email} hidden>
        <div class="field"><label for="current-password">Current password</label>
          <input id="current-password" name="current" type="password" autocomplete="current-password" required aria-invalid=${invalid("current-password")}></div>
        <div class="field"><label for="new-password">New password</label>
          <input id="new-password" name="new" type="password" autocomplete="new-password" required aria-invalid=${invalid("new-password")}
            aria-describedby="new-password-hint">
          <span id="new-password-hint" class="hint">Use a long passphrase; short and common passwords are refused.</span></div>
        <div class="field"><label for="confirm-password">Repeat the new password</label>
          <input id="confirm-password" name="confirm" type="password" autocomplete="new-password" required aria-invalid=${invalid("confirm-password")}></div>
        <div class="actions"><button type="submit" class="primary" ?disabled=${p.busy}>${p.busy ? "Changing…" : "Change password"}</button></div>
      </form>
    </section>`;
  }

  confirmDialog() {
    const count = (this.sessions || []).filter((s) => !s.current).length;
    const cancel = () => { closeModal(CONFIRM_ID); this.confirming = false; this.app.update(); };
    return modal({
      id: CONFIRM_ID,
      title: "End all other sessions?",
      body: html`<p>${count} other ${count === 1 ? "session is" : "sessions are"} signed out on their next request. This session stays signed in.</p>`,
      footer: html`<button type="button" @click=${cancel}>Cancel</button>
        <button type="button" class="danger" @click=${() => this.endOthers()}>End ${count === 1 ? "it" : `all ${count}`}</button>`,
      onCancel: cancel,
    });
  }
}
