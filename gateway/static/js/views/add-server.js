// Add a server: a name, then its API key shown once, with everything needed to install the
// agent, and a live "waiting for the first check-in".
import { html, nothing } from "../lit.js";
import { api, serverPath } from "../api.js";
import { ENV_FILE, envFile, installCommand } from "../keys.js";
import { Poller, banner, closeModal, codeBlock, focusSoon, modal, problemText, statusBadge } from "../ui.js";

const ID = "add-server-dialog";
export const MAX_NAME = 100;

export class AddServerDialog {
  constructor(app, { onClose }) {
    this.app = app;
    this.onClose = onClose;
    this.step = "name"; // name -> key -> confirm-close
    this.busy = false;
    this.error = null;
    this.created = null;
    this.poller = new Poller(() => this.checkIn(), 3000);
  }

  stop() {
    this.poller.stop();
  }

  async create(event) {
    event.preventDefault();
    const name = String(new FormData(event.currentTarget).get("name") || "").trim();
    if (!name) {
      this.error = "Give the server a name.";
      this.app.update();
      focusSoon("#server-name");
      return;
    }
    this.busy = true;
    this.error = null;
    this.app.update();
    try {
      this.created = await api("POST", "/api/v1/servers", { body: { name } });
      this.step = "key";
      this.poller.start();
      focusSoon(`#${ID} .codeblock button`);
      this.app.announce(`${this.created.server.name} was added. Its API key is shown once.`);
    } catch (error) {
      this.error = problemText(error);
      focusSoon("#server-name");
    } finally {
      this.busy = false;
      this.app.update();
    }
  }

  async checkIn() {
    try {
      const answer = await api("GET", serverPath(this.created.server.id));
      const before = this.created.server.status;
      this.created = { ...this.created, server: answer.server };
      if (before !== answer.server.status && answer.server.last_seen_at) {
        this.app.announce(`${answer.server.name} checked in.`);
        this.poller.stop();
      }
      this.app.update();
    } catch {
      // The dialog keeps the key on screen whatever happens to the status check.
    }
  }

  /** Escape, the close button and Done all come here: a shown key asks first. */
  requestClose() {
    if (this.step === "key") {
      this.step = "confirm-close";
      this.app.update();
      focusSoon(`#${ID} [data-focus]`);
      return;
    }
    this.finish();
  }

  backToKey() {
    this.step = "key";
    this.app.update();
    focusSoon(`#${ID} .codeblock button`);
  }

  finish() {
    this.poller.stop();
    closeModal(ID);
    this.onClose(this.created !== null);
  }

  render() {
    if (this.step === "name") return this.nameStep();
    if (this.step === "key") return this.keyStep();
    return this.confirmStep();
  }

  nameStep() {
    const body = html`<form id="add-server-form" class="stack" @submit=${(e) => this.create(e)} novalidate>
      <p class="muted">A server is one machine running the agent. You get its API key on the next step.</p>
      <div class="field">
        <label for="server-name">Name</label>
        <input id="server-name" name="name" maxlength=${MAX_NAME} required autofocus autocomplete="off"
          placeholder="web-1" aria-describedby="server-name-hint${this.error ? " server-name-error" : ""}"
          aria-invalid=${this.error ? "true" : "false"}>
        <span id="server-name-hint" class="hint">Up to ${MAX_NAME} characters, for example its host name.</span>
        ${this.error ? html`<span id="server-name-error" class="field-error" role="alert">${this.error}</span>` : nothing}
      </div>
    </form>`;
    const footer = html`
      <button type="button" @click=${() => this.finish()}>Cancel</button>
      <button type="submit" form="add-server-form" class="primary" ?disabled=${this.busy}>
        ${this.busy ? "Adding…" : "Add server"}</button>`;
    return modal({ id: ID, title: "Add a server", body, footer, onCancel: () => this.finish() });
  }

  keyStep() {
    const { server, api_key: key } = this.created;
    const seen = Boolean(server.last_seen_at);
    const body = html`
      ${banner("warning", html`<strong>This API key is shown only once.</strong> Copy it now: afterwards
        Server Scout shows only its last four characters (…${server.key_hint}).`, { role: "note" })}
      <div class="field">
        <span class="small muted">API key of ${server.name}</span>
        ${codeBlock(key, "API key", this.app)}
      </div>
      <div class="field">
        <span class="small muted">Install the agent on ${server.name} (as root; it writes ${ENV_FILE} and starts the service)</span>
        ${codeBlock(installCommand(key), "install command", this.app)}
        <span class="hint">Using a private CA, such as <code>make run</code>'s development CA? Add
          <code>--cacert CA.pem</code> to curl and <code>--ca-file CA.pem</code> to install.</span>
      </div>
      <div class="field">
        <span class="small muted">Or write ${ENV_FILE} yourself (mode 0600, owned by root)</span>
        ${codeBlock(envFile(key), "agent.env content", this.app)}
      </div>
      <div class="row" aria-live="polite">
        ${seen
          ? html`${statusBadge(server.status)}<span>${server.name} checked in. Its metrics are arriving.</span>`
          : html`<span class="waiting"><span class="spinner" aria-hidden="true"></span>Waiting for the first check-in…</span>`}
      </div>`;
    const footer = html`
      ${seen ? html`<a class="button" href="/servers/${server.id}" @click=${() => this.finish()}>Open ${server.name}</a>` : nothing}
      <button type="button" class="primary" @click=${() => this.requestClose()}>Done</button>`;
    return modal({ id: ID, title: html`${server.name} was added`, body, footer, onCancel: () => this.requestClose() });
  }

  confirmStep() {
    const body = html`<p>The API key of ${this.created.server.name} will not be shown again. If you have not
      copied it, go back. (You can always regenerate a new key in the server's settings.)</p>`;
    const footer = html`
      <button type="button" data-focus @click=${() => this.backToKey()}>Back to the key</button>
      <button type="button" class="primary" @click=${() => this.finish()}>Close, I copied it</button>`;
    return modal({ id: ID, title: "Close without the key?", body, footer, onCancel: () => this.finish() });
  }
}
