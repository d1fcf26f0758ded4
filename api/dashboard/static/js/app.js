// The dashboard's router: one page shell for every path; each path draws its page from
// /v1 (see pages/*.js). Links within the dashboard navigate without reloading Plotly.

import { api, ApiError, setCsrfToken } from "./api.js";
import { clear, errorBanner, h } from "./dom.js";

const ROUTES = [
  [/^\/(experiments)?$/, "experiments", () => import("./pages/experiments.js")],
  [/^\/runs\/([0-9a-f-]{36})$/, "experiments", () => import("./pages/run.js")],
  [/^\/sweeps$/, "sweeps", () => import("./pages/sweeps.js")],
  [/^\/sweeps\/([0-9a-f-]{36})$/, "sweeps", () => import("./pages/sweep.js")],
  [/^\/probes$/, "probes", () => import("./pages/probes.js")],
  [/^\/probes\/([0-9a-f-]{36})$/, "probes", () => import("./pages/probe.js")],
  [/^\/compare$/, "compare", () => import("./pages/compare.js")],
  [/^\/submit$/, "submit", () => import("./pages/submit.js")],
  [/^\/workers$/, "workers", () => import("./pages/workers.js")],
  [/^\/login$/, "", () => import("./pages/login.js")],
];

const main = document.getElementById("page");
let cleanup = null; // closes the event streams of the page being left
let navigation = 0; // counts renders, so that a slow page drawn late gives way
export const session = { name: null, isAdmin: false, authenticated: false };

async function loadSession() {
  try {
    const found = await api("/v1/session");
    Object.assign(session, {
      name: found.name,
      isAdmin: found.is_admin,
      authenticated: found.authenticated,
    });
    setCsrfToken(found.csrf_token, found.name);
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return false;
    throw error;
  }
}

function showWho() {
  const who = document.getElementById("who");
  if (!session.name) return clear(who);
  const logout = session.authenticated
    ? h("button", { class: "secondary", id: "logout", onclick: logOut }, "Log out")
    : null;
  clear(who, `${session.name}${session.isAdmin ? " (admin)" : ""}`, logout);
}

async function logOut() {
  await api("/v1/session", { method: "DELETE" });
  setCsrfToken(null);
  Object.assign(session, { name: null, isAdmin: false, authenticated: false });
  navigate("/login");
}

export async function render() {
  if (cleanup) cleanup();
  cleanup = null;
  const current = ++navigation;
  const path = location.pathname.replace(/\/+$/, "") || "/";
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", Boolean(route) && link.dataset.nav === route[1]);
  }
  if (!route) {
    clear(main, h("h1", {}, "Not found"), h("p", {}, "No dashboard page has this address."));
    main.dataset.page = "not-found";
    return;
  }
  if (path !== "/login" && !session.name && !(await loadSession())) {
    if (current !== navigation) return;
    navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, true);
    return;
  }
  if (current !== navigation) return;
  showWho();
  const [pattern, , load] = route;
  const params = path.match(pattern).slice(1);
  // Each render draws into a container of its own: a page that finishes loading after
  // the user moved on draws into a detached one, never over the newer page.
  const target = h("div", { class: "page-body" }, h("p", { class: "muted" }, "Loading…"));
  delete main.dataset.page;
  clear(main, target);
  try {
    const page = await load();
    const pageCleanup = await page.render(target, params[0], new URLSearchParams(location.search));
    if (current !== navigation) {
      if (pageCleanup) pageCleanup(); // the newer page owns the screen
      return;
    }
    cleanup = pageCleanup || null;
  } catch (error) {
    if (current !== navigation) return;
    if (error instanceof ApiError && error.status === 401) return; // sent to the login page
    console.error(error);
    clear(target, errorBanner(error));
  }
  main.dataset.page = route[1] || "login";
}

export function navigate(url, replace = false) {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  render();
}

// Same-origin links to dashboard pages navigate in place; /v1 downloads load normally.
document.addEventListener("click", (event) => {
  const link = event.target.closest("a");
  if (!link || link.target || link.hasAttribute("download") || event.defaultPrevented) return;
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || /^\/(v1|ui|docs|metrics)\b/.test(url.pathname)) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", render);

export function sessionLoaded() {
  return loadSession();
}

render();
