// A form generated from a JSON schema (pydantic's): a fieldset per nested object, a
// type selector per union (the mixer: attention, mamba2, …), inputs filled with the
// defaults. `value()` gives only what differs from the defaults, so the server fills in
// the rest exactly as for a spec sent by hand; `showErrors()` puts each 422 detail at
// its field.

import { h } from "./dom.js";

export function specForm(schema, givenDefaults) {
  const fields = new Map(); // dotted path → the .field or fieldset element that shows errors
  const resolve = (node) => {
    if (!node || !node.$ref) return node || {};
    const name = node.$ref.split("/").pop();
    const { $ref, ...rest } = node;
    return { ...resolve(schema.$defs[name]), ...rest };
  };
  const defaults = givenDefaults || schemaDefaults(resolve(schema), resolve);
  const root = objectField(resolve(schema), "", defaults, { resolve, fields }, true);
  return {
    element: root.element,
    value: () => minimal(root.read(), defaults),
    fullValue: () => root.read(),
    leafPaths: () => [...fields.entries()].filter(([, el]) => el.classList.contains("field")).map(([p]) => p),
    clearErrors: () => {
      for (const element of fields.values()) {
        element.classList.remove("invalid");
        element.querySelector(":scope > .field-error")?.remove();
      }
    },
    // details: [{path, message}] with paths relative to the spec; returns those that no
    // field could show.
    showErrors: (details) => details.filter((d) => !showAt(fields, d.path, d.message)),
  };
}

// The deepest field along `path`; a segment no field has (a union's tag, as pydantic
// puts it in a location) is skipped.
function showAt(fields, path, message) {
  let current = "";
  let found = null;
  for (const segment of String(path).split(".")) {
    const next = current ? `${current}.${segment}` : segment;
    if ([...fields.keys()].some((p) => p === next || p.startsWith(next + "."))) {
      current = next;
      if (fields.has(next)) found = fields.get(next);
    }
  }
  if (!found) return false;
  found.classList.add("invalid");
  const slot = found.querySelector(":scope > .field-error") || found.appendChild(h("div", { class: "field-error", role: "alert" }));
  slot.textContent = slot.textContent ? `${slot.textContent}; ${message}` : message;
  return true;
}

function build(node, path, initial, context) {
  const { resolve } = context;
  const variants = unionVariants(node, resolve);
  if (variants) return unionField(node, path, initial, variants, context);
  const nullable = nullableOf(node, resolve);
  if (nullable) return nullableField(node, nullable, path, initial, context);
  if (node.type === "object" && node.properties) return objectField(node, path, initial, context);
  return leafField(node, path, initial, context);
}

// A field is labelled by its name, as `--set` and the docs spell it (n_embd, not "N Embd").
function label(node, path) {
  return path.split(".").pop() || "spec";
}

function objectField(node, path, initial, context, top = false) {
  const children = [];
  const fixed = {};
  for (const [name, child] of Object.entries(node.properties)) {
    const resolved = context.resolve(child);
    const childPath = path ? `${path}.${name}` : name;
    const value = initial && typeof initial === "object" ? initial[name] : undefined;
    if (resolved.const !== undefined) {
      fixed[name] = resolved.const; // a kind's or variant's tag: not a choice here
      continue;
    }
    children.push([name, build(resolved, childPath, value === undefined ? resolved.default : value, context)]);
  }
  const body = children.map(([, field]) => field.element);
  const element = top
    ? h("div", { class: "spec-root" }, body)
    : h("fieldset", { "data-path": path }, h("legend", {}, label(node, path)), node.description ? h("div", { class: "help muted" }, node.description) : null, body);
  if (path) context.fields.set(path, element);
  return {
    element,
    read: () => {
      const out = { ...fixed };
      for (const [name, field] of children) {
        const value = field.read();
        if (value !== undefined) out[name] = value;
      }
      return out;
    },
  };
}

// Variants of a union of objects told apart by a constant `type` (or other tag) field.
function unionVariants(node, resolve) {
  const options = node.oneOf || node.anyOf;
  if (!options || options.length < 2) return null;
  const resolved = options.map(resolve);
  if (!resolved.every((v) => v.type === "object" && v.properties)) return null;
  const tag = (node.discriminator && node.discriminator.propertyName) || "type";
  if (!resolved.every((v) => v.properties[tag] && resolve(v.properties[tag]).const !== undefined)) return null;
  return { tag, options: resolved.map((v) => [resolve(v.properties[tag]).const, v]) };
}

function unionField(node, path, initial, variants, context) {
  const { tag, options } = variants;
  const holder = h("div", { class: "union-body" });
  let current = null;
  const choose = (name, value) => {
    const [, variant] = options.find(([n]) => n === name);
    // The old variant's fields go from the registry with its inputs.
    for (const key of [...context.fields.keys()]) if (key.startsWith(path + ".")) context.fields.delete(key);
    current = objectField(variant, path, value ?? schemaDefaults(variant, context.resolve), context);
    context.fields.set(path, element);
    holder.replaceChildren(...[...current.element.childNodes].filter((n) => n.tagName !== "LEGEND"));
  };
  const chosen = (initial && initial[tag]) || options[0][0];
  const selector = h("select", { name: `${path}.${tag}`, "data-path": `${path}.${tag}`, onchange: (e) => choose(e.target.value, null) },
    options.map(([name]) => h("option", { value: name, selected: name === chosen }, name)));
  const element = h("fieldset", { "data-path": path, class: "union" },
    h("legend", {}, label(node, path), " ", selector), holder);
  choose(chosen, initial);
  return { element, read: () => current.read() };
}

function nullableOf(node, resolve) {
  const options = node.anyOf;
  if (!options || options.length !== 2) return null;
  const others = options.map(resolve).filter((o) => o.type !== "null");
  return others.length === 1 && options.some((o) => resolve(o).type === "null") ? others[0] : null;
}

function nullableField(node, inner, path, initial, context) {
  const merged = { ...inner, title: node.title, description: node.description, default: node.default };
  if (inner.type === "object" && inner.properties) {
    // An optional group: a checkbox turns it on, with its defaults.
    const box = h("input", { type: "checkbox", checked: initial !== null && initial !== undefined });
    const group = objectField(merged, path, initial ?? schemaDefaults(inner, context.resolve), context);
    const sync = () => { group.element.disabled = !box.checked; };
    box.addEventListener("change", sync);
    sync();
    const element = h("div", { class: "optional-group" }, h("label", {}, box, ` set ${label(node, path)}`), group.element);
    return { element, read: () => (box.checked ? group.read() : null) };
  }
  const field = leafField(merged, path, initial, context, true);
  return field;
}

function leafField(node, path, initial, context, nullable = false) {
  const id = `field-${path.replace(/\./g, "-")}`;
  let input;
  let read;
  const empty = () => (nullable ? null : undefined);
  if (node.type === "boolean" && nullable) {
    // Three states: null means something of its own (e.g. "decide from the data").
    input = h("select", { id, name: path },
      [["null", "none (default rule)"], ["true", "true"], ["false", "false"]].map(([v, text]) =>
        h("option", { value: v, selected: JSON.stringify(initial ?? null) === v }, text)));
    read = () => JSON.parse(input.value);
  } else if (node.enum) {
    input = h("select", { id, name: path }, nullable ? h("option", { value: "" }, "(none)") : null,
      node.enum.map((v) => h("option", { value: JSON.stringify(v), selected: JSON.stringify(v) === JSON.stringify(initial) }, String(v))));
    read = () => (input.value === "" ? empty() : JSON.parse(input.value));
  } else if (node.type === "boolean") {
    input = h("input", { id, name: path, type: "checkbox", checked: initial === true });
    read = () => input.checked;
  } else if (node.type === "integer" || node.type === "number") {
    input = h("input", {
      id, name: path, type: "number", value: initial ?? "",
      step: node.type === "integer" ? "1" : "any",
      min: node.minimum, max: node.maximum,
      placeholder: nullable ? "none" : "",
    });
    read = () => (input.value === "" ? empty() : Number(input.value));
  } else if (node.type === "string") {
    const long = typeof initial === "string" && initial.length > 80;
    input = h(long ? "textarea" : "input", { id, name: path, rows: long ? 4 : undefined, placeholder: nullable ? "none" : "" });
    input.value = initial ?? "";
    read = () => (input.value === "" ? empty() : input.value);
  } else {
    // Lists, maps and unions of scalars: JSON.
    input = h("input", { id, name: path, class: "json-input", size: 40, placeholder: nullable ? "none (JSON)" : "JSON" });
    input.value = initial === undefined || initial === null ? "" : JSON.stringify(initial);
    read = () => {
      if (input.value.trim() === "") return empty();
      try {
        return JSON.parse(input.value);
      } catch {
        return input.value; // the server's 422 names the field
      }
    };
  }
  const element = h("div", { class: "field", "data-path": path },
    h("label", { for: id, title: path }, label(node, path)),
    input,
    node.description ? h("div", { class: "help" }, node.description) : null);
  context.fields.set(path, element);
  return { element, read };
}

// The defaults a schema node gives its fields (a union variant chosen afresh).
export function schemaDefaults(node, resolve) {
  if (node.default !== undefined) return node.default;
  if (node.type === "object" && node.properties) {
    const out = {};
    for (const [name, child] of Object.entries(node.properties)) {
      const resolved = resolve(child);
      const value = resolved.const !== undefined ? resolved.const : schemaDefaults(resolved, resolve);
      if (value !== undefined) out[name] = value;
    }
    return out;
  }
  return undefined;
}

// What of `value` differs from `defaults`: objects field by field, a union whose tag
// changed (or any other value that differs) whole.
export function minimal(value, defaults) {
  const isObject = (v) => v && typeof v === "object" && !Array.isArray(v);
  if (isObject(value) && isObject(defaults) && value.type === defaults.type) {
    const out = {};
    for (const [key, v] of Object.entries(value)) {
      const changed = minimal(v, defaults[key]);
      if (changed !== undefined) out[key] = changed;
    }
    return Object.keys(out).length ? out : undefined;
  }
  return JSON.stringify(value) === JSON.stringify(defaults) ? undefined : value;
}
