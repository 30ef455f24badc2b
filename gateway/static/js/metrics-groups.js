// Which charts a server gets, chosen from the names of the metrics it reports. Known families
// (the agent's) get a chart each; everything else is grouped by its first name segment.
import { unitOf } from "./format.js";

const FAMILIES = [
  { id: "cpu", title: "CPU", unit: "percent", match: /^cpu\.[a-z_]+$/, first: "cpu.percent" },
  { id: "memory", title: "Memory", unit: "bytes", match: /^(mem|swap)\.(used|cached|buffers)_bytes$/ },
  { id: "load", title: "Load average", unit: "load", match: /^load\.\d+$/ },
  { id: "disk", title: "Disk usage", unit: "percent", match: /^disk\..+\.used_percent$/ },
  { id: "network", title: "Network", unit: "bytes_per_s", match: /^net\..+\.(rx|tx)_bytes_per_s$/ },
  { id: "processes", title: "Processes", unit: "count", match: /^proc\.(count|running|blocked)$/ },
];
// The most a chart draws (and a query asks for) at once.
export const MAX_NAMES_PER_CHART = 12;

const LABELS = {
  "cpu.percent": "total",
  "mem.used_bytes": "used",
  "mem.cached_bytes": "cached",
  "mem.buffers_bytes": "buffers",
  "swap.used_bytes": "swap used",
  "load.1": "1 min",
  "load.5": "5 min",
  "load.15": "15 min",
  "proc.count": "processes",
};

export function shortLabel(name) {
  if (LABELS[name]) return LABELS[name];
  let match = name.match(/^cpu\.(.+)$/);
  if (match) return match[1];
  match = name.match(/^disk\.(.+)\.used_percent$/);
  if (match) return match[1] === "root" ? "/" : match[1];
  match = name.match(/^net\.(.+)\.(rx|tx)_bytes_per_s$/);
  if (match) return `${match[1]} ${match[2] === "rx" ? "in" : "out"}`;
  match = name.match(/^proc\.(.+)$/);
  if (match) return match[1];
  return name;
}

function chunks(names, size) {
  const out = [];
  for (let i = 0; i < names.length; i += size) out.push(names.slice(i, i + size));
  return out;
}

/** {primary: [...groups], more: [...groups]}; a group is {id, title, unit, names}. */
export function chartGroups(allNames) {
  const names = [...allNames].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const used = new Set();
  const primary = [];
  for (const family of FAMILIES) {
    let members = names.filter((n) => family.match.test(n));
    if (family.first && members.includes(family.first)) {
      members = [family.first, ...members.filter((n) => n !== family.first)];
    }
    members.forEach((n) => used.add(n));
    chunks(members, MAX_NAMES_PER_CHART).forEach((part, i) => {
      primary.push({ id: `${family.id}-${i}`, title: i ? `${family.title} (${i + 1})` : family.title, unit: family.unit, names: part });
    });
  }
  const rest = new Map();
  for (const name of names.filter((n) => !used.has(n))) {
    const key = `${name.split(".")[0]}|${unitOf(name)}`;
    if (!rest.has(key)) rest.set(key, []);
    rest.get(key).push(name);
  }
  const more = [];
  for (const [key, members] of rest) {
    const [prefix, unit] = key.split("|");
    chunks(members, MAX_NAMES_PER_CHART).forEach((part, i) => {
      more.push({ id: `more-${prefix}-${unit}-${i}`.replace(/[^A-Za-z0-9_-]/g, "_"), title: `${prefix} (${unit.replace(/_/g, " ")})${i ? ` ${i + 1}` : ""}`, unit, names: part });
    });
  }
  return { primary, more };
}
