// A server's settings: its API key (hint, created, last used when and from where), Regenerate
// behind a confirmation, the new key shown once; deleting the server asks for its name.
import { html, nothing } from "../lit.js";
import { api, serverPath } from "../api.js";
import { ENV_FILE, envLine, rotateCommand } from "../keys.js";
import { formatDateTime, relativeTime } from "../format.js";
import { banner, closeModal, codeBlock, focusSoon, modal, problemText, timeAgo } from "../ui.js";

const GRACE_CHOICES = [
  [0, "No grace period: the old key stops working now (recommended)"],
  [300, "5 minutes"],
  [3600, "1 hour"],
  [86400, "24 hours"],
];
const ROTATE_ID = "rotate-dialog";
const DELETE_ID = "delete-dialog";

export class SettingsTab {
  constructor(app, page) {
    this.app = app;
    this.page = page;
    this.dialog = null; // "rotate" | "new-key" | "confirm-close" | "delete"
    this.grace = 0;
    this.busy = false;
    this.error = null;
    this.rotated = null;
    this.typedName = "";
    this.changeError = null;
  }

  connected() {}

  disconnected() {}

  serverLoaded() {}

  open(dialog) {
    this.dialog = dialog;
    this.error = null;
    this.typedName = "";
    this.app.update();
  }

  close(id) {
    closeModal(id);
    this.dialog = null;
    this.app.update();
  }

  async rotate(event) {
    event.preventDefault();
    this.busy = true;
    this.error = null;
    this.app.update();
    try {
      this.rotated = await api("POST", serverPath(this.page.id, "/api-key/rotate"), {
        body: { grace_seconds: this.grace },
      });
      this.page.replaceServer(this.rotated.server);
      this.dialog = "new-key";
      this.app.announce("The API key was regenerated. The new key is shown once.");
      focusSoon(`#${ROTATE_ID} .codeblock button`);
    } catch (error) {
      this.error = problemText(error);
    } finally {
      this.busy = false;
      this.app.update();
    }
  }

  async remove(event) {
    event.preventDefault();
    const server = this.page.server;
    if (this.typedName !== server.name) return;
    this.busy = true;
    this.app.update();
    try {
      await api("DELETE", serverPath(server.id));
      closeModal(DELETE_ID);
      this.app.notice = `${server.name} was deleted and its API key revoked.`;
      this.app.go("/servers");
    } catch (error) {
      this.error = problemText(error);
      this.busy = false;
      this.app.update();
    }
  }

  async change(change, done) {
    this.busy = true;
    this.changeError = null;
    this.app.update();
    try {
      const { server } = await api("PATCH", serverPath(this.page.id), { body: change });
      this.page.replaceServer(server);
      this.app.toast(done(server)); // the toast region is a live region
    } catch (error) {
      this.changeError = problemText(error);
    } finally {
      this.busy = false;
      this.app.update();
    }
  }

  rename(event) {
    event.preventDefault();
    const name = String(new FormData(event.currentTarget).get("name") || "").trim();
    if (name === this.page.server.name) return;
    this.change({ name }, (server) => `Renamed to ${server.name}.`);
  }

  togglePause() {
    const paused = !this.page.server.paused_at;
    this.change({ paused }, (server) =>
      paused ? `Monitoring of ${server.name} is paused.` : `Monitoring of ${server.name} resumed.`);
  }

  generalSection(server) {
    const paused = Boolean(server.paused_at);
    return html`<section class="card" aria-labelledby="general-title">
      <div class="card-header"><div><h2 id="general-title">Server</h2>
        <p>Its name, and whether it is monitored.</p></div></div>
      <div class="card-body stack">
        ${this.changeError ? banner("error", this.changeError, { role: "alert" }) : nothing}
        <form class="row" @submit=${(e) => this.rename(e)}>
          <div class="field grow">
            <label for="rename">Name</label>
            <input id="rename" name="name" maxlength="100" required autocomplete="off" .value=${server.name}>
          </div>
          <button type="submit" class="align-end" ?disabled=${this.busy}>Rename</button>
        </form>
        <div class="spread">
          <p>${paused
            ? html`Monitoring is <strong>paused</strong> since ${formatDateTime(server.paused_at)}: no warning, no offline. The agent may keep posting.`
            : "Pause monitoring during maintenance: the server shows as paused instead of warning or offline."}</p>
          <button type="button" ?disabled=${this.busy} @click=${() => this.togglePause()}>
            ${paused ? "Resume monitoring" : "Pause monitoring"}</button>
        </div>
      </div>
    </section>`;
  }

  render() {
    const server = this.page.server;
    return html`<div class="stack-lg">
      ${this.generalSection(server)}
      <section class="card" aria-labelledby="key-title">
        <div class="card-header"><div><h2 id="key-title">API key</h2>
          <p>The agent on ${server.name} sends this key with every sample. Keys are stored only as a hash: they are shown once, when made.</p></div></div>
        <div class="card-body stack">
          <dl class="kv">
            <dt>Key</dt><dd class="mono" data-testid="key-hint">…${server.key_hint}</dd>
            <dt>Created</dt><dd>${timeAgo(server.key_created_at, relativeTime(server.key_created_at), formatDateTime(server.key_created_at))}
              <span class="muted small">(${formatDateTime(server.key_created_at)})</span></dd>
            <dt>Last used</dt><dd data-testid="key-last-used">${server.key_last_used_at
              ? html`${timeAgo(server.key_last_used_at, relativeTime(server.key_last_used_at), formatDateTime(server.key_last_used_at))}
                from <span class="mono">${server.key_last_used_address || "an unknown address"}</span>`
              : "Never used"}</dd>
          </dl>
          <div class="row"><button type="button" @click=${() => this.open("rotate")}>Regenerate API key</button></div>
        </div>
      </section>
      <section class="card danger-zone" aria-labelledby="delete-title">
        <div class="card-header"><div><h2 id="delete-title">Delete server</h2>
          <p>Its API key stops working at once on every gateway and the server leaves your dashboard.</p></div></div>
        <div class="card-body"><button type="button" class="danger" @click=${() => this.open("delete")}>Delete ${server.name}…</button></div>
      </section>
      ${this.dialogs(server)}
    </div>`;
  }

  dialogs(server) {
    if (this.dialog === "rotate") return this.rotateDialog(server);
    if (this.dialog === "new-key") return this.newKeyDialog(server);
    if (this.dialog === "confirm-close") return this.confirmCloseDialog(server);
    if (this.dialog === "delete") return this.deleteDialog(server);
    return nothing;
  }

  rotateDialog(server) {
    const body = html`<form id="rotate-form" class="stack" @submit=${(e) => this.rotate(e)}>
      ${banner("warning", html`<strong>The current key (…${server.key_hint}) stops working at once, on every gateway.</strong>
        The agent on ${server.name} is refused until its ${ENV_FILE} has the new key; it picks the new key up
        within one interval, without a restart.`, { role: "note" })}
      <div class="field">
        <label for="grace">Keep the old key working for</label>
        <select id="grace" @change=${(e) => { this.grace = Number(e.target.value); }}>
          ${GRACE_CHOICES.map(([seconds, label]) => html`<option value=${seconds} ?selected=${this.grace === seconds}>${label}</option>`)}
        </select>
        <span class="hint">A grace period lets you update the agent first; a compromised key needs none.</span>
      </div>
      <div class="field">
        <span class="small muted">Prefer to do it on ${server.name} itself? This regenerates the key and rewrites ${ENV_FILE} in one step:</span>
        ${codeBlock(rotateCommand(server.name), "scoutctl rotate command", this.app)}
      </div>
      ${this.error ? banner("error", this.error, { role: "alert" }) : nothing}
    </form>`;
    const footer = html`<button type="button" @click=${() => this.close(ROTATE_ID)}>Cancel</button>
      <button type="submit" form="rotate-form" class="danger" ?disabled=${this.busy}>${this.busy ? "Regenerating…" : "Regenerate key"}</button>`;
    return modal({ id: ROTATE_ID, title: `Regenerate the API key of ${server.name}?`, body, footer, onCancel: () => this.close(ROTATE_ID) });
  }

  newKeyDialog(server) {
    const { api_key: key, old_key_valid_until: until } = this.rotated;
    const body = html`
      ${banner("warning", html`<strong>This key is shown only once.</strong> Copy it now: afterwards only …${server.key_hint} is shown.`, { role: "note" })}
      <p>${until
        ? html`The old key keeps working until <strong>${formatDateTime(until)}</strong>.`
        : html`The old key <strong>no longer works</strong> on any gateway.`}</p>
      <div class="field">
        <span class="small muted">Replace the SCOUTAPIKEY line in ${ENV_FILE} on ${server.name} with</span>
        ${codeBlock(envLine(key), "SCOUTAPIKEY line", this.app)}
        <span class="hint">The agent reads the file every interval: no restart is needed.</span>
      </div>
      <div class="field">
        <span class="small muted">The key alone</span>
        ${codeBlock(key, "new API key", this.app)}
      </div>
      <div class="field">
        <span class="small muted">Next time, one command on ${server.name} regenerates the key and rewrites the file</span>
        ${codeBlock(rotateCommand(server.name), "scoutctl rotate command", this.app)}
      </div>`;
    const footer = html`<button type="button" class="primary" @click=${() => this.askClose()}>Done</button>`;
    return modal({ id: ROTATE_ID, title: `New API key of ${server.name}`, body, footer, onCancel: () => this.askClose() });
  }

  askClose() {
    this.dialog = "confirm-close";
    this.app.update();
    focusSoon(`#${ROTATE_ID} [data-focus]`);
  }

  confirmCloseDialog(server) {
    const body = html`<p>The new API key of ${server.name} will not be shown again. If you have not copied it, go back.</p>`;
    const footer = html`
      <button type="button" data-focus @click=${() => { this.dialog = "new-key"; this.app.update(); focusSoon(`#${ROTATE_ID} .codeblock button`); }}>Back to the key</button>
      <button type="button" class="primary" @click=${() => { this.rotated = null; this.close(ROTATE_ID); }}>Close, I copied it</button>`;
    return modal({ id: ROTATE_ID, title: "Close without the key?", body, footer, onCancel: () => { this.rotated = null; this.close(ROTATE_ID); } });
  }

  deleteDialog(server) {
    const matches = this.typedName === server.name;
    const body = html`<form id="delete-form" class="stack" @submit=${(e) => this.remove(e)}>
      <p>Deleting <strong>${server.name}</strong> revokes its API key at once on every gateway and removes it
        from your dashboard. This cannot be undone.</p>
      <div class="field">
        <label for="confirm-name">Type <strong>${server.name}</strong> to confirm</label>
        <input id="confirm-name" autocomplete="off" autofocus spellcheck="false"
          @input=${(e) => { this.typedName = e.target.value; this.app.update(); }}>
      </div>
      ${this.error ? banner("error", this.error, { role: "alert" }) : nothing}
    </form>`;
    const footer = html`<button type="button" @click=${() => this.close(DELETE_ID)}>Cancel</button>
      <button type="submit" form="delete-form" class="danger" ?disabled=${!matches || this.busy}>${this.busy ? "Deleting…" : "Delete server"}</button>`;
    return modal({ id: DELETE_ID, title: `Delete ${server.name}?`, body, footer, onCancel: () => this.close(DELETE_ID) });
  }
}
