// The dashboard's only way to the server: the public JSON API, with the session cookie (sent by
// the browser, unreadable here) and the session's CSRF token on every unsafe request.

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const SIGNED_IN_FLAG = "scout.signed-in";

let csrfToken = null;
let onSessionEnded = () => {};

export class ApiError extends Error {
  constructor(status, problem, headers) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.headers = headers;
  }

  get type() {
    const type = this.problem.type || "";
    return type.slice(type.lastIndexOf("/") + 1);
  }

  /** Seconds to wait, from Retry-After (seconds or an HTTP date), or null. */
  get retryAfter() {
    const raw = this.headers && this.headers.get("Retry-After");
    if (!raw) return null;
    if (/^\d+$/.test(raw)) return Number(raw);
    const at = Date.parse(raw);
    return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
  }
}

/** Called with no argument when the API says the session is gone (401 on a signed-in call). */
export function whenSessionEnds(callback) {
  onSessionEnded = callback;
}

export function setSession(session) {
  csrfToken = session ? session.csrf_token : null;
  try {
    if (session) localStorage.setItem(SIGNED_IN_FLAG, "1");
    else localStorage.removeItem(SIGNED_IN_FLAG);
  } catch {
    // Storage may be unavailable (private modes); the flag only improves a message.
  }
}

/** Whether this browser was signed in before, so a 401 means "expired", not "never". */
export function wasSignedIn() {
  try {
    return localStorage.getItem(SIGNED_IN_FLAG) === "1";
  } catch {
    return false;
  }
}

function url(path, query) {
  const target = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    target.searchParams.set(name, Array.isArray(value) ? value.join(",") : String(value));
  }
  return target.pathname + target.search;
}

/**
 * One API call. Resolves to the JSON body (null for 204); rejects with ApiError for a problem.
 * `anonymous` calls (sign-in, the session probe) do not end the session on 401.
 */
export async function api(method, path, { body, query, signal, anonymous = false } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (UNSAFE.has(method) && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let response;
  try {
    response = await fetch(url(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, {
      title: "Network error",
      detail: "The gateway could not be reached. Check your connection; retrying shortly.",
    });
  }
  if (response.status === 204) return null;
  let data = null;
  const type = response.headers.get("Content-Type") || "";
  if (type.includes("json")) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  if (response.ok) return data;
  const error = new ApiError(response.status, data, response.headers);
  if (response.status === 401 && !anonymous) {
    csrfToken = null;
    onSessionEnded();
  }
  throw error;
}

/** Every item of a paged listing (servers), following next_page_token. */
export async function listAll(path, field, { limit = 200, max = 2000, signal } = {}) {
  const items = [];
  let token = null;
  do {
    const page = await api("GET", path, { query: { limit, page_token: token }, signal });
    items.push(...page[field]);
    token = page.next_page_token;
  } while (token && items.length < max);
  return items;
}

export const serverPath = (id, suffix = "") => `/api/v1/servers/${encodeURIComponent(id)}${suffix}`;
