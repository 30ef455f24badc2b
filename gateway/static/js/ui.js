// Pieces every screen shares: icons, status, messages, copyable blocks, dialogs, polling.
import { html, svg, nothing, ref } from "./lit.js";
import { STATUS_HELP, STATUS_LABELS } from "./format.js";

const ICONS = {
  logo: svg`<path d="M3 14h3.5l2-5.5 3 9 2.5-6.5 1 2.5H21" fill="none" stroke="currentColor" stroke-width="2.2" stroke-linecap="round" stroke-linejoin="round"/>`,
  plus: svg`<path d="M12 5v14M5 12h14" stroke="currentColor" stroke-width="2" stroke-linecap="round"/>`,
  copy: svg`<rect x="9" y="9" width="11" height="11" rx="2" fill="none" stroke="currentColor" stroke-width="2"/><path d="M5 15V5a2 2 0 0 1 2-2h8" fill="none" stroke="currentColor" stroke-width="2"/>`,
  check: svg`<path d="m5 12 5 5 9-10" fill="none" stroke="currentColor" stroke-width="2.2" stroke-linecap="round" stroke-linejoin="round"/>`,
  info: svg`<circle cx="12" cy="12" r="9" fill="none" stroke="currentColor" stroke-width="2"/><path d="M12 11v6M12 7.5v.5" stroke="currentColor" stroke-width="2" stroke-linecap="round"/>`,
  warning: svg`<path d="M12 3 2 20h20L12 3Z" fill="none" stroke="currentColor" stroke-width="2" stroke-linejoin="round"/><path d="M12 10v4M12 17v.5" stroke="currentColor" stroke-width="2" stroke-linecap="round"/>`,
  error: svg`<circle cx="12" cy="12" r="9" fill="none" stroke="currentColor" stroke-width="2"/><path d="m9 9 6 6M15 9l-6 6" stroke="currentColor" stroke-width="2" stroke-linecap="round"/>`,
  close: svg`<path d="M6 6l12 12M18 6 6 18" stroke="currentColor" stroke-width="2" stroke-linecap="round"/>`,
  server: svg`<rect x="3" y="4" width="18" height="7" rx="2" fill="none" stroke="currentColor" stroke-width="1.6"/><rect x="3" y="13" width="18" height="7" rx="2" fill="none" stroke="currentColor" stroke-width="1.6"/><path d="M7 7.5h.01M7 16.5h.01" stroke="currentColor" stroke-width="2.4" stroke-linecap="round"/>`,
  sun: svg`<circle cx="12" cy="12" r="4" fill="none" stroke="currentColor" stroke-width="2"/><path d="M12 2v2M12 20v2M4.9 4.9l1.4 1.4M17.7 17.7l1.4 1.4M2 12h2M20 12h2M4.9 19.1l1.4-1.4M17.7 6.3l1.4-1.4" stroke="currentColor" stroke-width="2" stroke-linecap="round"/>`,
  moon: svg`<path d="M20 14.5A8 8 0 1 1 9.5 4a6.5 6.5 0 0 0 10.5 10.5Z" fill="none" stroke="currentColor" stroke-width="2" stroke-linejoin="round"/>`,
  system: svg`<rect x="3" y="4" width="18" height="12" rx="2" fill="none" stroke="currentColor" stroke-width="2"/><path d="M8 20h8M12 16v4" stroke="currentColor" stroke-width="2" stroke-linecap="round"/>`,
  search: svg`<circle cx="11" cy="11" r="6.5" fill="none" stroke="currentColor" stroke-width="2"/><path d="m20 20-4.2-4.2" stroke="currentColor" stroke-width="2" stroke-linecap="round"/>`,
};

/** Phone width: where a wide table becomes cards (the same width as app.css's card rules). */
export const phoneWidth = matchMedia("(max-width: 600px)");

export function icon(name, { label = null, className = "" } = {}) {
  return html`<svg viewBox="0 0 24 24" class=${className} aria-hidden=${label ? "false" : "true"}
    role=${label ? "img" : "presentation"} aria-label=${label || nothing} focusable="false">${ICONS[name]}</svg>`;
}

export function statusBadge(status) {
  const known = STATUS_LABELS[status] ? status : "unknown";
  return html`<span class="status ${known}" title=${STATUS_HELP[known]}>${STATUS_LABELS[known]}</span>`;
}

export function banner(kind, content, { role = null } = {}) {
  const symbol = { info: "info", warning: "warning", error: "error", success: "check" }[kind];
  return html`<div class="banner ${kind}" role=${role || nothing}>${icon(symbol)}<div>${content}</div></div>`;
}

/** The text of an API error for a person: the problem's detail, or a fallback. */
export function problemText(error, fallback = "Something went wrong. Try again.") {
  if (!error) return fallback;
  if (error.name === "AbortError") return "";
  return error.message || fallback;
}

export function timeAgo(iso, relative, absolute) {
  return iso ? html`<time datetime=${iso} title=${absolute}>${relative}</time>` : html`<span>never</span>`;
}

async function writeClipboard(text, pre) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Clipboard permission refused: select the text so the person can copy it themselves.
    if (pre) {
      const range = document.createRange();
      range.selectNodeContents(pre);
      const selection = getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    }
    return false;
  }
}

/** A block of text with a Copy button; `label` names what is copied, for screen readers. */
export function codeBlock(text, label, app) {
  let pre = null;
  const copy = async (event) => {
    const button = event.currentTarget;
    const copied = await writeClipboard(text, pre);
    app.announce(copied ? `${label} copied to the clipboard.` : `Copying was refused: ${label} is selected, press Ctrl+C to copy it.`);
    button.dataset.copied = copied ? "yes" : "no";
    button.querySelector(".copy-label").textContent = copied ? "Copied" : "Selected";
    setTimeout(() => {
      button.querySelector(".copy-label").textContent = "Copy";
    }, 2000);
  };
  return html`<div class="codeblock">
    <pre ${ref((el) => { pre = el; })} aria-label=${label}>${text}</pre>
    <button type="button" class="small" @click=${copy} aria-label="Copy ${label}">${icon("copy")}<span class="copy-label">Copy</span></button>
  </div>`;
}

/**
 * A native modal <dialog> that opens when rendered: `onCancel` runs on Escape (the default
 * close is prevented so the view decides), focus returns to where it was when it closes.
 */
export function modal({ id, title, body, footer, onCancel, className = "", describedBy = null }) {
  const attach = (el) => openWhenConnected(el);
  const cancel = (event) => {
    event.preventDefault();
    onCancel();
  };
  return html`<dialog id=${id} class=${className} aria-labelledby="${id}-title"
      aria-describedby=${describedBy || nothing} ${ref(attach)} @cancel=${cancel}>
    <div class="dialog-header">
      <h2 id="${id}-title">${title}</h2>
      <button type="button" class="ghost icon" aria-label="Close" @click=${onCancel}>${icon("close")}</button>
    </div>
    <div class="dialog-body">${body}</div>
    ${footer ? html`<div class="dialog-footer">${footer}</div>` : nothing}
  </dialog>`;
}

/** Shows a rendered <dialog> as modal once lit has put it in the document (a ref runs
 * before a new template's nodes are inserted). */
export function openWhenConnected(el) {
  if (!el || el.open) return;
  queueMicrotask(() => {
    if (el.isConnected && !el.open) {
      el.returnFocusTo = document.activeElement;
      el.showModal();
    }
  });
}

/** Call before a modal stops being rendered: closes it and gives focus back. */
export function closeModal(id) {
  const dialog = document.getElementById(id);
  if (dialog && dialog.open) {
    dialog.close();
    const back = dialog.returnFocusTo;
    if (back && back.isConnected) back.focus();
  }
}

/** Runs `task` now and every `ms` while the tab is visible; nothing while it is hidden. */
export class Poller {
  constructor(task, ms) {
    this.task = task;
    this.ms = ms;
    this.timer = null;
    this.running = false;
    this.onVisibility = () => (document.hidden ? this.pause() : this.resume());
  }

  start() {
    this.running = true;
    document.addEventListener("visibilitychange", this.onVisibility);
    this.resume();
  }

  stop() {
    this.running = false;
    document.removeEventListener("visibilitychange", this.onVisibility);
    this.pause();
  }

  pause() {
    clearTimeout(this.timer);
    this.timer = null;
  }

  async resume() {
    this.pause();
    if (!this.running || document.hidden) return;
    try {
      await this.task();
    } finally {
      if (this.running && !document.hidden && this.timer === null) {
        this.timer = setTimeout(() => {
          this.timer = null;
          this.resume();
        }, this.ms);
      }
    }
  }
}

/** Runs `tasks` (functions returning promises) with at most `limit` in flight. */
export async function limited(tasks, limit = 6) {
  const results = [];
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const index = next++;
      try {
        results[index] = await tasks[index]();
      } catch (error) {
        results[index] = error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

/** Focus an element of the next render (after a step of a dialog or a form changed). */
export function focusSoon(selector) {
  requestAnimationFrame(() => {
    const element = document.querySelector(selector);
    if (element) element.focus();
  });
}
