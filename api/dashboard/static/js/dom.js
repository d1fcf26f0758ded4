// Small helpers to build the DOM without a framework, and to format values.

// h("a", {href: "/x", class: "y"}, "text", child, …): an element.
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, value);
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

export function fmtNum(value, digits = 4) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return value.toLocaleString("en");
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e6)) return value.toExponential(2);
  return value.toPrecision(digits).replace(/\.?0+$/, "");
}

export function fmtTime(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return date.toLocaleString("en-GB", { dateStyle: "short", timeStyle: "medium" });
}

export function fmtDuration(startIso, endIso) {
  if (!startIso) return "–";
  const seconds = ((endIso ? new Date(endIso) : new Date()) - new Date(startIso)) / 1000;
  if (seconds < 90) return `${seconds.toFixed(0)} s`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}`, "data-status": status }, status);
}

export function progressBar(fraction) {
  const percent = Math.round(100 * Math.max(0, Math.min(1, fraction || 0)));
  return h("div", { class: "progress", title: `${percent}%` }, h("div", { style: `width:${percent}%` }));
}

// "← Newer · 51–100 of 230 · Older →" for a listing of `size` a page; go(offset) turns it.
export function pager(offset, shown, total, size, go) {
  return h("div", { class: "pager" },
    h("button", { class: "secondary", disabled: offset === 0, onclick: () => go(Math.max(0, offset - size)) }, "← Newer"),
    h("span", { class: "muted", id: "total" }, `${shown ? offset + 1 : 0}–${offset + shown} of ${total}`),
    h("button", { class: "secondary", disabled: offset + size >= total, onclick: () => go(offset + size) }, "Older →"));
}

export function shortId(id) {
  return id ? id.slice(0, 8) : "";
}

export function errorBanner(error) {
  const lines = [error.message];
  for (const detail of error.details || []) lines.push(`  ${detail.path}: ${detail.message}`);
  return h("div", { class: "banner-error", role: "alert" }, lines.join("\n"));
}

// Definition list of [label, value] pairs.
export function keyValues(pairs) {
  return h("dl", { class: "kv" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

export function jsonBlock(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

// Scalar leaves of a nested object as {"a.b": value}; arrays are not descended.
export function flatten(value, prefix = "", out = {}) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out[prefix] = value;
  }
  return out;
}

// The value at a dotted path of a nested object, or undefined.
export function pick(value, path) {
  return path.split(".").reduce((v, k) => (v && typeof v === "object" ? v[k] : undefined), value);
}
