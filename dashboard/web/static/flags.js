/* Vigil dashboard: why a sensor is flagged, in a few words ("stuck since 03:12 UTC"), from the `reason` the rule
   engine publishes with a sensor-health alert (stale, stuck, forecast, jump, noise, drift, restarts; see docs/rules.md). Times in
   the site's zone, durations counted to now. Loaded by the overview, sensor and alerts pages; uses app.js's
   helpers. The reason comes checked by the server (dashboard/live.py: a known kind, finite numbers). */
"use strict";

/* A duration in the largest unit that reads well: "45 s", "6 min", "3 h", "2 d". */
function flagSpan(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " d";
}

/* The reason in words; "" when there is none. `labels` give the reading's precision. */
function flagText(reason, labels) {
  const r = reason || {};
  const n = (k) => (typeof r[k] === "number" && Number.isFinite(r[k]) ? r[k] : null);
  const unit = typeof r.unit === "string" && r.unit ? " " + r.unit : "";
  const p = labels && /^[0-6]$/.test(labels.precision || "") ? +labels.precision : 1;
  const reading = (x) => x.toFixed(p);  // a measurement at the sensor's precision: 25.0, not 25
  const now = Date.now() / 1000;
  if (r.kind === "stale") {
    const last = n("last"), every = n("interval");
    return (last === null ? "no reading" : "no reading for " + flagSpan(now - last))
      + (every > 0 ? ` (usually every ${flagSpan(every)})` : "");
  }
  if (r.kind === "stuck") {
    const since = n("since");
    return since === null ? "stuck" : "stuck since " + whenShort(since);
  }
  if (r.kind === "forecast") {
    const th = n("threshold"), at = n("reach_at");
    const limit = th === null ? "its limit" : fmtValue(th, labels) + unit;
    if (at === null) return "heading for " + limit;
    return at > now ? `will reach ${limit} in about ${flagSpan(at - now)}` : `was to reach ${limit} at ${whenShort(at)}`;
  }
  if (r.kind === "jump") {
    const from = n("from"), to = n("to");
    return from === null || to === null ? "implausible jump" : `jumped from ${reading(from)} to ${reading(to)}${unit}`;
  }
  if (r.kind === "noise") {
    const ratio = n("ratio");
    return ratio === null ? "noisy" : `noisy: ${Math.round(ratio)}x its usual spread`;
  }
  if (r.kind === "restarts") {
    const c = n("count"), last = n("last");
    return (c === null ? "rebooting" : `rebooted ${Math.round(c)} times`) + (last === null ? "" : `, last at ${whenShort(last)}`);
  }
  if (r.kind === "drift") {
    const d = n("difference"), b = n("baseline");
    if (d === null) return "parting from its siblings";
    return `parting from its siblings: ${Math.abs(d).toFixed(1)}${unit} apart` + (b === null ? "" : ` (${Math.abs(b).toFixed(1)}${unit} before)`);
  }
  return "";
}

/* The sensor-health flags raised on series `sid` now: its firing (or flapping) alerts that carry a reason. */
function flagsOf(alerts, sid) {
  return alerts.filter((a) => a.series === sid && a.reason && (a.state === "firing" || a.state === "flapping"))
    .sort((a, b) => (a.rule < b.rule ? -1 : 1));
}

/* Whether an alert's value is a reading: a stale alert's is seconds of silence, a forecast's seconds to go, noise's
   a ratio (their reason says it in words). */
const valueIsReading = (a) => !a.reason || a.reason.kind === "stuck" || a.reason.kind === "jump";

/* One flag as a line: the icon and the reason (and the rule that raised it, when `tag` is "li"). */
function flagEl(a, labels, tag) {
  return el(tag || "div", { class: "flag", "data-kind": a.reason.kind, "data-rule": a.rule, title: a.message || null },
    icon("firing"), el("span", { class: "why" }, flagText(a.reason, labels) || a.reason.kind),
    tag === "li" ? el("span", { class: "muted" }, " · rule " + a.rule) : null);
}
