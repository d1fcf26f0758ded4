// Calls to /v1 with the browser's session cookie. Every change (POST, PUT, PATCH,
// DELETE) carries the session's CSRF token; a 401 sends the user to the login page.

let csrfToken = null;
let userName = null; // whose token it is

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "http_error";
    this.details = error.details || [];
  }
}

export function setCsrfToken(token, name = null) {
  csrfToken = token;
  userName = name;
}

export async function api(path, options = {}) {
  try {
    return await request(path, options);
  } catch (error) {
    // Another tab logged in again: this tab's token is stale. The refused request did
    // nothing (the check comes before any work): with the session's token, try once
    // more, if the session is still this tab's user's; else log in again.
    if (!(error instanceof ApiError && error.code === "csrf_token_invalid")) throw error;
    const session = await request("/v1/session").catch(() => null);
    if (!session || session.name !== userName) {
      toLogin();
      throw error;
    }
    csrfToken = session.csrf_token;
    return request(path, options);
  }
}

async function request(path, { method = "GET", body, signal } = {}) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["x-csrf-token"] = csrfToken;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    signal,
  });
  if (response.status === 401 && !(path === "/v1/session" && method === "POST")) {
    toLogin();
    throw new ApiError(401, null);
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function toLogin() {
  if (location.pathname === "/login") return;
  location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
}

// A query string from an object, leaving out empty values.
export function query(params) {
  const kept = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return kept.length ? "?" + new URLSearchParams(kept).toString() : "";
}

// Server-sent events of a run (status, progress) or a sweep (counts): onEvent(name, data)
// for each, until `end`. Returns a function that closes the stream.
export function follow(path, onEvent) {
  const source = new EventSource(path, { withCredentials: true });
  for (const name of ["status", "progress", "counts", "end", "error"]) {
    source.addEventListener(name, (event) => {
      if (!event.data) return; // a connection error, not the server's `error` event
      onEvent(name, JSON.parse(event.data));
      if (name === "end" || name === "error") source.close();
    });
  }
  return () => source.close();
}

// Redraw a live page from its event stream: `refresh(final)` runs after an event, at
// most once every `intervalMs` and one at a time, and at once (final = true) after the
// stream's last event. Returns a function that stops it.
export function followAndRefresh(path, intervalMs, refresh) {
  let last = Date.now(); // the page was just drawn
  let pending = null;
  let ended = false;
  const run = serialized(async () => {
    last = Date.now();
    await refresh(ended);
  });
  const close = follow(path, (name) => {
    ended ||= name === "end" || name === "error";
    clearTimeout(pending);
    pending = setTimeout(run, ended ? 0 : Math.max(0, last + intervalMs - Date.now()));
  });
  return () => {
    clearTimeout(pending);
    close();
  };
}

// `work` run one at a time however often it is asked for: a request while it runs makes
// one more run after it, so the last state drawn is always the newest (a slow refresh
// can never overwrite a later one).
export function serialized(work) {
  let running = null;
  let again = false;
  const loop = async () => {
    try {
      do {
        again = false;
        await work();
      } while (again);
    } finally {
      running = null;
    }
  };
  return () => {
    if (running) again = true;
    else running = loop();
    return running;
  };
}
