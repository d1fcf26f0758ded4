// Log in with an API key; the server answers with an HttpOnly session cookie.

import { api, setCsrfToken } from "../api.js";
import { navigate, session } from "../app.js";
import { clear, errorBanner, h } from "../dom.js";

export async function render(main, _, search) {
  const next = search.get("next") || "/";
  const safeNext = next.startsWith("/") && !next.startsWith("//") ? next : "/";
  const keyInput = h("input", {
    id: "api-key",
    type: "password",
    autocomplete: "off",
    placeholder: "mlk_…",
    size: 60,
  });
  const problem = h("div");
  const submit = async (event) => {
    event.preventDefault();
    clear(problem);
    try {
      const opened = await api("/v1/session", {
        method: "POST",
        body: { api_key: keyInput.value.trim() },
      });
      setCsrfToken(opened.csrf_token, opened.name);
      Object.assign(session, {
        name: opened.name,
        isAdmin: opened.is_admin,
        authenticated: opened.authenticated,
      });
      navigate(safeNext, true);
    } catch (error) {
      clear(problem, errorBanner(error));
    }
  };
  clear(
    main,
    h("h1", {}, "Log in"),
    h(
      "form",
      { class: "card", id: "login-form", onsubmit: submit },
      h("p", {}, "Paste your API key. It is exchanged for a session cookie and not kept by this page."),
      h("p", { class: "muted" }, "An admin creates keys with `memlab users add NAME` or `memlab keys create`."),
      problem,
      h("div", { class: "toolbar" }, keyInput, h("button", { type: "submit", id: "login" }, "Log in")),
    ),
  );
  keyInput.focus();
}
