// A server's overview: the latest value of every metric with its unit, and charts of what it
// reports over a chosen range, with as many points as each chart's width shows.
import { html, nothing, repeat } from "../lit.js";
import { api, serverPath } from "../api.js";
import { Chart } from "../charts.js";
import { chartGroups, shortLabel } from "../metrics-groups.js";
import { exactValue, formatBytes, formatDateTime, formatValue, relativeTime, unitOf } from "../format.js";
import { Poller, banner, limited, problemText } from "../ui.js";

const RANGES = [
  { id: "1h", label: "1 h", seconds: 3600, live: true },
  { id: "6h", label: "6 h", seconds: 6 * 3600, live: true },
  { id: "24h", label: "24 h", seconds: 86400, live: true },
  { id: "7d", label: "7 d", seconds: 7 * 86400, live: false },
  { id: "30d", label: "30 d", seconds: 30 * 86400, live: false },
];
// The API's limits per query (see the OpenAPI document): points per series and per query.
const MAX_POINTS_PER_SERIES = 1000;
const MAX_POINTS_PER_QUERY = 20000;
const PIXELS_PER_POINT = 3;
const LATEST_REFRESH_MS = 10000;

/** How many points a chart asks for: about one per PIXELS_PER_POINT of its width, within the
 * API's limits. The API picks the nice step that gives at most that many (its `points`
 * parameter), which the rollup tiers serve at about a row per point. */
export function fittedPoints(width, names) {
  const wanted = Math.max(20, Math.floor(width / PIXELS_PER_POINT));
  return Math.min(wanted, MAX_POINTS_PER_SERIES, Math.floor(MAX_POINTS_PER_QUERY / Math.max(1, names)));
}

const toLocalInput = (ms) => {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
};

export class OverviewTab {
  constructor(app, page) {
    this.app = app;
    this.page = page;
    this.range = RANGES[0];
    this.custom = null; // {from, to} in ms when a custom range is shown
    this.customError = null;
    // What the custom-range inputs show: set when a range is picked, not moved by time.
    this.inputs = this.window();
    this.latest = null;
    this.names = null;
    this.groups = null;
    this.charts = new Map();
    this.error = null;
    this.latestPoller = new Poller(() => this.loadLatest(), LATEST_REFRESH_MS);
    this.chartPoller = null;
  }

  connected() {}

  serverLoaded() {
    this.latestPoller.start();
    this.loadNames();
  }

  disconnected() {
    this.latestPoller.stop();
    if (this.chartPoller) this.chartPoller.stop();
    for (const chart of this.charts.values()) chart.destroy();
  }

  get id() {
    return this.page.id;
  }

  async loadLatest() {
    try {
      this.latest = (await api("GET", serverPath(this.id, "/metrics/latest"))).metrics;
      if (this.names !== null && this.latest.some((m) => !this.names.includes(m.name))) {
        await this.loadNames();
      }
    } catch (error) {
      if (error.status !== 401) this.error = problemText(error);
    }
    this.app.update();
  }

  async loadNames() {
    try {
      this.names = (await api("GET", serverPath(this.id, "/metric-names"))).names;
      this.groups = chartGroups(this.names);
      for (const group of [...this.groups.primary, ...this.groups.more]) {
        if (!this.charts.has(group.id)) {
          this.charts.set(group.id, new Chart({
            id: `chart-${group.id}`, title: group.title, unit: group.unit, names: group.names,
            labels: shortLabel, onSelectRange: (from, to) => this.selectCustom(from, to),
          }));
        }
      }
      this.app.update();
      requestAnimationFrame(() => this.restartCharts());
    } catch (error) {
      if (error.status !== 401) this.error = problemText(error);
      this.app.update();
    }
  }

  window() {
    if (this.custom) return this.custom;
    const to = Date.now();
    return { from: to - this.range.seconds * 1000, to };
  }

  restartCharts() {
    if (this.chartPoller) this.chartPoller.stop();
    const live = !this.custom && this.range.live;
    const { from, to } = this.window();
    // A live chart is polled about once a point (at least every 10 s).
    const perPoint = (to - from) / 1000 / fittedPoints(this.chartWidth(), 1);
    this.chartPoller = new Poller(() => this.loadCharts(), live ? Math.max(10, perPoint) * 1000 : 3600 * 1000);
    this.chartPoller.start();
  }

  chartWidth() {
    const any = [...this.charts.values()].find((c) => c.width() > 0);
    return any ? any.width() : 600;
  }

  async loadCharts() {
    const { from, to } = this.window();
    const shown = [...this.charts.values()].filter((chart) => chart.width() > 0);
    await limited(shown.map((chart) => async () => {
      const points = fittedPoints(chart.width(), chart.names.length);
      try {
        const result = await api("GET", serverPath(this.id, "/metrics"), {
          query: { names: chart.names, from: new Date(from).toISOString(), to: new Date(to).toISOString(), points },
        });
        chart.setData(result);
      } catch (error) {
        if (error.status !== 401) this.error = problemText(error);
      }
    }), 4);
    this.app.update();
  }

  pickRange(range) {
    this.range = range;
    this.custom = null;
    this.customError = null;
    this.inputs = this.window();
    this.app.update();
    this.restartCharts();
  }

  selectCustom(from, to) {
    this.custom = { from: Math.round(from), to: Math.round(to) };
    this.customError = null;
    this.inputs = this.custom;
    this.app.update();
    this.restartCharts();
  }

  applyCustom(event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const from = Date.parse(String(form.get("from")));
    const to = Date.parse(String(form.get("to")));
    if (Number.isNaN(from) || Number.isNaN(to)) {
      this.customError = "Give both a start and an end.";
    } else if (from >= to) {
      this.customError = "The start must be before the end.";
    } else if (from > Date.now()) {
      this.customError = "The start is in the future.";
    } else {
      this.selectCustom(from, to);
      return;
    }
    this.app.update();
  }

  render() {
    if (this.names !== null && this.names.length === 0) return this.noData();
    return html`<div class="stack-lg">
      ${this.error ? banner("error", this.error, { role: "alert" }) : nothing}
      ${this.latestSection()}
      ${this.chartsSection()}
    </div>`;
  }

  noData() {
    const server = this.page.server;
    return html`<section class="card empty" aria-labelledby="no-data-title">
      <h2 id="no-data-title">No metrics yet</h2>
      <p>${server.name} has not delivered any metrics. Install the agent with the key you were shown when
        you added it. Lost it? Regenerate a key in the settings: the agent picks a new key up without a restart.</p>
      <a class="button primary" href="/servers/${encodeURIComponent(server.id)}/settings">Open the settings</a>
    </section>`;
  }

  latestSection() {
    if (!this.latest) return html`<p class="muted">Loading the latest values…</p>`;
    const byName = new Map(this.latest.map((m) => [m.name, m]));
    const newest = this.latest.reduce((a, m) => (a && a > m.ts ? a : m.ts), null);
    return html`<section aria-labelledby="latest-title" class="stack">
      <div class="spread"><h2 id="latest-title">Latest values</h2>
        ${newest ? html`<span class="small muted">as of <time datetime=${newest} title=${formatDateTime(newest)}>${relativeTime(newest)}</time></span>` : nothing}</div>
      <div class="tiles">${tiles(byName).map(tile)}</div>
      <details class="more">
        <summary>All ${this.latest.length} latest values</summary>
        <div class="card table-wrap" tabindex="0" role="region" aria-label="All latest values"><table>
          <caption class="visually-hidden">The latest value of every metric</caption>
          <thead><tr><th scope="col">Metric</th><th scope="col" class="num">Value</th><th scope="col">Time</th></tr></thead>
          <tbody>${repeat(this.latest, (m) => m.name, (m) => html`<tr>
            <td class="mono">${m.name}</td>
            <td class="num" title=${exactValue(m.value, unitOf(m.name))}>${formatValue(m.value, unitOf(m.name))}</td>
            <td class="nowrap">${formatDateTime(m.ts)}</td></tr>`)}</tbody>
        </table></div>
      </details>
    </section>`;
  }

  chartsSection() {
    if (!this.groups) return nothing;
    const { from, to } = this.window();
    const chart = (group) => this.charts.get(group.id).render();
    return html`<section aria-labelledby="charts-title" class="stack">
      <div class="spread">
        <h2 id="charts-title">Charts</h2>
        <div class="range-picker">
          <div class="segmented" role="group" aria-label="Time range">
            ${RANGES.map((r) => html`<button type="button" aria-pressed=${!this.custom && this.range === r ? "true" : "false"}
              @click=${() => this.pickRange(r)}>${r.label}</button>`)}
          </div>
          <form class="custom-range" @submit=${(e) => this.applyCustom(e)} aria-label="Custom range">
            <div class="field"><label for="range-from" class="small">From</label>
              <input id="range-from" name="from" type="datetime-local" .value=${toLocalInput(this.inputs.from)}></div>
            <div class="field"><label for="range-to" class="small">To</label>
              <input id="range-to" name="to" type="datetime-local" .value=${toLocalInput(this.inputs.to)}></div>
            <button type="submit" aria-pressed=${this.custom ? "true" : "false"}>Show range</button>
          </form>
        </div>
      </div>
      ${this.customError ? banner("error", this.customError, { role: "alert" }) : nothing}
      <p class="small muted">${this.custom
        ? html`Showing ${formatDateTime(new Date(from).toISOString())} – ${formatDateTime(new Date(to).toISOString())}.`
        : html`Showing the last ${this.range.label}${this.range.live ? ", refreshed live" : ""}.`}
        Drag across a chart to zoom into that period.</p>
      <div class="charts">${this.groups.primary.map(chart)}</div>
      ${this.groups.more.length ? html`<details class="more" @toggle=${() => requestAnimationFrame(() => this.loadCharts())}>
        <summary>More metrics (${this.groups.more.length} charts)</summary>
        <div class="charts">${this.groups.more.map(chart)}</div>
      </details>` : nothing}
    </section>`;
  }
}

function value(byName, name) {
  const metric = byName.get(name);
  return metric ? metric.value : undefined;
}

/** The headline tiles, for whichever of the agent's metrics the server reports. */
function tiles(byName) {
  const out = [];
  const add = (label, name, unit, detail = null) => {
    const v = value(byName, name);
    if (v !== undefined) out.push({ label, value: formatValue(v, unit), exact: exactValue(v, unit), detail, name });
  };
  add("CPU", "cpu.percent", "percent");
  const memTotal = value(byName, "mem.total_bytes");
  const memUsed = value(byName, "mem.used_bytes");
  add("Memory used", "mem.used_percent", "percent",
    memTotal !== undefined && memUsed !== undefined ? `${formatBytes(memUsed)} of ${formatBytes(memTotal)}` : null);
  if (value(byName, "mem.used_percent") === undefined) add("Memory used", "mem.used_bytes", "bytes");
  if (value(byName, "swap.total_bytes")) add("Swap used", "swap.used_percent", "percent");
  const load5 = value(byName, "load.5");
  const load15 = value(byName, "load.15");
  add("Load (1 min)", "load.1", "load",
    load5 !== undefined && load15 !== undefined ? `5 min ${formatValue(load5, "load")} · 15 min ${formatValue(load15, "load")}` : null);
  for (const [name] of byName) {
    const disk = name.match(/^disk\.(.+)\.used_percent$/);
    if (disk) {
      const total = value(byName, `disk.${disk[1]}.total_bytes`);
      const used = value(byName, `disk.${disk[1]}.used_bytes`);
      add(`Disk ${disk[1] === "root" ? "/" : disk[1]}`, name, "percent",
        total !== undefined && used !== undefined ? `${formatBytes(used)} of ${formatBytes(total)}` : null);
    }
    const net = name.match(/^net\.(.+)\.rx_bytes_per_s$/);
    if (net) {
      const tx = value(byName, `net.${net[1]}.tx_bytes_per_s`);
      add(`Network ${net[1]} in`, name, "bytes_per_s", tx !== undefined ? `out ${formatValue(tx, "bytes_per_s")}` : null);
    }
  }
  add("Processes", "proc.count", "count");
  add("Uptime", "uptime.seconds", "seconds");
  return out;
}

function tile(t) {
  return html`<div class="card tile" data-metric=${t.name}>
    <span class="label">${t.label}</span>
    <span class="value" title=${t.exact}>${t.value}</span>
    ${t.detail ? html`<span class="detail">${t.detail}</span>` : nothing}
  </div>`;
}
