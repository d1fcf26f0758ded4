// Sweeps, newest first, with their children's counts and progress.

import { api, query } from "../api.js";
import { navigate } from "../app.js";
import { clear, fmtTime, h, pager, progressBar, shortId, statusBadge } from "../dom.js";

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
    pager(offset, page.items.length, page.total, PAGE_SIZE, (to) => navigate(`/sweeps${query({ kind, offset: to })}`)));
}
