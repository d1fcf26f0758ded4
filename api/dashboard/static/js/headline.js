// A probe's result in a few words, for listings: AUC with its interval, bits per
// parameter, or mean exposure by insertion count.

import { fmtNum } from "./dom.js";

export function probeHeadline(result) {
  if (!result) return "";
  const attack = result.attack || result;
  if (typeof attack.auc === "number") {
    const ci = attack.auc_ci95 ? ` [${fmtNum(attack.auc_ci95[0], 3)}, ${fmtNum(attack.auc_ci95[1], 3)}]` : "";
    return `AUC ${fmtNum(attack.auc, 3)}${ci}`;
  }
  if (typeof result.bits_per_parameter === "number") return `${fmtNum(result.bits_per_parameter, 3)} bits/parameter`;
  if (result.mean_exposure) {
    return `exposure ${Object.entries(result.mean_exposure).map(([k, v]) => `${k}: ${fmtNum(v, 3)}`).join(", ")}`;
  }
  return "";
}
