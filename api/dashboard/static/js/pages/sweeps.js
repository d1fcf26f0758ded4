// Sweeps, newest first, with their children's counts and progress.

import { api, query } from "../api.js";
import { navigate } from "../app.js";
import { clear, fmtTime, h, progressBar, shortId, statusBadge } from "../dom.js";

const PAGE_SIZE = 50;

export async function render(main, _, search) {
  const offset = Number(search.get("offset") || 0);
  const kind = search.get("kind") || "";
  const page = await api("/v1/sweeps" + query({ kind, limit: PAGE_SIZE, offset }));
  clear(main,
    h("h1", {}, "Sweeps"),
    h("table", { id: "sweeps" },
      h("tr", {}, ["id", "name", "kind", "status", "progress", "children", "axes", "seeds", "submitted"].map((c) => h("th", {}, c))),
      page.items.map((s) => h("tr", { "data-id": s.id },
        h("td", {}, h("a", { href: `/sweeps/${s.id}` }, shortId(s.id))),
        h("td", {}, s.name || ""),
        h("td", {}, s.kind),
        h("td", {}, statusBadge(s.status)),
        h("td", {}, progressBar(s.progress)),
        h("td", {}, Object.entries(s.counts).filter(([, n]) => n).map(([st, n]) => `${st} ${n}`).join(", ")),
        h("td", {}, Object.keys(s.axes).join(", ")),
        h("td", {}, String(s.seeds.length)),
        h("td", {}, fmtTime(s.created_at))))),
    h("div", { class: "pager" },
      h("button", { class: "secondary", disabled: offset === 0, onclick: () => navigate(`/sweeps${query({ kind, offset: Math.max(0, offset - PAGE_SIZE) })}`) }, "← Newer"),
      h("span", { class: "muted" }, `${page.items.length ? offset + 1 : 0}–${offset + page.items.length} of ${page.total}`),
      h("button", { class: "secondary", disabled: offset + PAGE_SIZE >= page.total, onclick: () => navigate(`/sweeps${query({ kind, offset: offset + PAGE_SIZE })}`) }, "Older →")));
}
