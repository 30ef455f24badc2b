// Activity: a server's key events (created, rotated, revoked, used, rejected with reason and
// address) and the person's sign-in events; newest first, paged, filtered by kind.
import { html, nothing, repeat } from "../lit.js";
import { api, listAll, serverPath } from "../api.js";
import { describeAgent, formatDateTime, relativeTime } from "../format.js";
import { banner, problemText, timeAgo } from "../ui.js";

const PAGE_SIZE = 25;

export const KEY_KINDS = {
  "key.created": "Key created",
  "key.rotated": "Key regenerated",
  "key.revoked": "Key revoked",
  "key.used": "Key used",
  "key.rejected": "Old key refused",
  "server.renamed": "Server renamed",
  "server.paused": "Monitoring paused",
  "server.resumed": "Monitoring resumed",
};

export const SIGN_IN_KINDS = {
  "login.succeeded": "Signed in",
  "login.failed": "Sign-in failed",
  logout: "Signed out",
  "password.changed": "Password changed",
  "session.revoked": "Session ended",
};

function actorText(actor, me) {
  if (!actor) return "—";
  const [kind, ...rest] = actor.split(":");
  const id = rest.join(":");
  if (kind === "user") return id === me ? "You" : "Another user";
  if (kind === "admin") return `Operator ${id}`;
  if (kind === "server") return "The server's key";
  return actor;
}

function keyDetail(event) {
  const d = event.details || {};
  switch (event.type) {
    case "key.rotated":
      return d.old_key_valid_until
        ? `Old key …${d.old_key_hint} keeps working until ${formatDateTime(d.old_key_valid_until)}`
        : `Old key …${d.old_key_hint} stopped working at once`;
    case "key.revoked":
      return d.reason === "server.deleted" ? "The server was deleted" : d.reason || "";
    case "key.used":
      return "Latest use of this key";
    case "key.rejected":
      return `This key was ${d.reason || "ended"}; ${d.attempts} ${d.attempts === 1 ? "attempt" : "attempts"} refused, the latest shown`;
    case "server.renamed":
      return `From “${d.old_name}” to “${d.name}”`;
    default:
      return "";
  }
}

function signInDetail(event) {
  const d = event.details || {};
  if (event.type === "password.changed" && d.sessions_ended !== undefined) {
    return `${d.sessions_ended} other ${d.sessions_ended === 1 ? "session" : "sessions"} ended`;
  }
  if (event.type === "session.revoked") {
    if (d.reason === "user_disabled") return "The user was disabled";
    if (d.revoked !== undefined) return `${d.revoked} ${d.revoked === 1 ? "session" : "sessions"} ended`;
  }
  if (event.type === "login.failed" && d.reason) return String(d.reason).replaceAll("_", " ");
  return event.user_agent ? describeAgent(event.user_agent) : "";
}

/** One paged, filterable event table over an activity endpoint. */
export class ActivityList {
  constructor(app, { path, kinds, keyColumn, id }) {
    this.app = app;
    this.path = path;
    this.kinds = kinds;
    this.keyColumn = keyColumn;
    this.id = id;
    this.kind = "";
    this.events = null;
    this.next = null;
    this.loading = false;
    this.error = null;
  }

  async load({ more = false } = {}) {
    this.loading = true;
    this.error = null;
    this.app.update();
    try {
      const page = await api("GET", this.path, {
        query: { limit: PAGE_SIZE, type: this.kind, page_token: more ? this.next : null },
      });
      this.events = more ? [...this.events, ...page.events] : page.events;
      this.next = page.next_page_token;
      if (more) this.app.announce(`${page.events.length} older events loaded.`);
    } catch (error) {
      if (error.status !== 401) this.error = problemText(error);
    } finally {
      this.loading = false;
      this.app.update();
    }
  }

  filter(kind) {
    this.kind = kind;
    this.load();
  }

  render() {
    const me = this.app.session.user.id;
    const now = Date.now();
    return html`<div class="stack">
      <div class="filters">
        <div class="field">
          <label for="${this.id}-kind">Kind of event</label>
          <select id="${this.id}-kind" @change=${(e) => this.filter(e.target.value)}>
            <option value="" ?selected=${this.kind === ""}>All events</option>
            ${Object.entries(this.kinds).map(([value, label]) => html`<option value=${value} ?selected=${this.kind === value}>${label}</option>`)}
          </select>
        </div>
      </div>
      ${this.error ? banner("error", this.error, { role: "alert" }) : nothing}
      <div class="card">
        ${this.events === null
          ? html`<p class="card-body muted">Loading…</p>`
          : this.events.length === 0
            ? html`<div class="empty"><p>${this.kind ? `No “${this.kinds[this.kind]}” events yet.` : "No events yet."}</p></div>`
            : html`<div class="table-wrap" tabindex="0" role="region" aria-label="Events"><table class="activity-table">
              <caption class="visually-hidden">Events, newest first</caption>
              <thead><tr>
                <th scope="col">When</th><th scope="col">Event</th>
                ${this.keyColumn ? html`<th scope="col">Key</th>` : nothing}
                <th scope="col">Address</th><th scope="col" class="hide-phone">By</th>
              </tr></thead>
              <tbody>${repeat(this.events, (e) => e.id, (e) => html`<tr data-event-type=${e.type}>
                <td class="nowrap">${timeAgo(e.occurred_at, relativeTime(e.occurred_at, now), formatDateTime(e.occurred_at))}</td>
                <td class="event"><strong>${this.kinds[e.type] || e.type}</strong>
                  <span class="sub">${this.keyColumn ? keyDetail(e) : signInDetail(e)}</span></td>
                ${this.keyColumn ? html`<td class="mono nowrap">${e.key_hint ? `…${e.key_hint}` : "—"}</td>` : nothing}
                <td class="mono">${e.client_address || "—"}</td>
                <td class="hide-phone">${actorText(e.actor, me)}</td>
              </tr>`)}</tbody>
            </table></div>`}
        ${this.next ? html`<div class="pager"><button type="button" ?disabled=${this.loading}
          @click=${() => this.load({ more: true })}>${this.loading ? "Loading…" : "Load older events"}</button></div>` : nothing}
      </div>
    </div>`;
  }
}

export class ServerActivityTab {
  constructor(app, page) {
    this.list = new ActivityList(app, {
      path: serverPath(page.id, "/activity"), kinds: KEY_KINDS, keyColumn: true, id: "server-activity",
    });
  }

  connected() {
    this.list.load();
  }

  disconnected() {}

  serverLoaded() {}

  render() {
    return html`<section class="stack" aria-labelledby="server-activity-title">
      <div><h2 id="server-activity-title">Key activity</h2>
        <p class="small muted">Every key made, regenerated or revoked, its latest use, attempts with keys that no longer work, and changes to the server.</p></div>
      ${this.list.render()}
    </section>`;
  }
}

/** The Activity page: the person's sign-ins, and any of their servers' key activity. */
export class ActivityView {
  constructor(app) {
    this.app = app;
    this.title = "Activity";
    this.section = "activity";
    this.tab = new URLSearchParams(location.search).get("server") ? "servers" : "sign-ins";
    this.signIns = new ActivityList(app, {
      path: "/api/v1/auth/activity", kinds: SIGN_IN_KINDS, keyColumn: false, id: "sign-in-activity",
    });
    this.servers = null;
    this.serverId = new URLSearchParams(location.search).get("server") || "";
    this.serverList = null;
    this.error = null;
  }

  connected() {
    this.signIns.load();
    this.loadServers();
  }

  disconnected() {}

  async loadServers() {
    try {
      this.servers = await listAll("/api/v1/servers", "servers");
      if (!this.serverId && this.servers.length) this.serverId = this.servers[0].id;
      this.pickServer(this.serverId);
    } catch (error) {
      if (error.status !== 401) this.error = problemText(error);
      this.app.update();
    }
  }

  pickServer(id) {
    this.serverId = id;
    this.serverList = id ? new ActivityList(this.app, {
      path: serverPath(id, "/activity"), kinds: KEY_KINDS, keyColumn: true, id: "key-activity",
    }) : null;
    if (this.serverList) this.serverList.load();
    this.app.update();
  }

  render() {
    return html`
      <div class="page-header"><div class="title"><h1>Activity</h1>
        <p class="small muted">Your sign-ins, and what happened to your servers' API keys.</p></div></div>
      <div class="stack-lg">
        <section class="stack" aria-labelledby="signins-title">
          <h2 id="signins-title">Your sign-ins and sessions</h2>
          ${this.signIns.render()}
        </section>
        <section class="stack" aria-labelledby="keys-title">
          <h2 id="keys-title">Server key activity</h2>
          ${this.error ? banner("error", this.error, { role: "alert" }) : nothing}
          ${this.servers && this.servers.length === 0
            ? html`<p class="muted">No servers yet. <a href="/servers">Add one</a> to see its key activity here.</p>`
            : html`<div class="filters"><div class="field">
                <label for="activity-server">Server</label>
                <select id="activity-server" @change=${(e) => this.pickServer(e.target.value)}>
                  ${(this.servers || []).map((s) => html`<option value=${s.id} ?selected=${s.id === this.serverId}>${s.name}</option>`)}
                </select></div></div>
              ${this.serverList ? this.serverList.render() : nothing}`}
        </section>
      </div>`;
  }
}
