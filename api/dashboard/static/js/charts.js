// Plotly, set up once for the dashboard. Each chart element gets data-drawn="N" (the
// number of points drawn) once Plotly has drawn it, and data-drawn-at (milliseconds
// since the navigation began, at its first drawing): the browser tests and
// bench/dashboard.py wait on them.

const BASE_LAYOUT = {
  margin: { l: 60, r: 20, t: 36, b: 48 },
  font: { family: "system-ui, sans-serif", size: 12 },
  legend: { orientation: "h", y: -0.25 },
  hovermode: "closest",
  paper_bgcolor: "#fff",
  plot_bgcolor: "#fff",
};
const CONFIG = { responsive: true, displaylogo: false };

export function chartBox(id) {
  const element = document.createElement("div");
  element.className = "chart";
  if (id) element.id = id;
  return element;
}

function pointsOf(traces) {
  return traces.reduce((n, t) => n + (t.x ? t.x.length : 0) + (t.z ? t.z.flat().length : 0), 0);
}

// Plotly reads tags (<a>, <b>, <span style>) in names and titles; what a user named
// (runs, tags, metric keys) is shown as text.
function plain(text) {
  return typeof text === "string" ? text.replace(/&/g, "&amp;").replace(/</g, "&lt;") : text;
}

let plotly = null;

// plotly.js, run once, on the first chart: the shell only preloads it, so that a page
// asks for its data while the bundle is fetched and parsed.
function loadPlotly() {
  plotly ||= new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = document.getElementById("plotly-bundle")?.getAttribute("href");
    const fail = (message) => {
      plotly = null; // the next chart tries again
      script.remove();
      reject(new Error(message));
    };
    script.onload = () => (window.Plotly ? resolve(window.Plotly) : fail(`${script.src} did not define Plotly`));
    script.onerror = () => fail(`could not load ${script.src}`);
    document.head.append(script);
  });
  return plotly;
}

export async function draw(element, traces, layout = {}) {
  const Plotly = await loadPlotly();
  traces = traces.map((t) => ({ ...t, name: plain(t.name) }));
  const merged = { ...BASE_LAYOUT, ...layout };
  if (merged.title) {
    merged.title = { x: 0.01, xanchor: "left", font: { size: 13 }, ...merged.title, text: plain(merged.title.text) };
  }
  await Plotly.react(element, traces, merged, CONFIG);
  element.dataset.drawn = String(pointsOf(traces));
  element.dataset.drawnAt ||= String(Math.round(performance.now()));
  element.dataset.traces = String(traces.length);
}

function axis(title, log = false, extra = {}) {
  return { title: { text: title }, type: log ? "log" : "linear", zeroline: false, ...extra };
}

// Metric series {key: {steps, values}} as one line each, train/* and eval/* alike.
export function seriesTraces(series, namePrefix = "") {
  return Object.entries(series).map(([key, s]) => ({
    // SVG, not WebGL: at most 2,000 points a series (the server downsamples), and it
    // draws the same on a machine without a GPU.
    type: "scatter",
    mode: s.steps.length < 50 ? "lines+markers" : "lines", // a lone point shows too
    name: namePrefix + key,
    x: s.steps,
    y: s.values,
  }));
}

export function lineLayout(title, xTitle, yTitle, { logX = false, logY = false } = {}) {
  return { title: { text: title }, xaxis: axis(xTitle, logX), yaxis: axis(yTitle, logY) };
}

// A measured curve (core/curves.py: mean and 95% interval over seeds) and its theory.
export function curveTraces(curve, color) {
  const upper = curve.ci95.map((ci, i) => (ci ? ci[1] - curve.mean[i] : 0));
  const lower = curve.ci95.map((ci, i) => (ci ? curve.mean[i] - ci[0] : 0));
  const traces = [
    {
      type: "scatter",
      mode: "lines+markers",
      name: `${curve.name} (measured, n=${curve.n_seeds})`,
      x: curve.x,
      y: curve.mean,
      line: { color },
      error_y: { type: "data", array: upper, arrayminus: lower, visible: true },
    },
  ];
  if (curve.theory && curve.theory.some((v) => v !== null)) {
    traces.push({
      type: "scatter",
      mode: "lines",
      name: `${curve.name} (theory)`,
      x: curve.x,
      y: curve.theory,
      line: { color, dash: "dash" },
      connectgaps: false,
    });
  }
  return traces;
}

// ROC curves on log-log axes (the convention for low-FPR results), with the chance line.
// rocs: [{name, fpr, tpr, dash?}]. Points at 0 cannot sit on a log axis: they are
// clipped to the smallest positive rate the data has, as the papers' plots do.
export function rocTraces(rocs) {
  const positive = rocs.flatMap((r) => r.fpr.concat(r.tpr)).filter((v) => v > 0);
  const floor = positive.length ? Math.min(...positive) : 1e-4;
  const clip = (values) => values.map((v) => Math.max(v, floor));
  const traces = rocs.map((r) => ({
    type: "scatter",
    mode: "lines",
    name: r.name,
    x: clip(r.fpr),
    y: clip(r.tpr),
    line: { dash: r.dash || "solid", shape: "hv" },
  }));
  traces.push({
    type: "scatter",
    mode: "lines",
    name: "chance (TPR = FPR)",
    x: [floor, 1],
    y: [floor, 1],
    line: { color: "#999", dash: "dot" },
  });
  return traces;
}

export function rocLayout(title) {
  return {
    title: { text: title },
    // A label per decade (10⁻³, 10⁻², …): the minor ones crowd a log axis.
    xaxis: axis("false positive rate", true, { dtick: 1, exponentformat: "power" }),
    yaxis: axis("true positive rate", true, { dtick: 1, exponentformat: "power" }),
  };
}

export function heatmapTrace(x, y, z, title) {
  return {
    type: "heatmap",
    x: x.map(String),
    y: y.map(String),
    z,
    colorscale: "Viridis",
    colorbar: { title: { text: title } },
    hovertemplate: "%{x}, %{y}: %{z}<extra></extra>",
  };
}
