// Probes, newest first, with their headline figure.

import { api, query } from "../api.js";
import { navigate } from "../app.js";
import { clear, fmtNum, fmtTime, h, pager, shortId, statusBadge } from "../dom.js";

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
        h("td", {}, headline(p.result)),
        h("td", {}, fmtTime(p.created_at))))),
    pager(offset, page.items.length, page.total, PAGE_SIZE, (to) => navigate(`/probes${query({ kind, offset: to })}`)));
}

function headline(result) {
  if (!result) return "";
  const attack = result.attack || result;
  if (typeof attack.auc === "number") {
    const ci = attack.auc_ci95 ? ` [${fmtNum(attack.auc_ci95[0], 3)}, ${fmtNum(attack.auc_ci95[1], 3)}]` : "";
    return `AUC ${fmtNum(attack.auc, 3)}${ci}`;
  }
  if (typeof result.bits_per_parameter === "number") return `${fmtNum(result.bits_per_parameter, 3)} bits/parameter`;
  if (result.mean_exposure) return `exposure ${Object.entries(result.mean_exposure).map(([k, v]) => `${k}: ${fmtNum(v, 3)}`).join(", ")}`;
  return "";
}
