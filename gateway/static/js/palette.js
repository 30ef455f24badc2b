// Ctrl/⌘-K: a command palette to jump to a page or a server, add a server, switch the theme.
import { html, nothing, ref } from "./lit.js";
import { listAll } from "./api.js";
import { closeModal, openWhenConnected } from "./ui.js";

const ID = "command-palette";

export class Palette {
  constructor(app) {
    this.app = app;
    this.isOpen = false;
    this.query = "";
    this.selected = 0;
    this.servers = [];
  }

  onKeydown(event) {
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "k" && this.app.session) {
      event.preventDefault();
      if (this.isOpen) this.close();
      else this.open();
    }
  }

  async open() {
    this.isOpen = true;
    this.query = "";
    this.selected = 0;
    this.app.update();
    try {
      this.servers = await listAll("/api/v1/servers", "servers");
      this.app.update();
    } catch {
      this.servers = [];
    }
  }

  close() {
    if (!this.isOpen) return;
    closeModal(ID);
    this.isOpen = false;
    this.app.update();
  }

  commands() {
    const go = (path) => () => this.app.go(path);
    const base = [
      { label: "Servers", kind: "Page", run: go("/servers") },
      { label: "Add a server", kind: "Action", run: () => { this.app.go("/servers"); this.app.view.openAddServer?.(); } },
      { label: "Activity", kind: "Page", run: go("/activity") },
      { label: "Account and sessions", kind: "Page", run: go("/account") },
      { label: "Switch theme", kind: "Action", run: () => this.app.cycleTheme() },
      { label: "Sign out", kind: "Action", run: () => this.app.signOut() },
    ];
    const servers = this.servers.flatMap((s) => [
      { label: s.name, kind: "Server", run: go(`/servers/${s.id}`) },
      { label: `${s.name}: settings and API key`, kind: "Server", run: go(`/servers/${s.id}/settings`) },
    ]);
    const query = this.query.trim().toLowerCase();
    return [...base, ...servers].filter((c) => !query || c.label.toLowerCase().includes(query)).slice(0, 30);
  }

  keydown(event, commands) {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const delta = event.key === "ArrowDown" ? 1 : -1;
      this.selected = (this.selected + delta + commands.length) % Math.max(1, commands.length);
      this.app.update();
    } else if (event.key === "Enter") {
      event.preventDefault();
      this.run(commands[this.selected]);
    }
  }

  run(command) {
    if (!command) return;
    this.close();
    command.run();
  }

  render() {
    if (!this.isOpen) return nothing;
    const commands = this.commands();
    this.selected = Math.min(this.selected, Math.max(0, commands.length - 1));
    const active = commands.length ? `${ID}-option-${this.selected}` : nothing;
    const attach = (el) => openWhenConnected(el);
    return html`<dialog id=${ID} class="palette" aria-label="Command palette" ${ref(attach)}
        @cancel=${(e) => { e.preventDefault(); this.close(); }}>
      <label for="${ID}-input" class="visually-hidden">Go to or do</label>
      <input id="${ID}-input" type="text" role="combobox" aria-expanded="true" aria-controls="${ID}-list"
        aria-activedescendant=${active} aria-autocomplete="list" autocomplete="off" placeholder="Go to a server or a page…" autofocus
        .value=${this.query} @input=${(e) => { this.query = e.target.value; this.selected = 0; this.app.update(); }}
        @keydown=${(e) => this.keydown(e, commands)}>
      <ul id="${ID}-list" role="listbox" aria-label="Commands">
        ${commands.length === 0 ? html`<li class="muted" role="option" aria-selected="false" aria-disabled="true">Nothing matches</li>` : nothing}
        ${commands.map((c, i) => html`<li id="${ID}-option-${i}" role="option" aria-selected=${i === this.selected ? "true" : "false"}
          @click=${() => this.run(c)}><span>${c.label}</span><span class="kind">${c.kind}</span></li>`)}
      </ul>
    </dialog>`;
  }
}
