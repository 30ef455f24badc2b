// How values and times are written for people: units from metric names, relative times.

const numbers = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const integers = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const shortTime = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const dayTime = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
const BINARY = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** The unit a metric's name implies (the agent's naming: *_percent, *_bytes, *_per_s, ...). */
export function unitOf(name) {
  if (/_bytes_per_s$/.test(name)) return "bytes_per_s";
  if (/_bytes$/.test(name)) return "bytes";
  if (/_percent$/.test(name) || /^cpu\.[a-z_]+$/.test(name)) return "percent";
  if (/(^|[._])seconds$/.test(name)) return "seconds";
  if (/^load\.\d+$/.test(name)) return "load";
  if (/(^|[._])(count|running|blocked|dropped|rejected|depth)$/.test(name)) return "count";
  return "number";
}

export function formatBytes(value) {
  let scaled = Math.abs(value);
  let index = 0;
  while (scaled >= 1024 && index < BINARY.length - 1) {
    scaled /= 1024;
    index += 1;
  }
  const digits = index === 0 ? 0 : scaled < 10 ? 2 : scaled < 100 ? 1 : 0;
  const text = new Intl.NumberFormat(undefined, { maximumFractionDigits: digits }).format(scaled);
  return `${value < 0 ? "-" : ""}${text} ${BINARY[index]}`;
}

export function formatDuration(seconds) {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const minutes = Math.floor(s / 60);
  if (minutes < 60) return `${minutes} min ${s % 60} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** A value in its metric's unit, as short as it stays exact to two decimals. */
export function formatValue(value, unit) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  switch (unit) {
    case "percent":
      return `${numbers.format(value)} %`;
    case "bytes":
      return formatBytes(value);
    case "bytes_per_s":
      return `${formatBytes(value)}/s`;
    case "seconds":
      return formatDuration(value);
    case "count":
      return integers.format(value);
    default:
      return numbers.format(value);
  }
}

/** The exact value, for a title: nothing rounded. */
export function exactValue(value, unit) {
  const suffix = { percent: " %", bytes: " bytes", bytes_per_s: " bytes/s", seconds: " s" }[unit] || "";
  return `${value}${suffix}`;
}

export const formatDateTime = (iso) => (iso ? dateTime.format(new Date(iso)) : "—");
export const formatTime = (ms) => shortTime.format(new Date(ms));
export const formatDayTime = (ms) => dayTime.format(new Date(ms));

/** "just now", "12 s ago", "3 min ago", "in 5 min"... */
export function relativeTime(iso, now = Date.now()) {
  if (!iso) return "never";
  const seconds = Math.round((Date.parse(iso) - now) / 1000);
  const future = seconds > 0;
  const s = Math.abs(seconds);
  if (s < 5) return future ? "in a few seconds" : "just now";
  let text;
  if (s < 60) text = `${s} s`;
  else if (s < 3600) text = `${Math.floor(s / 60)} min`;
  else if (s < 86400) text = `${Math.floor(s / 3600)} h`;
  else text = `${Math.floor(s / 86400)} d`;
  return future ? `in ${text}` : `${text} ago`;
}

/** A short description of a browser's User-Agent: "Chrome on Linux". */
export function describeAgent(userAgent) {
  if (!userAgent) return "Unknown client";
  const browsers = [
    [/Edg\//, "Edge"], [/OPR\//, "Opera"], [/Firefox\//, "Firefox"],
    [/Chrome\//, "Chrome"], [/Safari\//, "Safari"], [/curl\//, "curl"],
    [/python|aiohttp|scoutctl/i, "Script"],
  ];
  const systems = [
    [/Windows/, "Windows"], [/Android/, "Android"], [/iPhone|iPad/, "iOS"],
    [/Mac OS X/, "macOS"], [/Linux/, "Linux"],
  ];
  const browser = (browsers.find(([pattern]) => pattern.test(userAgent)) || [null, "Browser"])[1];
  const system = (systems.find(([pattern]) => pattern.test(userAgent)) || [null, ""])[1];
  return system ? `${browser} on ${system}` : browser;
}

export const STATUS_LABELS = {
  online: "Online",
  warning: "Warning",
  offline: "Offline",
  initialising: "Initialising",
  paused: "Paused",
  unknown: "Unknown",
};

export const STATUS_HELP = {
  online: "Delivering metrics on time.",
  warning: "Late: no metrics for a few reporting intervals.",
  offline: "No metrics for many reporting intervals.",
  initialising: "Added, waiting for the agent's first check-in.",
  paused: "Monitoring paused by a person: no warning, no offline.",
  unknown: "Status unavailable right now.",
};
