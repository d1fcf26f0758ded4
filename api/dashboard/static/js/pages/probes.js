// Probes, newest first, with their headline figure.

import { api, query } from "../api.js";
import { navigate } from "../app.js";
import { clear, fmtTime, h, pager, shortId, statusBadge } from "../dom.js";
import { probeHeadline } from "../headline.js";

const PAGE_SIZE = 50;

export async function render(main, _, search) {
  const offset = Number(search.get("offset") || 0);
  const kind = search.get("kind") || "";
  const page = await api("/v1/probes" + query({ kind, limit: PAGE_SIZE, offset }));
  clear(main,
    h("h1", {}, "Probes"),
    h("table", { id: "probe-list" },
      h("tr", {}, ["id", "kind", "status", "probed run", "headline", "submitted"].map((c) => h("th", {}, c))),
      page.items.map((p) => h("tr", { "data-id": p.id },
        h("td", {}, h("a", { href: `/probes/${p.id}` }, shortId(p.id))),
        h("td", {}, h("a", { href: `/probes${query({ kind: p.kind })}` }, p.kind)),
        h("td", {}, statusBadge(p.status)),
        h("td", {}, h("a", { href: `/runs/${p.experiment_id}` }, shortId(p.experiment_id))),
        h("td", {}, probeHeadline(p.result)),
        h("td", {}, fmtTime(p.created_at))))),
    pager(offset, page.items.length, page.total, PAGE_SIZE, (to) => navigate(`/probes${query({ kind, offset: to })}`)));
}
