// One run: status, progress, attempts; learning curves that grow while it trains (each
// server-sent event fetches the series again, downsampled by the server to 2,000 points
// each); theory beside measurement; spec, result, artifacts, probes; cancel.

import { api, followAndRefresh, query } from "../api.js";
import { probeHeadline } from "../headline.js";
import { chartBox, curveTraces, draw, lineLayout, seriesTraces } from "../charts.js";
import { clear, errorBanner, fmtDuration, fmtNum, fmtTime, h, jsonBlock, keyValues, progressBar, shortId, statusBadge } from "../dom.js";

export const MAX_POINTS = 2000;
const REFRESH_MS = 1500; // the most often the curves are fetched again while it runs
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

export async function render(main, runId) {
  const run = await api(`/v1/experiments/${runId}`);
  const summary = h("div", { class: "card", id: "run-summary" });
  const curves = h("div", { id: "curves", class: "grid2" });
  const theory = h("div", { id: "theory" });
  const details = h("div", { class: "grid2" });
  const problem = h("div");
  clear(
    main,
    h("h1", {}, run.name || `${run.kind} ${shortId(run.id)}`),
    problem,
    summary,
    h("h2", {}, "Learning curves"),
    curves,
    theory,
    details,
  );
  drawSummary(summary, run, problem);
  await drawCurves(curves, runId);
  await drawEnd(theory, details, run);
  if (TERMINAL.has(run.status)) return null;

  return followAndRefresh(`/v1/experiments/${runId}/events`, REFRESH_MS, async (final) => {
    try {
      const current = await api(`/v1/experiments/${runId}`);
      drawSummary(summary, current, problem);
      await drawCurves(curves, runId);
      if (final) await drawEnd(theory, details, current);
    } catch (error) {
      clear(problem, errorBanner(error));
    }
  });
}

function drawSummary(element, run, problem) {
  const cancel = TERMINAL.has(run.status) || run.cancel_requested
    ? null
    : h("button", {
        class: "danger", id: "cancel",
        onclick: async () => {
          try {
            await api(`/v1/experiments/${run.id}/cancel`, { method: "POST" });
          } catch (error) {
            clear(problem, errorBanner(error));
          }
        },
      }, "Cancel");
  clear(
    element,
    h("div", { class: "toolbar" }, statusBadge(run.status), progressBar(run.progress),
      h("span", { id: "progress-message" }, run.progress_message || ""), cancel),
    keyValues([
      ["id", run.id],
      ["kind", run.kind],
      ["attempts", `${run.attempts}${run.attempts > 1 ? " (requeued after a lost worker)" : ""}`],
      ["worker", run.worker || "–"],
      ["submitted", fmtTime(run.created_at)],
      ["started", fmtTime(run.started_at)],
      ["finished", fmtTime(run.finished_at)],
      ["ran for", fmtDuration(run.started_at, run.finished_at)],
      ["tags", run.tags.join(", ") || "–"],
      ["priority", String(run.priority)],
      ["resources", run.resources.gpus ? `${run.resources.gpus} GPU ≥ ${run.resources.gpu_memory_gib} GiB` : "cpu"],
      ["sweep", run.sweep_id ? h("a", { href: `/sweeps/${run.sweep_id}` }, shortId(run.sweep_id)) : "–"],
      ["cell", run.sweep_cell ? JSON.stringify(run.sweep_cell) : "–"],
      ...(run.error ? [["error", h("span", { class: "error" }, run.error)]] : []),
    ]),
  );
}

// One chart per metric family (train/…, eval/…), each series at most MAX_POINTS points.
async function drawCurves(element, runId) {
  const metrics = await api(`/v1/experiments/${runId}/metrics${query({ max_points: MAX_POINTS })}`);
  const families = {};
  for (const [key, series] of Object.entries(metrics.series)) {
    // train/lr is orders of magnitude below a loss: it gets a chart of its own.
    const family = key.endsWith("/lr") ? "lr" : key.includes("/") ? key.split("/")[0] : "other";
    (families[family] ||= {})[key] = series;
  }
  if (!Object.keys(families).length) {
    if (!element.querySelector(".muted")) clear(element, h("p", { class: "muted" }, "No metrics yet."));
    return;
  }
  element.querySelector("p.muted")?.remove();
  for (const [family, series] of Object.entries(families)) {
    let box = element.querySelector(`#${CSS.escape(`chart-${family}`)}`);
    if (!box) element.append((box = chartBox(`chart-${family}`)));
    const total = Object.values(series).reduce((n, s) => n + s.total_points, 0);
    const keys = Object.keys(series);
    const title = `${family} (${total.toLocaleString("en")} points logged)`;
    await draw(box, seriesTraces(series), lineLayout(title, "step", keys.length === 1 ? keys[0] : "value"));
  }
}

async function drawEnd(theory, details, run) {
  const result = run.result || {};
  clear(theory);
  if (Array.isArray(result.curves) && result.curves.length) {
    theory.append(h("h2", {}, "Measured against theory"));
    const byX = {};
    for (const curve of result.curves) (byX[curve.x_name] ||= []).push(curve);
    const palette = ["#2a6f97", "#e76f51", "#2a9d8f", "#8e44ad", "#b7791f", "#c0392b"];
    for (const [xName, group] of Object.entries(byX)) {
      const box = chartBox(`theory-${xName}`);
      theory.append(box);
      const traces = group.flatMap((c, i) => curveTraces(c, palette[i % palette.length]));
      await draw(box, traces, lineLayout(`against ${xName} (mean ± 95% CI over seeds; dashed: theory)`, xName, "value"));
    }
  }
  const [artifacts, probes] = await Promise.all([
    api(`/v1/experiments/${run.id}/artifacts`),
    api(`/v1/probes${query({ experiment_id: run.id, limit: 100 })}`),
  ]);
  clear(
    details,
    h("div", {},
      h("h2", {}, "Spec (with its defaults)"), jsonBlock(run.spec),
      h("h2", {}, "Artifacts"),
      artifacts.length
        ? h("table", { id: "artifacts" }, h("tr", {}, h("th", {}, "file"), h("th", {}, "kind"), h("th", {}, "step"), h("th", { class: "num" }, "bytes")),
            artifacts.map((a) => h("tr", {},
              h("td", {}, h("a", { href: `/v1/experiments/${run.id}/artifacts/${a.path.split("/").map(encodeURIComponent).join("/")}`, download: "" }, a.path.split("/").pop())),
              h("td", {}, a.kind), h("td", {}, a.step ?? "–"), h("td", { class: "num" }, fmtNum(a.size_bytes)))))
        : h("p", { class: "muted" }, "None stored."),
    ),
    h("div", {},
      h("h2", {}, "Result"), run.result ? jsonBlock(run.result) : h("p", { class: "muted" }, "Not yet."),
      h("h2", {}, "Probes"),
      probes.items.length
        ? h("table", { id: "probes" }, probes.items.map((p) => h("tr", {},
            h("td", {}, h("a", { href: `/probes/${p.id}` }, p.kind)), h("td", {}, statusBadge(p.status)),
            h("td", {}, probeHeadline(p.result)))))
        : h("p", { class: "muted" }, "None yet."),
      h("p", {}, h("a", { href: `/submit?probe_of=${run.id}` }, "Probe this run…")),
    ),
  );
}
