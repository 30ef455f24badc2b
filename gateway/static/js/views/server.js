// One server: its header and status (live), and the tabs Overview, Activity and Settings.
import { html, nothing } from "../lit.js";
import { api, serverPath } from "../api.js";
import { formatDateTime, relativeTime } from "../format.js";
import { Poller, banner, problemText, statusBadge, timeAgo } from "../ui.js";
import { OverviewTab } from "./overview.js";
import { ServerActivityTab } from "./activity.js";
import { SettingsTab } from "./server-settings.js";

const REFRESH_MS = 5000;
const TABS = { overview: OverviewTab, activity: ServerActivityTab, settings: SettingsTab };

export class ServerView {
  constructor(app, { id, tab }) {
    this.app = app;
    this.id = id;
    this.tabName = tab;
    this.section = "servers";
    this.server = null;
    this.missing = false;
    this.error = null;
    this.tab = new TABS[tab](app, this);
    this.poller = new Poller(() => this.refresh(), REFRESH_MS);
  }

  get title() {
    const name = this.server ? this.server.name : "Server";
    return { overview: name, activity: `Activity · ${name}`, settings: `Settings · ${name}` }[this.tabName];
  }

  connected() {
    this.poller.start();
    this.tab.connected();
  }

  disconnected() {
    this.poller.stop();
    this.tab.disconnected();
  }

  async refresh() {
    try {
      const first = this.server === null;
      this.server = (await api("GET", serverPath(this.id))).server;
      this.error = null;
      if (first) this.tab.serverLoaded();
    } catch (error) {
      if (error.status === 404) {
        this.missing = true;
        this.poller.stop();
      } else if (error.status !== 401) {
        this.error = problemText(error);
      }
    }
    this.app.update();
  }

  /** A tab changed the server (a new key): show it without waiting for the next refresh. */
  replaceServer(server) {
    this.server = server;
    this.app.update();
  }

  render() {
    if (this.missing) {
      return html`<div class="card empty">
        <h1>Server not found</h1>
        <p>No server of yours has this address: it was deleted, or it belongs to another account.</p>
        <a class="button primary" href="/servers">Go to your servers</a>
      </div>`;
    }
    const server = this.server;
    const base = `/servers/${encodeURIComponent(this.id)}`;
    const tab = (name, href, label) => html`<a href=${href} aria-current=${this.tabName === name ? "page" : nothing}>${label}</a>`;
    return html`
      <div class="page-header">
        <div class="title">
          <span class="breadcrumb"><a href="/servers">Servers</a> /</span>
          <h1>${server ? server.name : "Loading…"}</h1>
          ${server ? html`<div class="row small">
            ${statusBadge(server.status)}
            <span class="muted">${server.last_seen_at
              ? html`Last seen ${timeAgo(server.last_seen_at, relativeTime(server.last_seen_at), formatDateTime(server.last_seen_at))}`
              : "Never checked in"}</span>
          </div>` : nothing}
        </div>
      </div>
      <nav class="tabs" aria-label="Server">
        ${tab("overview", base, "Overview")}
        ${tab("activity", `${base}/activity`, "Activity")}
        ${tab("settings", `${base}/settings`, "Settings")}
      </nav>
      ${this.error ? banner("error", this.error, { role: "alert" }) : nothing}
      ${server ? this.tab.render() : nothing}`;
  }
}
