// Several runs' curves overlaid, and the spec fields in which they differ.

import { api, query } from "../api.js";
import { navigate } from "../app.js";
import { chartBox, draw, lineLayout } from "../charts.js";
import { clear, flatten, fmtNum, h, shortId } from "../dom.js";

const MAX_POINTS = 2000; // per run and series, as on a run's page

export async function render(main, _, search) {
  const ids = (search.get("ids") || "").split(",").filter(Boolean);
  const idsInput = h("input", { id: "compare-ids", value: ids.join(","), size: 90, placeholder: "run ids, comma-separated (or pick them on the Experiments page)" });
  const form = h("form", { class: "toolbar", onsubmit: (e) => { e.preventDefault(); navigate(`/compare${query({ ids: idsInput.value.replace(/\s+/g, "") })}`); } },
    idsInput, h("button", { type: "submit" }, "Compare"));
  if (!ids.length) {
    clear(main, h("h1", {}, "Compare"), form, h("p", { class: "muted" }, "Select runs on the Experiments page, or paste their ids."));
    return;
  }
  const [runs, aligned] = await Promise.all([
    Promise.all(ids.map((id) => api(`/v1/experiments/${id}`))),
    api(`/v1/experiments/compare${query({ ids: ids.join(","), max_points: MAX_POINTS })}`),
  ]);
  const label = (run) => run.name || `${run.kind} ${shortId(run.id)}`;
  const charts = h("div", { id: "compare-charts" });
  clear(main, h("h1", {}, `Compare ${runs.length} runs`), form, charts, h("h2", {}, "Spec differences"), specDiff(runs, label));
  // aligned.series: {run id: {metric key: values at aligned.steps}}; a chart per key.
  const byKey = {};
  for (const [runId, series] of Object.entries(aligned.series)) {
    for (const [key, values] of Object.entries(series)) (byKey[key] ||= {})[runId] = values;
  }
  for (const [key, byRun] of Object.entries(byKey).sort(([a], [b]) => a.localeCompare(b))) {
    const box = chartBox(`compare-${key.replace(/[^A-Za-z0-9_-]/g, "_")}`);
    charts.append(box);
    const traces = runs.filter((r) => byRun[r.id]).map((run) => {
      const values = byRun[run.id];
      const xs = [], ys = [];
      values.forEach((v, i) => { if (v !== null) { xs.push(aligned.steps[i]); ys.push(v); } });
      return { type: "scatter", mode: "lines", name: label(run), x: xs, y: ys };
    });
    await draw(box, traces, lineLayout(key, "step", key));
  }
}

function specDiff(runs, label) {
  const flat = runs.map((r) => flatten(r.spec));
  const fields = [...new Set(flat.flatMap((f) => Object.keys(f)))].sort();
  const differs = (field) => new Set(flat.map((f) => JSON.stringify(f[field]))).size > 1;
  const shown = fields.filter(differs);
  const show = (v) => (typeof v === "number" ? fmtNum(v) : JSON.stringify(v));
  return h("table", { id: "spec-diff" },
    h("tr", {}, h("th", {}, "field"), runs.map((r) => h("th", {}, h("a", { href: `/runs/${r.id}` }, label(r))))),
    shown.length
      ? shown.map((f) => h("tr", { class: "diff" }, h("td", {}, f), flat.map((v) => h("td", {}, show(v[f])))))
      : h("tr", {}, h("td", { colspan: runs.length + 1, class: "muted" }, "The specs are the same.")),
  );
}
