// One sweep: counts and progress; any result metric against any axis, mean with its 95%
// interval over seeds as error bars, one line per value of a second axis; a heatmap over
// two axes; the aggregated table; the claims' verdicts; CSV and Parquet export.

import { api, followAndRefresh } from "../api.js";
import { chartBox, draw, heatmapTrace } from "../charts.js";
import { clear, errorBanner, fmtNum, fmtTime, h, keyValues, progressBar, shortId, statusBadge } from "../dom.js";

const REFRESH_MS = 2000;

export async function render(main, sweepId, search) {
  const [sweep, table] = await Promise.all([api(`/v1/sweeps/${sweepId}`), api(`/v1/sweeps/${sweepId}/table`)]);
  const view = {
    metric: search.get("metric"),
    x: search.get("x"),
    by: search.get("by"),
    fixed: {},
    logX: search.get("logx") === "1",
  };
  const summary = h("div", { class: "card", id: "sweep-summary" });
  const controls = h("div", { class: "toolbar", id: "plot-controls" });
  const plot = chartBox("sweep-plot");
  const heat = chartBox("sweep-heatmap");
  const tableBox = h("div", { id: "sweep-table" });
  const claims = h("div", { id: "claims" });
  const problem = h("div");
  clear(main, h("h1", {}, sweep.name || `${sweep.kind} sweep ${shortId(sweep.id)}`), problem, summary,
    h("h2", {}, "Metric against an axis"), controls, h("div", { class: "grid2" }, plot, heat), claims,
    h("h2", {}, "Cells"), tableBox);

  let current = { sweep, table };
  const redraw = async () => {
    drawSummary(summary, current.sweep, problem);
    drawControls(controls, current.table, view, redraw);
    await drawPlots(plot, heat, current.table, view);
    drawTable(tableBox, current.table, view);
    drawClaims(claims, current.table.claims);
  };
  await redraw();
  if (["succeeded", "failed", "cancelled"].includes(sweep.status)) return null;

  return followAndRefresh(`/v1/sweeps/${sweepId}/events`, REFRESH_MS, async () => {
    try {
      const [s, t] = await Promise.all([api(`/v1/sweeps/${sweepId}`), api(`/v1/sweeps/${sweepId}/table`)]);
      current = { sweep: s, table: t };
      await redraw();
    } catch (error) {
      clear(problem, errorBanner(error));
    }
  });
}

function drawSummary(element, sweep, problem) {
  const counts = Object.entries(sweep.counts).filter(([, n]) => n).map(([s, n]) => `${n} ${s}`).join(" · ");
  const probeCounts = Object.entries(sweep.probe_counts).filter(([, n]) => n).map(([s, n]) => `${s} ${n}`).join(", ");
  const ended = ["succeeded", "failed", "cancelled"].includes(sweep.status);
  const cancel = ended || sweep.cancel_requested ? null : h("button", {
    class: "danger", id: "cancel",
    onclick: async () => {
      try { await api(`/v1/sweeps/${sweep.id}/cancel`, { method: "POST" }); } catch (error) { clear(problem, errorBanner(error)); }
    },
  }, "Cancel sweep");
  const children = `/experiments?where=${encodeURIComponent(`sweep_id = "${sweep.id}"`)}`;
  clear(element,
    h("div", { class: "toolbar" }, statusBadge(sweep.status), progressBar(sweep.progress), h("span", { id: "counts" }, counts), cancel),
    keyValues([
      ["kind", sweep.kind],
      ["axes", Object.keys(sweep.axes).join(", ") || "–"],
      ["seeds", sweep.seeds.join(", ")],
      ["runs", h("a", { href: children }, `${sweep.n_runs} children`)],
      ["probes", probeCounts || "–"],
      ["submitted", fmtTime(sweep.created_at)],
      ["export", h("span", {},
        h("a", { href: `/v1/sweeps/${sweep.id}/table?format=csv`, download: "", id: "export-csv" }, "CSV"), " · ",
        h("a", { href: `/v1/sweeps/${sweep.id}/table?format=parquet`, download: "", id: "export-parquet" }, "Parquet"))],
    ]));
}

function metricsOf(table) {
  const names = new Set();
  for (const row of table.rows) for (const key of Object.keys(row.values)) names.add(key);
  return [...names].sort();
}

function axisValues(table, axis) {
  const seen = new Map();
  for (const row of table.rows) seen.set(JSON.stringify(row.cell[axis]), row.cell[axis]);
  return [...seen.values()].sort((a, b) => (typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b))));
}

function select(id, options, chosen, onChange, label) {
  return h("label", {}, label, " ", h("select", { id, onchange: (e) => onChange(e.target.value) },
    options.map(([value, text]) => h("option", { value, selected: value === chosen }, text))));
}

function drawControls(element, table, view, redraw) {
  const metrics = metricsOf(table);
  const axes = table.axes;
  if (!metrics.includes(view.metric)) {
    view.metric = metrics.find((m) => m === "final.score") || metrics.find((m) => m.startsWith("final.")) || metrics[0] || null;
  }
  if (!axes.includes(view.x)) view.x = axes[0] || null;
  if (view.by && (!axes.includes(view.by) || view.by === view.x)) view.by = null;
  if (view.by === null && axes.length > 1 && view.by !== "") view.by = axes.find((a) => a !== view.x);
  const others = axes.filter((a) => a !== view.x && a !== view.by);
  for (const axis of others) {
    const values = axisValues(table, axis).map((v) => JSON.stringify(v));
    if (!values.includes(view.fixed[axis])) view.fixed[axis] = values[0];
  }
  const set = (key) => (value) => { view[key] = value; redraw(); };
  clear(element,
    select("metric", metrics.map((m) => [m, m]), view.metric, set("metric"), "metric"),
    select("x-axis", axes.map((a) => [a, a]), view.x, set("x"), "against"),
    select("line-axis", [["", "(one line)"], ...axes.filter((a) => a !== view.x).map((a) => [a, a])], view.by || "", set("by"), "one line per"),
    others.map((axis) => select(`fixed-${axis}`, axisValues(table, axis).map((v) => [JSON.stringify(v), String(v)]), view.fixed[axis],
      (value) => { view.fixed[axis] = value; redraw(); }, `${axis} =`)),
    h("label", {}, h("input", { type: "checkbox", id: "log-x", checked: view.logX, onchange: (e) => { view.logX = e.target.checked; redraw(); } }), " log x"),
  );
}

// The rows of the chosen metric at the fixed values of the axes neither plotted nor lined.
function chosenRows(table, view) {
  return table.rows.filter((row) => Object.entries(view.fixed).every(([axis, value]) =>
    axis === view.x || axis === view.by || JSON.stringify(row.cell[axis]) === value));
}

async function drawPlots(plotBox, heatBox, table, view) {
  if (!view.metric || !view.x) {
    clear(plotBox, h("p", { class: "muted" }, "No results to plot yet: the table fills as children succeed."));
    heatBox.style.display = "none";
    return;
  }
  const rows = chosenRows(table, view);
  const lines = view.by ? axisValues(table, view.by) : [null];
  const traces = lines.map((lineValue) => {
    const points = rows
      .filter((row) => lineValue === null || JSON.stringify(row.cell[view.by]) === JSON.stringify(lineValue))
      .filter((row) => row.values[view.metric])
      .sort((a, b) => (a.cell[view.x] > b.cell[view.x] ? 1 : -1));
    const summary = (row) => row.values[view.metric];
    return {
      type: "scatter",
      mode: "lines+markers",
      name: lineValue === null ? view.metric : `${view.by} = ${lineValue}`,
      x: points.map((row) => row.cell[view.x]),
      y: points.map((row) => summary(row).mean),
      text: points.map((row) => `n = ${summary(row).n}`),
      // No interval below two seeds: NaN leaves the bar out rather than draw a zero one.
      error_y: {
        type: "data",
        visible: true,
        array: points.map((row) => (summary(row).ci95_high ?? NaN) - summary(row).mean),
        arrayminus: points.map((row) => summary(row).mean - (summary(row).ci95_low ?? NaN)),
      },
    };
  });
  await draw(plotBox, traces, {
    title: { text: `${view.metric}: mean and 95% interval over seeds` },
    xaxis: { title: { text: view.x }, type: view.logX ? "log" : "-" },
    yaxis: { title: { text: view.metric } },
  });
  if (!view.by) {
    heatBox.style.display = "none";
    return;
  }
  heatBox.style.display = "";
  const xs = axisValues(table, view.x);
  const ys = axisValues(table, view.by);
  const z = ys.map((y) => xs.map((x) => {
    const row = rows.find((r) => JSON.stringify(r.cell[view.x]) === JSON.stringify(x) && JSON.stringify(r.cell[view.by]) === JSON.stringify(y));
    return row && row.values[view.metric] ? row.values[view.metric].mean : null;
  }));
  await draw(heatBox, [heatmapTrace(xs, ys, z, view.metric)], {
    title: { text: `${view.metric} (mean over seeds)` },
    xaxis: { title: { text: view.x }, type: "category" },
    yaxis: { title: { text: view.by }, type: "category" },
  });
}

function drawTable(element, table, view) {
  const axes = table.axes;
  const statuses = ["succeeded", "running", "queued", "failed", "cancelled"];
  clear(element, h("table", { id: "cells" },
    h("tr", {}, axes.map((a) => h("th", {}, a)), statuses.map((s) => h("th", { class: "num" }, s)),
      h("th", { class: "num" }, `${view.metric || "metric"} mean`), h("th", { class: "num" }, "95% interval"), h("th", { class: "num" }, "std"), h("th", { class: "num" }, "n")),
    table.rows.map((row) => {
      const value = view.metric ? row.values[view.metric] : null;
      return h("tr", {},
        axes.map((a) => h("td", {}, String(row.cell[a]))),
        statuses.map((s) => h("td", { class: "num" }, row.counts[s] || "")),
        h("td", { class: "num" }, value ? fmtNum(value.mean) : "–"),
        h("td", { class: "num" }, value && value.ci95_low !== null ? `${fmtNum(value.ci95_low)} – ${fmtNum(value.ci95_high)}` : "–"),
        h("td", { class: "num" }, value ? fmtNum(value.std) : "–"),
        h("td", { class: "num" }, value ? value.n : 0));
    })));
}

function drawClaims(element, claims) {
  if (!claims || !claims.length) return clear(element);
  clear(element, h("h2", {}, "Claims"), h("table", {},
    h("tr", {}, h("th", {}, "claim"), h("th", {}, "verdict"), h("th", { class: "num" }, "mean"), h("th", { class: "num" }, "95% interval"), h("th", { class: "num" }, "n"), h("th", {}, "why")),
    claims.map((c) => h("tr", {},
      h("td", {}, c.statement), h("td", { class: `verdict-${c.verdict.replace(/ /g, "-")}` }, c.verdict),
      h("td", { class: "num" }, fmtNum(c.mean)),
      h("td", { class: "num" }, c.ci95_low === null ? "–" : `${fmtNum(c.ci95_low)} – ${fmtNum(c.ci95_high)}`),
      h("td", { class: "num" }, c.n), h("td", {}, c.reason)))));
}
