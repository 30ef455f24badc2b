// The dashboard's entry: the session, the router and the frame around every screen.
import { html, render, nothing } from "./lit.js";
import { api, setSession, wasSignedIn, whenSessionEnds } from "./api.js";
import { applyTheme, nextTheme, setTheme, themeChoice } from "./theme.js";
import { icon } from "./ui.js";
import { SignInView } from "./views/sign-in.js";
import { ServersView } from "./views/servers.js";
import { ServerView } from "./views/server.js";
import { ActivityView } from "./views/activity.js";
import { AccountView } from "./views/account.js";
import { NotFoundView } from "./views/not-found.js";
import { Palette } from "./palette.js";

const ROUTES = [
  [/^\/servers$/, ServersView, () => ({})],
  [/^\/servers\/([^/]+)$/, ServerView, (m) => ({ id: m[1], tab: "overview" })],
  [/^\/servers\/([^/]+)\/activity$/, ServerView, (m) => ({ id: m[1], tab: "activity" })],
  [/^\/servers\/([^/]+)\/settings$/, ServerView, (m) => ({ id: m[1], tab: "settings" })],
  [/^\/activity$/, ActivityView, () => ({})],
  [/^\/account$/, AccountView, () => ({})],
];
const THEME_LABELS = { system: "System theme", light: "Light theme", dark: "Dark theme" };
const THEME_ICONS = { system: "system", light: "sun", dark: "moon" };

/** Only a page of this origin may be returned to after signing in (never "//host" or "/\\host",
 * which browsers read as another origin). */
export function safeNext(value) {
  if (!value || !value.startsWith("/") || value.includes("\\")) return "/servers";
  try {
    const target = new URL(value, location.origin);
    if (target.origin === location.origin && !target.pathname.startsWith("/sign-in")) {
      return target.pathname + target.search;
    }
  } catch {
    // Not a URL at all: fall through to the default.
  }
  return "/servers";
}

class App {
  constructor(root) {
    this.root = root;
    this.session = null;
    this.view = null;
    this.notice = null;
    this.toasts = [];
    this.scheduled = false;
    this.palette = new Palette(this);
  }

  async start() {
    applyTheme();
    whenSessionEnds(() => this.sessionEnded());
    document.addEventListener("click", (event) => this.interceptLink(event));
    window.addEventListener("popstate", () => this.route());
    document.addEventListener("keydown", (event) => this.palette.onKeydown(event));
    // The cookie is HttpOnly: only a flag says whether this browser signed in. Without it the
    // sign-in form is shown at once, with no request that can only answer 401.
    if (!wasSignedIn()) {
      this.route();
      return;
    }
    try {
      this.session = await api("GET", "/api/v1/auth/session", { anonymous: true });
      setSession(this.session);
    } catch (error) {
      if (error.status === 401 && wasSignedIn()) {
        this.notice = "Your session has ended. Sign in again to continue.";
      } else if (error.status !== 401) {
        this.notice = error.message;
      }
      setSession(null);
      this.session = null;
    }
    this.route();
  }

  /** A 401 on a signed-in call: back to sign in, then to this page. */
  sessionEnded() {
    if (!this.session) return;
    this.session = null;
    setSession(null);
    this.notice = "Your session has ended. Sign in again to continue.";
    this.go(`/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`, { replace: true });
  }

  signedIn(session, next) {
    this.session = session;
    setSession(session);
    this.notice = null;
    this.go(safeNext(next), { replace: true });
  }

  async signOut() {
    try {
      await api("POST", "/api/v1/auth/logout");
    } catch {
      // Already ended elsewhere: the outcome is the same.
    }
    this.session = null;
    setSession(null);
    this.notice = "You have signed out.";
    this.go("/sign-in", { replace: true });
  }

  interceptLink(event) {
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const link = event.target.closest("a[href]");
    if (!link || link.target || link.hasAttribute("download")) return;
    const target = new URL(link.href, location.href);
    if (target.origin !== location.origin || target.pathname.startsWith("/api/")) return;
    if (link.getAttribute("href").startsWith("#")) return;
    event.preventDefault();
    this.go(target.pathname + target.search);
  }

  go(path, { replace = false } = {}) {
    if (path !== location.pathname + location.search) {
      history[replace ? "replaceState" : "pushState"](null, "", path);
    }
    this.route();
  }

  route() {
    const path = location.pathname;
    if (this.view) this.view.disconnected();
    this.palette.close();
    if (path === "/sign-in") {
      if (this.session) {
        this.go(safeNext(new URLSearchParams(location.search).get("next")), { replace: true });
        return;
      }
      this.view = new SignInView(this);
    } else if (!this.session) {
      const next = path === "/" ? "" : `?next=${encodeURIComponent(path + location.search)}`;
      history.replaceState(null, "", `/sign-in${next}`);
      this.view = new SignInView(this);
    } else if (path === "/") {
      history.replaceState(null, "", "/servers");
      this.view = new ServersView(this, {});
    } else {
      const match = ROUTES.map(([pattern, View, params]) => [path.match(pattern), View, params])
        .find(([found]) => found);
      this.view = match ? new match[1](this, match[2](match[0])) : new NotFoundView(this);
    }
    this.view.connected();
    this.renderNow();
    this.focusMain();
  }

  focusMain() {
    const heading = this.root.querySelector("h1");
    if (heading) {
      heading.tabIndex = -1;
      heading.focus({ preventScroll: true });
    }
    window.scrollTo(0, 0);
  }

  /** Views call this after changing their state; renders once per frame at most. */
  update() {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.renderNow();
    });
  }

  renderNow() {
    document.title = this.view.title ? `${this.view.title} · Server Scout` : "Server Scout";
    render(this.template(), this.root);
  }

  announce(text) {
    const region = document.getElementById("announcer");
    region.textContent = "";
    setTimeout(() => {
      region.textContent = text;
    }, 50);
  }

  toast(text) {
    const entry = { text, id: Math.random() };
    this.toasts = [...this.toasts, entry];
    this.update();
    setTimeout(() => {
      this.toasts = this.toasts.filter((t) => t !== entry);
      this.update();
    }, 5000);
  }

  takeNotice() {
    const notice = this.notice;
    this.notice = null;
    return notice;
  }

  cycleTheme() {
    const next = nextTheme();
    setTheme(next);
    this.announce(`${THEME_LABELS[next]} selected.`);
    this.update();
  }

  navLink(href, label, section) {
    const current = this.view.section === section ? "page" : nothing;
    return html`<a href=${href} aria-current=${current}>${label}</a>`;
  }

  template() {
    if (this.view instanceof SignInView) return html`${this.view.render()}${this.toastRegion()}`;
    const choice = themeChoice();
    return html`
      <header class="topbar">
        <div class="topbar-inner">
          <a class="brand" href="/servers">${icon("logo")}<span>Server Scout</span></a>
          <nav class="nav" aria-label="Main">
            ${this.navLink("/servers", "Servers", "servers")}
            ${this.navLink("/activity", "Activity", "activity")}
            ${this.navLink("/account", "Account", "account")}
          </nav>
          <div class="topbar-actions">
            <button type="button" class="ghost small hide-phone" @click=${() => this.palette.open()}
              title="Command palette"><kbd>Ctrl</kbd> <kbd>K</kbd><span class="visually-hidden">: command palette</span></button>
            <button type="button" class="ghost icon" @click=${() => this.cycleTheme()}
              aria-label="${THEME_LABELS[choice]}: switch theme" title="${THEME_LABELS[choice]} (click to switch)">
              ${icon(THEME_ICONS[choice])}</button>
            <span class="user-email">${this.session.user.email}</span>
            <button type="button" class="small" @click=${() => this.signOut()}>Sign out</button>
          </div>
        </div>
      </header>
      <main id="main" tabindex="-1">${this.view.render()}</main>
      ${this.palette.render()}
      ${this.toastRegion()}`;
  }

  toastRegion() {
    return html`<div class="toast-region" aria-live="polite">
      ${this.toasts.map((t) => html`<div class="toast">${t.text}</div>`)}
    </div>`;
  }
}

const app = new App(document.getElementById("app"));
app.start();
