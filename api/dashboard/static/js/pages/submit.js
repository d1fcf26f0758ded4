// Submit an experiment, a sweep or a probe from a form generated from the kind's JSON
// schema. A 422 is shown at the field its details[].path names.

import { api, query } from "../api.js";
import { navigate } from "../app.js";
import { clear, errorBanner, h, shortId } from "../dom.js";
import { specForm } from "../schema_form.js";

export async function render(main, _, search) {
  const probeOf = search.get("probe_of");
  const kinds = await api(probeOf ? "/v1/probe-kinds" : "/v1/kinds");
  const me = await api("/v1/me");
  const usable = kinds;
  const kindName = usable.some((k) => k.name === search.get("kind")) ? search.get("kind") : usable[0].name;
  const kind = usable.find((k) => k.name === kindName);
  const mode = probeOf ? "probe" : search.get("mode") === "sweep" ? "sweep" : "experiment";
  // A kind with a required field (a probe's reference) has no default spec: its form
  // starts from the schema's defaults and sends every field.
  const form = specForm(kind.json_schema, kind.default_spec);
  const problem = h("div", { id: "submit-errors" });

  const kindSelect = h("select", { id: "kind", onchange: (e) => navigate(`/submit${query({ kind: e.target.value, mode: mode === "sweep" ? "sweep" : "", probe_of: probeOf })}`, true) },
    usable.map((k) => h("option", { value: k.name, selected: k.name === kindName }, k.name)));
  const tabs = probeOf ? null : h("div", { class: "tabs" },
    ["experiment", "sweep"].map((m) => h("button", {
      type: "button", class: m === mode ? "on" : "", id: `mode-${m}`,
      onclick: () => navigate(`/submit${query({ kind: kindName, mode: m === "sweep" ? "sweep" : "" })}`, true),
    }, m === "sweep" ? "Sweep (grid × seeds)" : "One experiment")));
  const nameInput = h("input", { id: "run-name", size: 30, maxlength: 200 });
  const tagsInput = h("input", { id: "run-tags", size: 30, placeholder: "comma-separated" });
  const submittable = me.projects.filter((p) => !me.authenticated || p.role !== "viewer");
  const projectSelect = h("select", { id: "project" }, submittable.map((p) => h("option", { value: p.id, selected: p.id === me.personal_project }, p.name)));
  const sweep = mode === "sweep" ? sweepSection(form) : null;

  const submit = async (event) => {
    event.preventDefault();
    clear(problem);
    form.clearErrors();
    sweep?.clearErrors();
    const spec = { kind: kindName, ...((kind.default_spec ? form.value() : form.fullValue()) || {}) };
    const common = { name: nameInput.value.trim() || null, tags: tagsInput.value.split(",").map((t) => t.trim()).filter(Boolean) };
    try {
      if (mode === "probe") {
        const probe = await api("/v1/probes", { method: "POST", body: { experiment_id: probeOf, spec, ...common } });
        navigate(`/probes/${probe.id}`);
      } else if (mode === "sweep") {
        const body = { base: spec, ...sweep.read(), ...common, project_id: projectSelect.value };
        const created = await api("/v1/sweeps", { method: "POST", body });
        navigate(`/sweeps/${created.id}`);
      } else {
        const run = await api("/v1/experiments", { method: "POST", body: { spec, ...common, project_id: projectSelect.value } });
        navigate(`/runs/${run.id}`);
      }
    } catch (error) {
      const unplaced = placeErrors(error.details || [], form, sweep);
      clear(problem, errorBanner({ message: error.message, details: unplaced }));
      (main.querySelector(".invalid") || problem).scrollIntoView({ block: "center" });
    }
  };

  clear(main,
    h("h1", {}, probeOf ? `Probe run ${shortId(probeOf)}` : "Submit"),
    tabs,
    h("form", { class: "spec-form card", id: "submit-form", novalidate: true, onsubmit: submit },
      h("div", { class: "field" }, h("label", { for: "kind" }, probeOf ? "probe kind" : "kind"), kindSelect, h("div", { class: "help" }, kind.description)),
      h("div", { class: "field" }, h("label", { for: "run-name" }, "name"), nameInput),
      h("div", { class: "field" }, h("label", { for: "run-tags" }, "tags"), tagsInput),
      probeOf ? null : h("div", { class: "field" }, h("label", { for: "project" }, "project"), projectSelect),
      problem,
      form.element,
      sweep ? sweep.element : null,
      h("div", { class: "toolbar" }, h("button", { type: "submit", id: "submit" }, mode === "sweep" ? "Submit sweep" : mode === "probe" ? "Submit probe" : "Submit experiment"))));
}

// Each detail at its field: spec paths (spec.…, base.…) in the form, axes in the sweep
// section; the rest are returned for the banner.
function placeErrors(details, form, sweep) {
  const left = [];
  for (const detail of details) {
    const path = String(detail.path || "");
    const specPath = path.replace(/^(spec|base)\./, "");
    const placed = specPath !== path
      ? form.showErrors([{ path: specPath, message: detail.message }]).length === 0
      : sweep ? sweep.showError(path, detail.message) : false;
    if (!placed) left.push(detail);
  }
  return left;
}

// Axes (a spec field and its values) and seeds for POST /v1/sweeps.
function sweepSection(form) {
  const paths = form.leafPaths();
  const rows = h("div", { id: "axes" });
  const seeds = h("input", { id: "seeds", type: "number", value: 3, min: 1, step: 1 });
  const batch = h("input", { id: "batch", type: "checkbox", checked: true });
  const addRow = (path = paths[0], values = "") => {
    const select = h("select", { class: "axis-path" }, paths.map((p) => h("option", { value: p, selected: p === path }, p)));
    const input = h("input", { class: "axis-values", value: values, placeholder: "values, comma-separated: 14, 28, 56" });
    const row = h("div", { class: "field axes-row-field" },
      h("label", {}, "axis"),
      h("div", { class: "axes-row" }, select, input, h("button", { type: "button", class: "secondary", onclick: () => row.remove() }, "×")));
    rows.append(row);
  };
  addRow();
  const element = h("fieldset", { "data-path": "axes", class: "sweep-section" },
    h("legend", {}, "Sweep"),
    h("p", { class: "help muted" }, "Every combination of the axes' values runs once per seed; the sweep page plots the mean over seeds with its 95% interval."),
    rows,
    h("button", { type: "button", class: "secondary", id: "add-axis", onclick: () => addRow() }, "Add axis"),
    h("div", { class: "field", "data-path": "seeds" }, h("label", { for: "seeds" }, "seeds"), seeds, h("div", { class: "help" }, "How many seeds (0, 1, …) for every cell; 3 or more for an interval.")),
    h("div", { class: "field" }, h("label", { for: "batch" }, "batch"), batch, h("div", { class: "help" }, "Train children that differ only in seed and learning rate as one batched ensemble.")));
  const parse = (text) => text.split(",").map((t) => t.trim()).filter(Boolean).map((t) => {
    try { return JSON.parse(t); } catch { return t; }
  });
  return {
    element,
    read: () => ({
      axes: Object.fromEntries([...rows.children].map((row) => [row.querySelector(".axis-path").value, parse(row.querySelector(".axis-values").value)])),
      seeds: seeds.value === "" ? 1 : Number(seeds.value),
      batch: batch.checked,
    }),
    clearErrors: () => element.querySelectorAll(".invalid").forEach((el) => {
      el.classList.remove("invalid");
      el.querySelector(".field-error")?.remove();
    }),
    showError: (path, message) => {
      let target = null;
      if (path.startsWith("axes.")) {
        const axis = path.slice(5);
        target = [...rows.children].find((row) => {
          const chosen = row.querySelector(".axis-path").value;
          return axis === chosen || axis.startsWith(`${chosen}.`);
        });
      } else if (path === "seeds" || path.startsWith("seeds.")) {
        target = element.querySelector('[data-path="seeds"]');
      } else if (path === "axes") {
        target = rows.children[0];
      }
      if (!target) return false;
      target.classList.add("invalid");
      target.append(h("div", { class: "field-error", role: "alert" }, message));
      return true;
    },
  };
}
