// Worker nodes (who runs what, since when), queue depths and the server's quotas.

import { api } from "../api.js";
import { clear, fmtDuration, fmtTime, h, shortId } from "../dom.js";

export async function render(main) {
  const found = await api("/v1/workers");
  const quotas = found.quotas || {};
  const quota = (value, unit = "") => (value ? `${value}${unit}` : "none");
  clear(main,
    h("h1", {}, "Workers and queues"),
    h("h2", {}, "Queues"),
    h("table", { id: "queues" },
      h("tr", {}, h("th", {}, "queue"), h("th", { class: "num" }, "queued"), h("th", { class: "num" }, "running")),
      found.queues.map((q) => h("tr", { "data-queue": q.name }, h("td", {}, q.name), h("td", { class: "num" }, q.queued), h("td", { class: "num" }, q.running)))),
    h("h2", {}, "Nodes"),
    found.items.length
      ? h("table", { id: "workers" },
          h("tr", {}, ["node", "state", "queues", "devices", "slots", "running", "heartbeat", "version"].map((c) => h("th", {}, c))),
          found.items.map((w) => h("tr", { "data-worker": w.name },
            h("td", {}, w.name),
            h("td", {}, w.stopped_at ? "stopped" : w.draining ? "draining" : w.live ? "live" : "silent"),
            h("td", {}, w.queues.join(", ")),
            h("td", {}, w.devices.map((d) => `${d.name} ${d.memory_gib} GiB`).join(", ") || "cpu"),
            h("td", {}, `${w.busy} / ${w.concurrency} busy`),
            h("td", {}, w.running.map((r) => h("div", {},
              !r.id ? "a run of another project"
                : r.run_type === "group" ? `a batched group of ${r.kind} ${shortId(r.id)}`
                : h("a", { href: r.run_type === "probe" ? `/probes/${r.id}` : `/runs/${r.id}` }, `${r.kind} ${shortId(r.id)}`),
              ` for ${fmtDuration(r.started_at)}`))),
            h("td", {}, fmtTime(w.heartbeat_at)),
            h("td", {}, w.version))))
      : h("p", { class: "muted" }, "No worker node has registered: start one with `memlab worker`."),
    h("h2", {}, "Quotas"),
    h("p", { class: "muted" }, "Over a quota a run waits, queued, with the reason as its message; it is never refused."),
    h("table", { id: "quotas" },
      h("tr", {}, h("th", {}, ""), h("th", {}, "per user"), h("th", {}, "per project")),
      h("tr", {}, h("td", {}, "runs at once"), h("td", {}, quota(quotas.runs_per_user)), h("td", {}, quota(quotas.runs_per_project))),
      h("tr", {}, h("td", {}, "GPU runs at once"), h("td", {}, quota(quotas.gpu_runs_per_user)), h("td", {}, quota(quotas.gpu_runs_per_project))),
      h("tr", {}, h("td", {}, "GPU-hours per 24 h"), h("td", {}, quota(quotas.gpu_hours_per_user)), h("td", {}, quota(quotas.gpu_hours_per_project)))));
}
