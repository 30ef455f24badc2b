// Time-series charts on uPlot (loaded only when a chart is shown): the average as a line, the
// min-max of each bucket as a band, a crosshair whose values are written below the chart.
import { html, nothing, ref } from "./lit.js";
import { formatDateTime, formatDayTime, formatTime, formatValue, exactValue } from "./format.js";
import { cssColor, isDark, onThemeChange } from "./theme.js";

const COLOURS = 6;
const HEIGHT = 220;
let uplotModule = null;

function loadUplot() {
  uplotModule ??= import("../vendor/uplot/uPlot.esm.js").then((m) => m.default);
  return uplotModule;
}

/** Series of a metrics answer on one regular time grid (null where a bucket has no sample). */
export function toColumns(result, names) {
  const step = result.step_seconds;
  const start = Math.floor(Date.parse(result.from) / 1000 / step) * step;
  const end = Date.parse(result.to) / 1000;
  const xs = [];
  for (let t = start; t < end; t += step) xs.push(t);
  const index = new Map(xs.map((t, i) => [t, i]));
  const byName = new Map(result.series.map((s) => [s.name, s.points]));
  const columns = [xs];
  for (const name of names) {
    const avg = new Array(xs.length).fill(null);
    const min = new Array(xs.length).fill(null);
    const max = new Array(xs.length).fill(null);
    for (const point of byName.get(name) || []) {
      const i = index.get(Date.parse(point.ts) / 1000);
      if (i === undefined) continue;
      avg[i] = point.avg;
      min[i] = point.min;
      max[i] = point.max;
    }
    columns.push(avg, min, max);
  }
  return columns;
}

export function hasData(columns) {
  return columns.slice(1).some((c) => c.some((v) => v !== null));
}

export class Chart {
  constructor({ id, title, unit, names, labels, onSelectRange }) {
    this.id = id;
    this.title = title;
    this.unit = unit;
    this.names = names;
    this.labels = labels || ((name) => name);
    this.onSelectRange = onSelectRange;
    this.columns = null;
    this.step = null;
    this.element = null;
    this.legend = null;
    this.plot = null;
    this.cursorIndex = null;
    this.resize = new ResizeObserver(() => this.fit());
    this.stopTheme = onThemeChange(() => this.rebuild());
  }

  width() {
    return this.element ? this.element.clientWidth : 0;
  }

  setData(result) {
    this.step = result.step_seconds;
    this.columns = toColumns(result, this.names);
    if (this.plot && this.plot.data[0].length === this.columns[0].length) {
      this.plot.setData(this.columns);
    } else {
      this.rebuild();
    }
    this.writeLegend();
  }

  destroy() {
    this.resize.disconnect();
    this.stopTheme();
    if (this.plot) this.plot.destroy();
    this.plot = null;
  }

  attach(element) {
    if (element === this.element) return;
    this.element = element;
    if (element) {
      this.resize.observe(element);
      this.rebuild();
    }
  }

  fit() {
    if (this.plot && this.element && this.element.clientWidth > 0) {
      this.plot.setSize({ width: this.element.clientWidth, height: HEIGHT });
    }
  }

  async rebuild() {
    if (!this.element || !this.columns) return;
    const uPlot = await loadUplot();
    if (!this.element) return;
    if (this.plot) this.plot.destroy();
    this.element.replaceChildren();
    if (!hasData(this.columns)) {
      this.plot = null;
      return;
    }
    this.plot = new uPlot(this.options(), this.columns, this.element);
  }

  options() {
    const grid = cssColor("--chart-grid");
    const text = cssColor("--muted");
    const series = [{}];
    const bands = [];
    this.names.forEach((name, i) => {
      const colour = cssColor(`--chart-${(i % COLOURS) + 1}`);
      const base = series.length;
      series.push(
        // uPlot shows the points by itself where they are sparse (a new server's first minutes).
        { label: this.labels(name), stroke: colour, width: 1.75, spanGaps: false },
        { label: `${name} min`, stroke: "transparent", points: { show: false } },
        { label: `${name} max`, stroke: "transparent", points: { show: false } },
      );
      bands.push({ series: [base + 2, base + 1], fill: withAlpha(colour, isDark() ? 0.22 : 0.16) });
    });
    const unit = this.unit;
    const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    return {
      width: Math.max(200, this.width()),
      height: HEIGHT,
      series,
      bands,
      legend: { show: false },
      cursor: { drag: { x: true, y: false, setScale: false }, points: { size: 7 }, sync: { key: "scout-server" } },
      scales: {
        x: { time: true },
        y: { range: (u, min, max) => yRange(unit, min, max) },
      },
      axes: [
        { ...axis, values: (u, ticks) => ticks.map((t) => axisTime(t, u)) },
        { ...axis, size: 72, values: (u, ticks) => ticks.map((v) => formatValue(v, unit)) },
      ],
      hooks: {
        setCursor: [(u) => { this.cursorIndex = u.cursor.idx ?? null; this.writeLegend(); }],
        setSelect: [(u) => this.selected(u)],
      },
    };
  }

  selected(u) {
    if (u.select.width < 8 || !this.onSelectRange) return;
    const from = u.posToVal(u.select.left, "x") * 1000;
    const to = u.posToVal(u.select.left + u.select.width, "x") * 1000;
    u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
    this.onSelectRange(from, to);
  }

  /** The bucket under the cursor, else the newest bucket with a value. */
  legendIndex() {
    if (this.cursorIndex !== null && this.cursorIndex !== undefined) return this.cursorIndex;
    const xs = this.columns[0];
    for (let i = xs.length - 1; i >= 0; i -= 1) {
      if (this.columns.slice(1).some((c) => c[i] !== null)) return i;
    }
    return null;
  }

  writeLegend() {
    if (!this.legend || !this.columns) return;
    const i = this.legendIndex();
    const parts = [];
    if (i !== null) {
      const when = document.createElement("span");
      when.className = "when";
      const start = this.columns[0][i] * 1000;
      when.textContent = `${this.cursorIndex !== null ? "At" : "Latest"}: ${formatDateTime(new Date(start).toISOString())} (${this.step} s bucket)`;
      parts.push(when);
    }
    this.names.forEach((name, n) => {
      const item = document.createElement("span");
      item.className = "item";
      const swatch = document.createElement("span");
      swatch.className = `swatch c${(n % COLOURS) + 1}`;
      const label = document.createElement("span");
      label.className = "name";
      label.textContent = this.labels(name);
      const value = document.createElement("strong");
      const avg = i === null ? null : this.columns[1 + n * 3][i];
      value.textContent = avg === null ? "—" : formatValue(avg, this.unit);
      if (avg !== null) value.title = exactValue(avg, this.unit);
      item.append(swatch, label, value);
      const min = i === null ? null : this.columns[2 + n * 3][i];
      const max = i === null ? null : this.columns[3 + n * 3][i];
      if (min !== null && max !== null && min !== max) {
        const range = document.createElement("span");
        range.className = "range";
        range.textContent = `${formatValue(min, this.unit)} – ${formatValue(max, this.unit)}`;
        item.append(range);
      }
      parts.push(item);
    });
    this.legend.replaceChildren(...parts);
  }

  render() {
    const empty = this.columns && !hasData(this.columns);
    return html`<section class="card chart-card" aria-labelledby="${this.id}-title">
      <div class="card-header"><h3 id="${this.id}-title">${this.title}</h3>
        ${this.step ? html`<p>${this.step} s per point · line: average, band: min–max</p>` : nothing}</div>
      <div class="chart-body">
        ${empty ? html`<div class="chart-empty">No samples in this range.</div>` : nothing}
        <div class="chart-canvas ${empty ? "visually-hidden" : ""}" role="img"
          aria-label="${this.title} chart; its values are in the table below" ${ref((el) => this.attach(el))}></div>
        <div class="chart-legend" aria-live="off" ${ref((el) => { this.legend = el; this.writeLegend(); })}></div>
        ${this.columns && !empty ? this.table() : nothing}
      </div>
    </section>`;
  }

  table() {
    const rows = [];
    const xs = this.columns[0];
    for (let i = xs.length - 1; i >= 0 && rows.length < 30; i -= 1) {
      if (this.columns.slice(1).some((c) => c[i] !== null)) rows.push(i);
    }
    return html`<details class="data-table">
      <summary>Values (newest ${rows.length} points)</summary>
      <div class="table-wrap" tabindex="0" role="region" aria-label="${this.title} values"><table>
        <caption class="visually-hidden">${this.title}: average, minimum and maximum per point</caption>
        <thead><tr><th scope="col">Time</th>${this.names.map((name) => html`<th scope="col" class="num">${this.labels(name)}</th>`)}</tr></thead>
        <tbody>${rows.map((i) => html`<tr>
          <td class="nowrap">${formatDateTime(new Date(xs[i] * 1000).toISOString())}</td>
          ${this.names.map((_, n) => cell(this.columns, n, i, this.unit))}
        </tr>`)}</tbody>
      </table></div>
    </details>`;
  }
}

function cell(columns, n, i, unit) {
  const avg = columns[1 + n * 3][i];
  if (avg === null) return html`<td class="num">—</td>`;
  const min = columns[2 + n * 3][i];
  const max = columns[3 + n * 3][i];
  const spread = min !== max ? ` (${formatValue(min, unit)} – ${formatValue(max, unit)})` : "";
  return html`<td class="num" title=${exactValue(avg, unit)}>${formatValue(avg, unit)}${spread}</td>`;
}

function yRange(unit, min, max) {
  if (min === null || max === null) return [0, 1];
  if (unit === "percent") return [0, Math.max(100, max)];
  const low = Math.min(0, min);
  const high = max === low ? low + 1 : max + (max - low) * 0.08;
  return [low, high];
}

function axisTime(seconds, u) {
  const span = u.scales.x.max - u.scales.x.min;
  return span > 2 * 86400 ? formatDayTime(seconds * 1000) : formatTime(seconds * 1000).slice(0, 5);
}

function withAlpha(colour, alpha) {
  const match = colour.match(/rgba?\(([^)]+)\)/);
  if (!match) return colour;
  const [r, g, b] = match[1].split(",").map((p) => p.trim());
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}
