// The servers list: status, last seen, a CPU sparkline and the latest gauges; live while the
// tab is visible; an empty account learns how to add its first server. A table on wide screens,
// one card per server on a phone.
import { html, nothing, repeat, svg } from "../lit.js";
import { api, listAll, serverPath } from "../api.js";
import { formatDateTime, formatValue, relativeTime } from "../format.js";
import { Poller, banner, icon, limited, phoneWidth, problemText, statusBadge, timeAgo } from "../ui.js";
import { AddServerDialog } from "./add-server.js";

const STATUS_REFRESH_MS = 5000;
const METRICS_REFRESH_MS = 30000;
const SPARK_NAMES = ["cpu.percent", "mem.used_percent", "disk.root.used_percent", "load.1"];
const SPARK_RANGE_S = 3600;
const SPARK_STEP_S = 120;
const SEVERITY = { offline: 0, warning: 1, unknown: 2, initialising: 3, online: 4, paused: 5 };
const SORTS = {
  status: (a, b) => SEVERITY[a.status] - SEVERITY[b.status] || a.name.localeCompare(b.name),
  name: (a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }),
  seen: (a, b) => (b.last_seen_at || "").localeCompare(a.last_seen_at || "") || a.name.localeCompare(b.name),
};

export class ServersView {
  constructor(app) {
    this.app = app;
    this.title = "Servers";
    this.section = "servers";
    this.servers = null;
    this.metrics = new Map();
    this.error = null;
    this.query = "";
    this.sort = "status";
    this.notice = app.takeNotice();
    this.dialog = null;
    this.statusPoller = new Poller(() => this.refresh(), STATUS_REFRESH_MS);
    this.metricsPoller = new Poller(() => this.refreshMetrics(), METRICS_REFRESH_MS);
    this.onWidth = () => this.app.update();
  }

  connected() {
    phoneWidth.addEventListener("change", this.onWidth);
    this.statusPoller.start();
  }

  disconnected() {
    phoneWidth.removeEventListener("change", this.onWidth);
    this.statusPoller.stop();
    this.metricsPoller.stop();
    if (this.dialog) this.dialog.stop();
  }

  async refresh() {
    try {
      const first = this.servers === null;
      this.servers = await listAll("/api/v1/servers", "servers");
      this.error = null;
      if (first) this.metricsPoller.start();
    } catch (error) {
      if (error.status === 401) return;
      this.error = problemText(error);
    }
    this.app.update();
  }

  async refreshMetrics() {
    if (!this.servers) return;
    const now = Date.now();
    const from = new Date(now - SPARK_RANGE_S * 1000).toISOString();
    const reporting = this.servers.filter((s) => s.last_seen_at);
    const results = await limited(reporting.map((server) => () =>
      api("GET", serverPath(server.id, "/metrics"), {
        query: { names: SPARK_NAMES, from, step: SPARK_STEP_S },
      })));
    reporting.forEach((server, index) => {
      const result = results[index];
      if (result && !(result instanceof Error)) this.metrics.set(server.id, summarise(result));
    });
    this.app.update();
  }

  openAddServer() {
    this.dialog = new AddServerDialog(this.app, {
      onClose: (created) => {
        this.dialog = null;
        this.app.update();
        if (created) this.refresh();
      },
    });
    this.app.update();
  }

  visible() {
    const query = this.query.trim().toLowerCase();
    return (this.servers || [])
      .filter((s) => !query || s.name.toLowerCase().includes(query))
      .sort(SORTS[this.sort]);
  }

  render() {
    const count = this.servers ? this.servers.length : null;
    return html`
      <div class="page-header">
        <div class="title">
          <h1>Servers</h1>
          <p class="muted small">${count === null ? "Loading…" : summaryLine(this.servers)}</p>
        </div>
        <div class="toolbar">
          <button type="button" class="primary" @click=${() => this.openAddServer()}>${icon("plus")}Add server</button>
        </div>
      </div>
      <div class="stack">
        ${this.notice ? banner("success", this.notice, { role: "status" }) : nothing}
        ${this.error ? banner("error", html`Could not load your servers: ${this.error}`, { role: "alert" }) : nothing}
        ${count === 0 ? this.emptyState() : count ? this.list() : nothing}
      </div>
      ${this.dialog ? this.dialog.render() : nothing}`;
  }

  emptyState() {
    return html`<section class="card empty" aria-labelledby="empty-title">
      ${icon("server", { className: "illustration" })}
      <h2 id="empty-title">Add your first server</h2>
      <p>Server Scout shows a server once its agent reports. It takes a minute:</p>
      <ol class="steps">
        <li><span><strong>Add a server</strong> and give it a name. You get its API key, shown once.</span></li>
        <li><span><strong>Install the agent</strong> on that machine with the command shown next to the key.</span></li>
        <li><span><strong>Watch it check in.</strong> It turns <em>online</em> within seconds, with its CPU, memory, disk and network.</span></li>
      </ol>
      <button type="button" class="primary" @click=${() => this.openAddServer()}>${icon("plus")}Add server</button>
    </section>`;
  }

  list() {
    const rows = this.visible();
    const now = Date.now();
    return html`<section class="card" aria-label="Your servers">
      <div class="card-header">
        <div class="row">
          <label class="visually-hidden" for="server-search">Search servers by name</label>
          <input id="server-search" type="search" placeholder="Search by name" .value=${this.query}
            @input=${(e) => { this.query = e.target.value; this.app.update(); }}>
        </div>
        <div class="row">
          <label for="server-sort" class="small muted">Sort by</label>
          <select id="server-sort" .value=${this.sort} @change=${(e) => { this.sort = e.target.value; this.app.update(); }}>
            <option value="status">Status (problems first)</option>
            <option value="name">Name</option>
            <option value="seen">Last seen</option>
          </select>
        </div>
      </div>
      ${rows.length === 0
        ? html`<div class="empty"><p>No server's name contains “${this.query}”.</p>
            <button type="button" class="small" @click=${() => { this.query = ""; this.app.update(); }}>Clear the search</button></div>`
        : phoneWidth.matches ? this.cards(rows, now) : this.table(rows, now)}
    </section>`;
  }

  table(rows, now) {
    return html`<div class="table-wrap" tabindex="0" role="region" aria-label="Servers"><table class="servers-table">
      <thead><tr>
        <th scope="col">Status</th>
        <th scope="col">Name</th>
        <th scope="col">CPU, last hour</th>
        <th scope="col" class="num hide-phone">Memory</th>
        <th scope="col" class="num hide-phone">Disk /</th>
        <th scope="col" class="num hide-phone">Load</th>
      </tr></thead>
      <tbody>${repeat(rows, (s) => s.id, (s) => this.row(s, now))}</tbody>
    </table></div>`;
  }

  cards(rows, now) {
    return html`<ul class="server-cards" aria-label="Servers">${repeat(rows, (s) => s.id, (s) => this.card(s, now))}</ul>`;
  }

  row(server, now) {
    const metrics = this.metrics.get(server.id);
    return html`<tr data-server-id=${server.id}>
      <td>${statusBadge(server.status)}</td>
      <td class="name">
        <a href="/servers/${server.id}">${server.name}</a>
        <span class="sub">${server.last_seen_at ? html`Last seen ${lastSeen(server, now)}` : lastSeen(server, now)}</span>
      </td>
      <td>${metrics ? sparkline(metrics) : html`<span class="muted">—</span>`}</td>
      <td class="num hide-phone">${gauge(metrics, "mem.used_percent")}</td>
      <td class="num hide-phone">${gauge(metrics, "disk.root.used_percent")}</td>
      <td class="num hide-phone">${metrics && metrics.last["load.1"] !== undefined ? formatValue(metrics.last["load.1"], "load") : "—"}</td>
    </tr>`;
  }

  /** A phone's row: name and status on top, the key figures beneath; the whole card is the
   * server's link (its name stretched over the card), so a tap anywhere opens it. */
  card(server, now) {
    const metrics = this.metrics.get(server.id);
    return html`<li class="server-card" data-server-id=${server.id}>
      <div class="server-card-head">
        <a class="server-card-link" href="/servers/${server.id}">${server.name}</a>
        ${statusBadge(server.status)}
      </div>
      <dl class="figures">
        <div><dt>CPU</dt><dd>${metrics ? sparkline(metrics) : html`<span class="muted">—</span>`}</dd></div>
        <div><dt>Memory</dt><dd>${gauge(metrics, "mem.used_percent")}</dd></div>
        <div><dt>Disk /</dt><dd>${gauge(metrics, "disk.root.used_percent")}</dd></div>
        <div><dt>Last seen</dt><dd>${lastSeen(server, now)}</dd></div>
      </dl>
    </li>`;
  }
}

function lastSeen(server, now) {
  const seen = server.last_seen_at;
  return seen
    ? timeAgo(seen, relativeTime(seen, now), formatDateTime(seen))
    : "Waiting for the first check-in";
}

function summaryLine(servers) {
  if (servers.length === 0) return "No servers yet.";
  const online = servers.filter((s) => s.status === "online").length;
  const attention = servers.filter((s) => s.status === "warning" || s.status === "offline").length;
  const parts = [`${servers.length} ${servers.length === 1 ? "server" : "servers"}`, `${online} online`];
  if (attention) parts.push(`${attention} need attention`);
  return parts.join(" · ");
}

/** Per-name points and the newest value of each, from one coarse metrics query. */
function summarise(result) {
  const points = {};
  const last = {};
  for (const series of result.series) {
    points[series.name] = series.points.map((p) => [Date.parse(p.ts), p.avg]);
    if (series.points.length) last[series.name] = series.points[series.points.length - 1].avg;
  }
  return { points, last, from: Date.parse(result.from), to: Date.parse(result.to) };
}

function gauge(metrics, name) {
  if (!metrics || metrics.last[name] === undefined) return html`<span class="muted">—</span>`;
  const value = metrics.last[name];
  return html`<span class="meter">${formatValue(value, "percent")}
    <span class="bar" aria-hidden="true"><span class="w${Math.round(Math.min(100, Math.max(0, value)) / 5) * 5}"></span></span></span>`;
}

function sparkline(metrics) {
  const points = metrics.points["cpu.percent"] || [];
  if (points.length === 0) return html`<span class="muted">No CPU data</span>`;
  const span = Math.max(1, metrics.to - metrics.from);
  const xy = points.map(([t, v]) => [((t - metrics.from) / span) * 100, 28 - (Math.min(100, Math.max(0, v)) / 100) * 26 - 1]);
  const line = xy.map(([x, y]) => `${x.toFixed(2)},${y.toFixed(2)}`).join(" ");
  const area = `${xy[0][0].toFixed(2)},28 ${line} ${xy[xy.length - 1][0].toFixed(2)},28`;
  const values = points.map(([, v]) => v);
  const now = values[values.length - 1];
  const label = `CPU over the last hour: now ${formatValue(now, "percent")}, lowest ${formatValue(Math.min(...values), "percent")}, highest ${formatValue(Math.max(...values), "percent")}`;
  return html`<span class="spark">
    <svg viewBox="0 0 100 28" preserveAspectRatio="none" role="img" aria-label=${label}>${svg`
      <polygon class="area" points=${area}></polygon><polyline points=${line}></polyline>`}</svg>
    <span>${formatValue(now, "percent")}</span></span>`;
}
