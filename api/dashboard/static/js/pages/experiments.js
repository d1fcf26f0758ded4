// The experiments list: the filter language, facets, columns for any spec or result
// field (sortable on the server), and a selection to compare.

import { api, query } from "../api.js";
import { navigate } from "../app.js";
import { clear, errorBanner, flatten, fmtNum, fmtTime, h, pager, pick, progressBar, shortId, statusBadge } from "../dom.js";

const PAGE_SIZE = 50;
const FILTERS = ["where", "status", "kind", "tag", "project_id", "sort", "cols", "offset"];

export async function render(main, _, search) {
  const state = Object.fromEntries(FILTERS.map((k) => [k, search.get(k) || ""]));
  const columns = state.cols ? state.cols.split(",") : [];
  const listing = {
    where: state.where, status: state.status, kind: state.kind, tag: state.tag,
    project_id: state.project_id,
  };
  const go = (changes) => {
    const next = { ...state, offset: "", ...changes };
    navigate(`/experiments${query(next)}`);
  };

  const whereInput = h("input", {
    id: "where", value: state.where, size: 70,
    placeholder: 'spec.model.n_embd in (14, 28) and result.final.facts >= 0.9',
  });
  const filterForm = h(
    "form",
    { class: "toolbar", onsubmit: (e) => { e.preventDefault(); go({ where: whereInput.value.trim() }); } },
    whereInput,
    h("button", { type: "submit" }, "Filter"),
    state.where ? h("button", { type: "button", class: "secondary", onclick: () => go({ where: "" }) }, "Clear") : null,
    h("a", { href: "/v1/experiments" + query({ ...listing, sort: state.sort, format: "csv" }), download: "" }, "CSV"),
    h("a", { href: "/v1/experiments" + query({ ...listing, sort: state.sort, format: "parquet" }), download: "" }, "Parquet"),
  );

  let page, facets;
  try {
    [page, facets] = await Promise.all([
      api("/v1/experiments" + query({ ...listing, sort: state.sort, limit: PAGE_SIZE, offset: state.offset })),
      api("/v1/experiments/facets" + query(listing)),
    ]);
  } catch (error) {
    clear(main, h("h1", {}, "Experiments"), filterForm, errorBanner(error));
    return;
  }

  const selected = new Set();
  const compareButton = h("button", {
    id: "compare-selected", disabled: true,
    onclick: () => navigate(`/compare?ids=${[...selected].join(",")}`),
  }, "Compare selected");
  const fieldInput = h("input", { id: "add-column", list: "known-fields", placeholder: "spec.train.lr or result.final.facts", size: 34 });
  const known = knownFields(page.items);
  const columnForm = h(
    "form",
    { class: "toolbar", onsubmit: (e) => {
      e.preventDefault();
      const field = fieldInput.value.trim();
      if (field && !columns.includes(field)) go({ cols: [...columns, field].join(","), offset: state.offset });
    } },
    compareButton,
    h("span", { class: "muted" }, "Column:"),
    fieldInput,
    h("datalist", { id: "known-fields" }, known.map((f) => h("option", { value: f }))),
    h("button", { type: "submit", class: "secondary" }, "Add column"),
  );

  const sortHeader = (label, field, numeric = false) => {
    const current = state.sort === field ? " ▲" : state.sort === `-${field}` ? " ▼" : "";
    const next = state.sort === `-${field}` ? field : `-${field}`;
    return h("th", {
      class: `sortable${numeric ? " num" : ""}`, "data-field": field, title: `sort by ${field}`,
      onclick: () => go({ sort: next }), // a new order starts at its first page
    }, label + current);
  };
  const removeColumn = (field) => go({ cols: columns.filter((c) => c !== field).join(","), offset: state.offset });
  const head = h("tr", {},
    h("th", {}, ""),
    sortHeader("id", "id"),
    sortHeader("name", "name"),
    sortHeader("kind", "kind"),
    sortHeader("status", "status"),
    h("th", {}, "progress"),
    sortHeader("created", "created_at"),
    h("th", {}, "tags"),
    columns.map((c) => {
      const th = sortHeader(c, c, true);
      th.append(" ", h("a", { href: "#", title: "remove column", onclick: (e) => { e.preventDefault(); e.stopPropagation(); removeColumn(c); } }, "×"));
      return th;
    }),
  );
  const rows = page.items.map((run) => h("tr", { "data-id": run.id },
    h("td", {}, h("input", { type: "checkbox", "aria-label": `select ${run.id}`, onchange: (e) => {
      if (e.target.checked) selected.add(run.id); else selected.delete(run.id);
      compareButton.disabled = selected.size < 1;
    } })),
    h("td", {}, h("a", { href: `/runs/${run.id}`, class: "run-link" }, shortId(run.id))),
    h("td", {}, run.name || ""),
    h("td", {}, run.kind),
    h("td", {}, statusBadge(run.status)),
    h("td", {}, progressBar(run.progress)),
    h("td", {}, fmtTime(run.created_at)),
    h("td", {}, run.tags.join(", ")),
    columns.map((c) => h("td", { class: "num" }, fmtNum(fieldValue(run, c)))),
  ));

  const offset = Number(state.offset || 0);
  const pages = pager(offset, page.items.length, page.total, PAGE_SIZE, (to) => go({ offset: to }));

  clear(
    main,
    h("h1", {}, "Experiments"),
    filterForm,
    h("div", { class: "layout-list" },
      facetPanel(facets, state, go),
      h("div", {}, columnForm, h("table", { id: "experiments" }, h("thead", {}, head), h("tbody", {}, rows)), pages),
    ),
  );
}

function fieldValue(run, field) {
  const [root, ...rest] = field.split(".");
  if (root === "spec" || root === "result") return pick(run[root], rest.join("."));
  return run[field];
}

function knownFields(items) {
  const fields = new Set();
  for (const run of items.slice(0, 20)) {
    for (const [k, v] of Object.entries(flatten(run.spec, "spec"))) if (typeof v === "number") fields.add(k);
    for (const [k, v] of Object.entries(flatten(run.result || {}, "result"))) if (typeof v === "number") fields.add(k);
  }
  return [...fields].sort();
}

function facetPanel(facets, state, go) {
  const group = (title, param, counts, label = (v) => v) => [
    h("h3", {}, title),
    state[param] ? h("a", { href: "#", onclick: (e) => { e.preventDefault(); go({ [param]: "" }); } }, "× any") : null,
    counts.map(([value, count, shown]) => h("a", {
      href: "#", class: state[param] === value ? "on" : "", "data-facet": `${param}=${value}`,
      onclick: (e) => { e.preventDefault(); go({ [param]: state[param] === value ? "" : value }); },
    }, h("span", {}, label(shown ?? value)), h("span", { class: "muted" }, count))),
  ];
  return h("aside", { class: "facets card", id: "facets" },
    h("div", { class: "muted" }, `${facets.total} matching`),
    group("Status", "status", Object.entries(facets.status)),
    group("Kind", "kind", Object.entries(facets.kind)),
    group("Tag", "tag", Object.entries(facets.tag)),
    group("Project", "project_id", facets.project.map((p) => [p.id, p.count, p.name])),
  );
}
