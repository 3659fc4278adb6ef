/* Vigil dashboard: one sensor's history, with the unit on the axis, every matching rule's threshold as a line,
   pending and firing periods shaded, and min/max/mean of the range shown. Uses app.js's helpers. */
"use strict";

/* Periods an alert spent pending or firing, from its changes in time order: [{from, to, state, rule}]. */
function alertPeriods(changes, end) {
  const byRule = new Map();
  for (const a of changes) { if (!byRule.has(a.rule)) byRule.set(a.rule, []); byRule.get(a.rule).push(a); }
  const out = [];
  for (const list of byRule.values()) {
    list.sort((x, y) => x.at - y.at);
    list.forEach((a, i) => {
      if (a.state !== "pending" && a.state !== "firing" && a.state !== "flapping") return;
      const next = list[i + 1];
      out.push({ from: a.at, to: next ? next.at : end, state: a.state === "pending" ? "pending" : "firing", rule: a.rule });
    });
  }
  return out;
}

async function sensorPage() {
  const b = document.body.dataset;
  const q = `device=${encodeURIComponent(b.device)}&sensor=${encodeURIComponent(b.sensor)}&metric=${encodeURIComponent(b.metric)}`;
  const sid = [b.device, b.sensor, b.metric].join("/");
  let chart = null, following = true, current = { range: "24h" }, fitted = null;
  const target = $("#chart");
  const [rows, lim] = await Promise.all([
    api(`/api/v1/latest?device=${encodeURIComponent(b.device)}&metric=${encodeURIComponent(b.metric)}`).catch(() => []),
    api("/api/v1/limits").catch(() => ({ series: {} }))]);
  const row = rows.find((r) => r.series === sid) || { device: b.device, sensor: b.sensor, metric: b.metric, labels: {}, unit: "" };
  const unit = row.unit || "", labels = row.labels || {};
  const limits = ((lim.series || {})[sid] || {}).limits || [];
  const ths = limits.flatMap((l) => [l.above, l.below]).filter((v) => v !== null && v !== undefined);
  const f = friendly(row);
  $("#title").textContent = f.name + (f.where ? " · " + f.where : "");
  $("#zone").textContent = "Times in " + (TZ || "the browser's time zone") + ".";
  $("#limits").replaceChildren(...(limits.length ? limits.map((l) => el("li", {}, el("span", { class: "swatch", "aria-hidden": "true" }),
    `${l.rule} (${l.severity}): ${limitText(l, unit, labels)}`)) : [el("li", { class: "muted" }, "No rule sets a limit on this sensor.")]));

  function drawOverlays(u, h) {
    const ctx = u.ctx, { left, top, width, height } = u.bbox, dpr = devicePixelRatio;
    ctx.save();
    // Pending and firing periods: translucent bands over the grid and the readings.
    for (const p of alertPeriods(h.alerts, h.end)) {
      const x0 = Math.max(left, u.valToPos(p.from, "x", true)), x1 = Math.min(left + width, u.valToPos(p.to, "x", true));
      if (x1 <= x0) continue;
      ctx.globalAlpha = p.state === "firing" ? 0.18 : 0.12;
      ctx.fillStyle = cssVar(p.state === "firing" ? "--firing" : "--pending");
      ctx.fillRect(x0, top, x1 - x0, height);
    }
    ctx.globalAlpha = 1;
    // Each change of an alert as a vertical line in its colour.
    for (const a of h.alerts) {
      const x = u.valToPos(a.at, "x", true);
      if (x < left || x > left + width) continue;
      ctx.strokeStyle = cssVar(a.state === "firing" ? "--firing" : a.state === "pending" ? "--pending" : "--ok");
      ctx.setLineDash([4 * dpr, 3 * dpr]); ctx.lineWidth = 1.5 * dpr;
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
    }
    // Every threshold of the matching rules, labelled with the rule's name.
    ctx.font = `${12 * dpr}px system-ui, sans-serif`;
    for (const l of limits) {
      for (const [key, word] of [["above", "above"], ["below", "below"]]) {
        if (l[key] === null || l[key] === undefined) continue;
        const y = u.valToPos(l[key], "y", true);
        if (y < top || y > top + height) continue;
        ctx.strokeStyle = ctx.fillStyle = cssVar(l.severity === "critical" ? "--firing" : "--pending");
        ctx.setLineDash([6 * dpr, 4 * dpr]); ctx.lineWidth = 1.5 * dpr;
        ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + width, y); ctx.stroke();
        ctx.fillText(`${l.rule}: ${word} ${withUnit(l[key], unit, labels)}`, left + 6 * dpr, y - 4 * dpr);
      }
    }
    ctx.restore();
  }

  async function load(params) {
    current = params;
    document.querySelectorAll("[data-range]").forEach((x) => x.setAttribute("aria-pressed", String(x.dataset.range === params.range)));
    const extra = params.range ? `&range=${params.range}` : `&start=${params.start}&end=${params.end}`;
    following = !!params.range || !!params.fit;
    const h = await api(`/api/v1/history?${q}${extra}&points=${Math.min(2000, Math.max(200, target.clientWidth))}`);
    const first = h.min.length ? h.min[0][0] : null;
    // A new sensor: show since its first reading instead of a day of empty grid.
    if (params.range === "24h" && params.auto && first !== null && first - h.start > 600) {
      fitted = { start: first - Math.max(60, (h.end - first) * 0.02), fit: true };
      return load({ start: fitted.start.toFixed(3), end: (Date.now() / 1000).toFixed(3), fit: true });
    }
    $("#range-note").textContent = params.fit ? `Showing since the first reading (${span(h.end - h.start)}).` : "";
    $("#from").value = siteInput(h.start); $("#to").value = siteInput(h.end);  // what is shown, in the site's zone
    const xs = h.points.map((p) => p[0]);
    const mins = new Map(h.min.map((p) => [p[0], p[1]])), maxs = new Map(h.max.map((p) => [p[0], p[1]]));
    const data = [xs, h.points.map((p) => p[1]), xs.map((x) => mins.get(x) ?? null), xs.map((x) => maxs.get(x) ?? null)];
    const s = h.stats;
    $("#stats").replaceChildren(
      el("div", {}, el("dt", {}, "min"), el("dd", {}, withUnit(s.min, unit, labels))),
      el("div", {}, el("dt", {}, "max"), el("dd", {}, withUnit(s.max, unit, labels))),
      el("div", {}, el("dt", {}, "mean"), el("dd", {}, withUnit(s.mean, unit, labels))),
      el("div", {}, el("dt", {}, "readings"), el("dd", {}, s.count)),
      el("div", {}, el("dt", {}, "resolution"), el("dd", {}, span(h.bucket))));
    $("#series-alerts").replaceChildren(...(h.alerts.length ? h.alerts.map((a) =>
      el("li", {}, condBadge(a.state), " ", a.rule, " · ", timeEl(a.at)))
      : [el("li", { class: "muted" }, "none in this range")]));
    if (chart) chart.destroy();
    target.dataset.yLabel = unit ? `${b.metric} (${unit})` : b.metric;
    target.dataset.thresholds = ths.join(" ");
    if (!window.uPlot) { target.textContent = "The chart library is not installed."; return; }
    const accent = cssVar("--accent"), muted = cssVar("--muted"), grid = cssVar("--line"), fg = cssVar("--fg");
    const axis = { stroke: fg, grid: { stroke: grid }, ticks: { stroke: grid } };
    const phone = target.clientWidth < 500;
    chart = new uPlot({
      width: target.clientWidth - 12, height: phone ? 240 : 320,
      tzDate: (ts) => TZ ? uPlot.tzDate(new Date(ts * 1000), TZ) : new Date(ts * 1000),
      scales: {
        x: { time: true, min: h.start, max: h.end },
        // Thresholds stay in view: a line off the chart says nothing.
        y: { range: (u, lo, hi) => {
          const all = [lo, hi, ...ths].filter((v) => v !== null && Number.isFinite(v));
          if (!all.length) return [0, 1];
          const a = Math.min(...all), z = Math.max(...all), pad = (z - a) * 0.08 || 1;
          return [a - pad, z + pad];
        } },
      },
      axes: [axis, { ...axis, size: phone ? 64 : 78, label: unit ? `${b.metric} (${unit})` : b.metric, labelSize: 18,
        values: (u, vals) => vals.map((v) => fmtValue(v, { precision: String(Math.max(0, Math.min(6, -Math.floor(Math.log10(Math.abs(vals[1] - vals[0]) || 1))))) }) + (unit ? " " + unit : "")) }],
      series: [{}, { label: "mean", stroke: accent, width: 2, points: { show: false } },
        { label: "min", stroke: muted, width: 1, dash: [3, 3], points: { show: false } },
        { label: "max", stroke: muted, width: 1, dash: [3, 3], points: { show: false } }],
      cursor: { drag: { x: true, y: false } },
      legend: { show: !phone },
      hooks: {
        // Over the grid and the readings: a grid line at the time of an alert hid its line (an alert at midnight).
        draw: [(u) => drawOverlays(u, h)],
        setSelect: [(u) => {
          if (u.select.width < 5) return;
          const a = u.posToVal(u.select.left, "x"), z = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({ width: 0, height: 0 }, false);
          load({ start: a.toFixed(3), end: z.toFixed(3) });
        }],
      },
    }, data, target);
    chart.over.addEventListener("dblclick", () => load({ range: "24h", auto: true }));
  }

  // Sensor-health flags on this series now (flags.js), kept live; a stale one's "for 6 min" grows.
  const alertsNow = new Map();
  const drawFlags = () => {
    const list = flagsOf([...alertsNow.values()], sid);
    $("#flags").replaceChildren(...(list.length ? list.map((a) => flagEl(a, labels, "li"))
      : [el("li", { class: "muted" }, "No flag raised.")]));
  };
  on("snapshot", (snap) => { alertsNow.clear(); snap.alerts.forEach((a) => alertsNow.set(a.key, a)); drawFlags(); });
  on("alert", (a) => { alertsNow.set(a.key, a); drawFlags(); });
  on("alert_cleared", (a) => { alertsNow.delete(a.key); drawFlags(); });
  setInterval(drawFlags, 5000);

  document.querySelectorAll("[data-range]").forEach((btn) => btn.addEventListener("click", () => load({ range: btn.dataset.range })));
  $("#range-zone").textContent = TZ ? `(${TZ})` : "(the browser's time zone)";
  $("#custom").addEventListener("click", () => {
    const a = fromSiteInput($("#from").value), z = fromSiteInput($("#to").value);
    if (a && z && z > a) load({ start: a, end: z });
    else $("#range-note").textContent = "Choose a From time before the To time.";
  });
  on("event", (e) => {
    if (!chart || !following || e.series !== sid) return;
    const [xs, m, lo, hi] = chart.data;
    chart.setData([[...xs, e.ts], [...m, e.value], [...lo, e.value], [...hi, e.value]], false);
    chart.setScale("x", { min: current.fit ? chart.scales.x.min : chart.scales.x.min + (e.ts - xs[xs.length - 1] || 0), max: e.ts });
  });
  window.addEventListener("themechange", () => load(current));
  let width = target.clientWidth;
  window.addEventListener("resize", () => { if (Math.abs(target.clientWidth - width) > 30) { width = target.clientWidth; load(current); } });
  await load({ range: "24h", auto: true });
}
