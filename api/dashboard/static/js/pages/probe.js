// One probe: membership ROC curves on log-log axes with the blind baseline, AUC with its
// interval and TPR at low FPR; exposure histograms; bits stored against parameters.

import { api, follow, query } from "../api.js";
import { render as redrawPage } from "../app.js";
import { chartBox, draw, lineLayout, rocLayout, rocTraces } from "../charts.js";
import { clear, fmtNum, fmtTime, h, jsonBlock, keyValues, progressBar, shortId, statusBadge } from "../dom.js";

// Allen-Zhu & Li (2024, Physics of LMs 3.3): about 2 bits of knowledge per parameter.
const BITS_PER_PARAMETER = 2;

export async function render(main, probeId) {
  const probe = await api(`/v1/probes/${probeId}`);
  const figures = h("div", { id: "figures" });
  clear(
    main,
    h("h1", {}, `${probe.kind} probe ${shortId(probe.id)}`),
    h("div", { class: "card" },
      h("div", { class: "toolbar" }, statusBadge(probe.status), progressBar(probe.progress), probe.progress_message || ""),
      keyValues([
        ["probed run", h("a", { href: `/runs/${probe.experiment_id}` }, shortId(probe.experiment_id))],
        ["submitted", fmtTime(probe.created_at)],
        ["finished", fmtTime(probe.finished_at)],
        ["attempts", String(probe.attempts)],
        ...(probe.shadow_sweep_id ? [["shadow models", h("a", { href: `/sweeps/${probe.shadow_sweep_id}` }, shortId(probe.shadow_sweep_id))]] : []),
        ...(probe.error ? [["error", h("span", { class: "error" }, probe.error)]] : []),
      ]),
    ),
    figures,
    h("div", { class: "grid2" },
      h("div", {}, h("h2", {}, "Spec"), jsonBlock(probe.spec)),
      h("div", {}, h("h2", {}, "Result"), probe.result ? jsonBlock(probe.result) : h("p", { class: "muted" }, "Not yet.")),
    ),
  );
  if (probe.result) await drawFigures(figures, probe);
  if (["succeeded", "failed", "cancelled"].includes(probe.status)) return null;
  return follow(`/v1/probes/${probeId}/events`, (name) => {
    if (name === "end") redrawPage(); // the whole page again, through the router
  });
}

async function drawFigures(element, probe) {
  const attacks = findAttacks(probe.result);
  if (attacks.length) await drawMembership(element, attacks);
  if (Array.isArray(probe.result.canaries)) await drawExposure(element, probe.result);
  if (typeof probe.result.bits_per_parameter === "number") await drawCapacity(element, probe);
}

// Every object in the result with an ROC and an AUC, named by its path ("attack",
// "blind_baseline", "variants.offline", …).
function findAttacks(value, path = "") {
  if (!value || typeof value !== "object" || Array.isArray(value)) return [];
  if (value.roc && typeof value.auc === "number") return [{ name: path || "attack", ...value }];
  return Object.entries(value).flatMap(([k, v]) => findAttacks(v, path ? `${path}.${k}` : k));
}

async function drawMembership(element, attacks) {
  const box = chartBox("roc");
  const rocs = attacks.map((a) => ({
    name: `${a.name} (AUC ${fmtNum(a.auc, 3)})`,
    fpr: a.roc.fpr,
    tpr: a.roc.tpr,
    dash: a.name.includes("blind") ? "dash" : "solid",
  }));
  const rateHeaders = (attacks[0].tpr_at_low_fpr || []).map((t) => h("th", { class: "num" }, `TPR @ ${t.fpr * 100}% FPR`));
  element.append(
    h("h2", {}, "Membership"),
    h("p", { class: "muted" }, "Log-log ROC: the low false-positive corner is where an attack is worth anything. The blind baseline never looks at the model; on a fair split it sits on the chance line."),
    box,
    h("table", { id: "attack-table" },
      h("tr", {}, h("th", {}, "score"), h("th", { class: "num" }, "AUC"), h("th", { class: "num" }, "95% interval"), rateHeaders, h("th", { class: "num" }, "members / non-members")),
      attacks.map((a) => h("tr", {},
        h("td", {}, a.name, a.score ? ` (${a.score})` : ""),
        h("td", { class: "num" }, fmtNum(a.auc, 3)),
        h("td", { class: "num" }, a.auc_ci95 ? `${fmtNum(a.auc_ci95[0], 3)} – ${fmtNum(a.auc_ci95[1], 3)}` : "–"),
        (a.tpr_at_low_fpr || []).map((t) => h("td", { class: "num", title: t.label },
          t.resolved ? fmtNum(t.tpr, 3) : `${fmtNum(t.tpr, 3)} at 0% FPR (too few non-members to resolve ${t.fpr * 100}%)`)),
        h("td", { class: "num" }, `${a.n_members ?? "–"} / ${a.n_non_members ?? "–"}${a.underpowered ? " (underpowered)" : ""}`),
      )),
    ),
  );
  await draw(box, rocTraces(rocs), rocLayout("ROC (log-log)"));
}

async function drawExposure(element, result) {
  const box = chartBox("exposure");
  const byInsertions = {};
  for (const canary of result.canaries) (byInsertions[canary.insertions] ||= []).push(canary.exposure);
  const traces = Object.entries(byInsertions).map(([count, exposures]) => ({
    type: "histogram",
    name: Number(count) === 0 ? "never inserted (controls)" : `inserted ${count}×`,
    x: exposures,
    opacity: 0.6,
    nbinsx: 30,
  }));
  element.append(
    h("h2", {}, "Exposure"),
    h("p", { class: "muted" }, `Exposure in bits of each canary, by how often it was inserted; the most a canary can reach is log₂ of the space, ${fmtNum(result.max_exposure_bits, 3)} bits. ${result.rank}.`),
    box,
  );
  await draw(box, traces, {
    ...lineLayout("Exposure of the canaries", "exposure (bits)", "canaries"),
    barmode: "overlay",
    shapes: [{ type: "line", x0: result.max_exposure_bits, x1: result.max_exposure_bits, yref: "paper", y0: 0, y1: 1, line: { dash: "dot", color: "#999" } }],
  });
}

// Every succeeded knowledge-capacity probe the user sees, bits against parameters, with
// the 2 bits/parameter line: one point is this probe.
async function drawCapacity(element, probe) {
  const box = chartBox("capacity");
  const found = await api(`/v1/probes${query({ kind: probe.kind, status: "succeeded", limit: 200 })}`);
  const others = found.items.filter((p) => p.id !== probe.id && p.result && p.result.n_parameters);
  const xs = others.map((p) => p.result.n_parameters).concat([probe.result.n_parameters]);
  const [low, high] = [Math.min(...xs) / 2, Math.max(...xs) * 2];
  const traces = [
    { type: "scatter", mode: "markers", name: "other probes", x: others.map((p) => p.result.n_parameters), y: others.map((p) => p.result.bits), text: others.map((p) => p.id), marker: { color: "#8da9c4" } },
    { type: "scatter", mode: "markers", name: "this probe", x: [probe.result.n_parameters], y: [probe.result.bits], marker: { size: 12, color: "#e76f51" } },
    { type: "scatter", mode: "lines", name: `${BITS_PER_PARAMETER} bits/parameter (Allen-Zhu & Li)`, x: [low, high], y: [low * BITS_PER_PARAMETER, high * BITS_PER_PARAMETER], line: { dash: "dash", color: "#555" } },
  ];
  element.append(
    h("h2", {}, "Knowledge capacity"),
    h("p", {}, `${fmtNum(probe.result.bits, 4)} bits stored by ${fmtNum(probe.result.n_parameters)} parameters: ${fmtNum(probe.result.bits_per_parameter, 3)} bits per parameter; ${probe.result.facts_known} of ${probe.result.n_facts} facts known.`),
    box,
  );
  await draw(box, traces, lineLayout("Bits of knowledge against parameters", "parameters", "bits stored", { logX: true, logY: true }));
}
