/* Vigil dashboard: fills the server's page shells from /api/v1 and keeps them live over server-sent events.
   Device data is untrusted: it only ever reaches the page through textContent and attributes. */
"use strict";

const $ = (sel, root) => (root || document).querySelector(sel);
const csrf = () => { const m = $('meta[name="csrf-token"]'); return m ? m.content : ""; };
const isAdmin = () => document.body.dataset.admin === "yes";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

async function api(path, opts) {
  opts = opts || {};
  const headers = { "Accept": "application/json" };
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  if (opts.method && opts.method !== "GET") headers["X-CSRF-Token"] = csrf();
  const r = await fetch(path, { method: opts.method || "GET", headers, credentials: "same-origin",
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); throw new Error("not logged in"); }
  const data = (r.headers.get("content-type") || "").includes("json") ? await r.json() : {};
  if (!r.ok) {
    const e = new Error(data.error || ("HTTP " + r.status));
    e.problems = data.problems || [];
    throw e;
  }
  return data;
}

function fmtValue(v) {
  if (v === null || v === undefined) return "–";
  const a = Math.abs(v);
  return a >= 1000 ? v.toFixed(0) : a >= 100 ? v.toFixed(1) : v.toFixed(2).replace(/\.?0+$/, "") || "0";
}
function ago(ts) {
  if (!ts) return "never";
  const s = Math.max(0, Date.now() / 1000 - ts);
  if (s < 60) return Math.round(s) + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
}
const when = (ts) => ts ? new Date(ts * 1000).toLocaleString() : "–";
const sensorHref = (r) => "/sensor/" + [r.device, r.sensor, r.metric].map(encodeURIComponent).join("/");
const cssVar = (n) => getComputedStyle(document.documentElement).getPropertyValue(n).trim();

/* Theme: follows the system unless the person chose; the choice is remembered. */
function initTheme() {
  const saved = localStorage.getItem("vigil-theme");
  if (saved) document.documentElement.dataset.theme = saved;
  const b = $("#theme");
  if (b) b.addEventListener("click", () => {
    const dark = document.documentElement.dataset.theme
      ? document.documentElement.dataset.theme === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
    const next = dark ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    localStorage.setItem("vigil-theme", next);
    window.dispatchEvent(new Event("themechange"));
  });
  const lo = $("#logout");
  if (lo) lo.addEventListener("click", async () => {
    try { await api("/logout", { method: "POST" }); } catch (e) { /* going to the login page anyway */ }
    location.href = "/login";
  });
}

/* Live connection: one EventSource; a banner says plainly when it is lost. */
const live = { handlers: {}, source: null, brokerUp: true, streamUp: false, snapshot: null };
function on(type, fn) {
  (live.handlers[type] = live.handlers[type] || []).push(fn);
  // A page that registers after the stream began still starts from its snapshot.
  if (type === "snapshot" && live.snapshot) fn(live.snapshot);
}
function showConn() {
  const c = $("#conn");
  if (!c) return;
  let msg = "";
  if (!live.streamUp) msg = "Live connection lost: values are not updating. Reconnecting…";
  else if (!live.brokerUp) msg = "The dashboard has lost the MQTT broker: values are not updating.";
  c.textContent = msg;
  c.hidden = !msg;
  document.body.dataset.live = live.streamUp && live.brokerUp ? "up" : "down";
}
function connectLive() {
  const src = new EventSource("/api/v1/live");
  live.source = src;
  const dispatch = (type) => (ev) => {
    let data = {};
    try { data = JSON.parse(ev.data); } catch (e) { return; }
    (live.handlers[type] || []).forEach((fn) => fn(data));
  };
  ["event", "status", "alert", "alert_cleared", "silence", "silence_cleared"].forEach((t) => src.addEventListener(t, dispatch(t)));
  // Latest values come coalesced, once per tick: a list of the series changed since the last one.
  src.addEventListener("events", (ev) => {
    let list = [];
    try { list = JSON.parse(ev.data); } catch (e) { return; }
    list.forEach((e) => (live.handlers.event || []).forEach((fn) => fn(e)));
  });
  src.addEventListener("snapshot", (ev) => {
    live.streamUp = true;
    const data = JSON.parse(ev.data);
    live.snapshot = data;
    live.brokerUp = data.broker.connected;
    showConn();
    (live.handlers.snapshot || []).forEach((fn) => fn(data));
  });
  src.addEventListener("broker", (ev) => { live.brokerUp = JSON.parse(ev.data).connected; showConn(); });
  src.addEventListener("resync", () => { src.close(); setTimeout(connectLive, 500); });
  src.onerror = () => {
    live.streamUp = false;
    showConn();
    if (src.readyState === EventSource.CLOSED) setTimeout(connectLive, 2000);
  };
}

/* Charts (uPlot, installed by npm and served by the dashboard). */
function sparkline(target, points) {
  if (!window.uPlot) return null;
  const opts = { width: target.clientWidth || 180, height: 40, cursor: { show: false }, legend: { show: false },
    select: { show: false }, axes: [{ show: false }, { show: false }],
    scales: { x: { time: true } }, series: [{}, { stroke: cssVar("--accent"), width: 1.5, points: { show: false } }] };
  return new uPlot(opts, [points.map((p) => p[0]), points.map((p) => p[1])], target);
}

/* Overview. */
async function overview() {
  // Tiles first; the sparklines (one store query per series) follow when they come.
  const sparkReq = api("/api/v1/sparklines?hours=6&points=60").catch(() => ({}));
  const [rows, devices] = await Promise.all([api("/api/v1/latest"), api("/api/v1/devices")]);
  let sparks = {};
  const bySeries = new Map(rows.map((r) => [r.series, r]));
  const deviceInfo = new Map(devices.map((d) => [d.device, d]));
  const tiles = new Map();
  const charts = new Map();
  const alertsNow = {};
  let haveAlerts = false;
  const stateOf = (sid) => {
    if (!haveAlerts) return (bySeries.get(sid) || {}).state || "ok";
    const states = Object.values(alertsNow).filter((a) => a.series === sid).map((a) => a.state);
    return ["firing", "flapping", "pending"].find((x) => states.includes(x)) || "ok";
  };

  function render() {
    const groups = new Map();
    for (const d of deviceInfo.values()) {
      const g = (d.labels && (d.labels.site || d.labels.room)) || "Devices";
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push(d);
    }
    const root = $("#groups");
    root.replaceChildren();
    tiles.clear();
    charts.forEach((c) => c.destroy()); charts.clear();
    for (const [g, devs] of [...groups.entries()].sort()) {
      const sec = el("section", { class: "group" }, el("h2", {}, g));
      for (const d of devs.sort((a, b) => a.device.localeCompare(b.device))) {
        const state = d.state || "unknown";
        const card = el("article", { class: "device", "data-device": d.device },
          el("header", {}, el("strong", {}, d.device), el("span", { class: "badge " + state, "data-role": "status" }, state)));
        const grid = el("div", { class: "tiles" });
        for (const sid of d.sensors) {
          const r = bySeries.get(sid);
          if (!r) continue;
          const t = el("a", { class: "tile " + stateOf(sid), href: sensorHref(r), "data-series": sid },
            el("div", { class: "name" }, r.sensor + " · " + r.metric),
            el("div", {}, el("span", { class: "value" }, fmtValue(r.value)), el("span", { class: "unit" }, r.unit || "")),
            el("div", { class: "age", "data-ts": r.ts }, ago(r.ts)),
            el("div", { class: "spark" }));
          grid.append(t);
          tiles.set(sid, t);
        }
        card.append(grid);
        sec.append(card);
      }
      root.append(sec);
    }
    for (const [sid, t] of tiles) {
      const pts = sparks[sid] || [];
      if (pts.length > 1) charts.set(sid, sparkline($(".spark", t), pts));
    }
    const firing = [...bySeries.keys()].filter((sid) => stateOf(sid) === "firing").length;
    $("#summary").textContent = `${bySeries.size} sensors on ${deviceInfo.size} devices` + (firing ? `, ${firing} firing` : "");
  }
  render();
  sparkReq.then((got) => { sparks = got; render(); document.body.dataset.sparklines = "yes"; });
  window.addEventListener("themechange", render);

  const onEvent = (e) => {
    const known = bySeries.get(e.series);
    if (known && known.ts > e.ts) return;
    bySeries.set(e.series, { ...known, ...e, state: known ? known.state : "ok" });
    if (!deviceInfo.has(e.device)) deviceInfo.set(e.device, { device: e.device, state: "unknown", sensors: [], labels: e.labels || {} });
    const d = deviceInfo.get(e.device);
    if (!d.sensors.includes(e.series)) { d.sensors.push(e.series); render(); return; }
    const t = tiles.get(e.series);
    if (!t) return;
    $(".value", t).textContent = fmtValue(e.value);
    const age = $(".age", t); age.dataset.ts = e.ts; age.textContent = ago(e.ts);
    const c = charts.get(e.series);
    if (c) { const [xs, ys] = c.data; if (e.ts > xs[xs.length - 1]) c.setData([[...xs, e.ts], [...ys, e.value]]); }
  };
  on("event", onEvent);
  on("status", (s) => {
    const d = deviceInfo.get(s.device) || { device: s.device, sensors: [], labels: {} };
    d.state = s.state;
    if (!deviceInfo.has(s.device)) { deviceInfo.set(s.device, d); render(); return; }
    for (const card of document.querySelectorAll(".device")) {
      if (card.dataset.device === s.device) { const b = $('[data-role="status"]', card); b.textContent = s.state; b.className = "badge " + s.state; }
    }
  });
  const restate = (series) => { const t = tiles.get(series); if (t) t.className = "tile " + stateOf(series); };
  on("snapshot", (snap) => {
    haveAlerts = true;
    for (const k of Object.keys(alertsNow)) delete alertsNow[k];
    snap.alerts.forEach((a) => { alertsNow[a.key] = a; });
    tiles.forEach((_, sid) => restate(sid));
    snap.latest.forEach(onEvent);
  });
  on("alert", (a) => { alertsNow[a.key] = a; restate(a.series); });
  on("alert_cleared", (a) => { const old = alertsNow[a.key]; delete alertsNow[a.key]; if (old) restate(old.series); });
  setInterval(() => document.querySelectorAll(".age[data-ts]").forEach((n) => { n.textContent = ago(+n.dataset.ts); }), 5000);
}

/* Sensor detail. */
async function sensorPage() {
  const b = document.body.dataset;
  const q = `device=${encodeURIComponent(b.device)}&sensor=${encodeURIComponent(b.sensor)}&metric=${encodeURIComponent(b.metric)}`;
  let chart = null, following = true, current = { range: "24h" };
  const target = $("#chart");

  function markAlerts(u, alerts) {
    // Alert changes as vertical lines, drawn with uPlot's own hook and scales.
    const ctx = u.ctx;
    for (const a of alerts) {
      const x = u.valToPos(a.at, "x", true);
      if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
      ctx.save();
      ctx.strokeStyle = a.state === "firing" ? cssVar("--firing") : a.state === "pending" ? cssVar("--pending") : cssVar("--ok");
      ctx.setLineDash([4, 3]); ctx.lineWidth = 1.5 * devicePixelRatio;
      ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
      ctx.restore();
    }
  }

  async function load(params) {
    current = params;
    document.querySelectorAll("[data-range]").forEach((x) => x.setAttribute("aria-pressed", String(x.dataset.range === params.range)));
    const extra = params.range ? `&range=${params.range}` : `&start=${params.start}&end=${params.end}`;
    following = !!params.range;
    const h = await api(`/api/v1/history?${q}${extra}&points=${Math.min(2000, Math.max(200, target.clientWidth))}`);
    const xs = h.points.map((p) => p[0]);
    const mins = new Map(h.min.map((p) => [p[0], p[1]])), maxs = new Map(h.max.map((p) => [p[0], p[1]]));
    const data = [xs, h.points.map((p) => p[1]), xs.map((x) => mins.get(x) ?? null), xs.map((x) => maxs.get(x) ?? null)];
    const s = h.stats;
    $("#stats").replaceChildren(
      el("dt", {}, "min"), el("dd", {}, fmtValue(s.min)), el("dt", {}, "max"), el("dd", {}, fmtValue(s.max)),
      el("dt", {}, "mean"), el("dd", {}, fmtValue(s.mean)), el("dt", {}, "readings"), el("dd", {}, s.count),
      el("dt", {}, "resolution"), el("dd", {}, h.bucket + " s"));
    $("#series-alerts").replaceChildren(...(h.alerts.length ? h.alerts.map((a) =>
      el("li", {}, el("span", { class: "state-" + a.state }, a.state), " ", a.rule, " · ", when(a.at)))
      : [el("li", { class: "muted" }, "none in this range")]));
    if (chart) chart.destroy();
    if (!window.uPlot) { target.textContent = "The chart library is not installed."; return; }
    const accent = cssVar("--accent"), muted = cssVar("--muted"), grid = cssVar("--line");
    const axis = { stroke: muted, grid: { stroke: grid }, ticks: { stroke: grid } };
    chart = new uPlot({
      width: target.clientWidth - 12, height: 320,
      scales: { x: { time: true, min: h.start, max: h.end } },
      axes: [axis, { ...axis, size: 60 }],
      series: [{}, { label: "mean", stroke: accent, width: 2, points: { show: false } },
        { label: "min", stroke: muted, width: 1, dash: [3, 3], points: { show: false } },
        { label: "max", stroke: muted, width: 1, dash: [3, 3], points: { show: false } }],
      cursor: { drag: { x: true, y: false } },
      hooks: {
        draw: [(u) => markAlerts(u, h.alerts)],
        setSelect: [(u) => {
          if (u.select.width < 5) return;
          const a = u.posToVal(u.select.left, "x"), z = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({ width: 0, height: 0 }, false);
          load({ start: a.toFixed(3), end: z.toFixed(3) });
        }],
      },
    }, data, target);
    chart.over.addEventListener("dblclick", () => load({ range: "24h" }));
  }

  document.querySelectorAll("[data-range]").forEach((btn) => btn.addEventListener("click", () => load({ range: btn.dataset.range })));
  $("#custom").addEventListener("click", () => {
    const f = Date.parse($("#from").value), t = Date.parse($("#to").value);
    if (f && t && t > f) load({ start: f / 1000, end: t / 1000 });
  });
  on("event", (e) => {
    if (!chart || !following || e.device !== b.device || e.sensor !== b.sensor || e.metric !== b.metric) return;
    const [xs, m, lo, hi] = chart.data;
    chart.setData([[...xs, e.ts], [...m, e.value], [...lo, e.value], [...hi, e.value]], false);
    chart.setScale("x", { min: chart.scales.x.min + (e.ts - xs[xs.length - 1] || 0), max: e.ts });
  });
  window.addEventListener("themechange", () => load(current));
  await load({ range: "24h" });
}

/* Alerts. */
async function alertsPage() {
  let data = await api("/api/v1/alerts?limit=1000");
  const filters = $("#filters");

  function actions(a) {
    if (!isAdmin()) return "";
    const ack = a.acknowledged_by ? null : el("button", { type: "button", onclick: async (ev) => {
      ev.target.disabled = true;
      try { await api(`/api/v1/alerts/${encodeURIComponent(a.rule)}/${a.series.split("/").map(encodeURIComponent).join("/")}/ack`, { method: "POST", body: { comment: "" } }); }
      catch (e) { ev.target.disabled = false; alert(e.message); }
    } }, "Acknowledge");
    const sil = el("button", { type: "button", onclick: async (ev) => {
      const d = prompt("Silence this alert for how long? (e.g. 1h, 30m, 1d)", "1h");
      if (!d) return;
      try { await api("/api/v1/silences", { method: "POST", body: { matchers: { rule: a.rule, series: a.series }, duration: d, comment: "" } }); ev.target.textContent = "Silenced"; }
      catch (e) { alert(e.message); }
    } }, "Silence…");
    return el("span", {}, ack, " ", sil);
  }
  function table(rows, withActions) {
    if (!rows.length) return el("p", { class: "muted" }, "None.");
    return el("table", { class: "list" }, el("thead", {}, el("tr", {}, el("th", {}, "State"), el("th", {}, "Rule"), el("th", {}, "Series"),
      el("th", { class: "hide-phone" }, "Severity"), el("th", {}, "Since"), el("th", { class: "hide-phone" }, "Message"),
      el("th", {}, withActions ? "Acknowledged" : "At"), withActions ? el("th", {}, "") : null)),
      el("tbody", {}, rows.map((a) => el("tr", { "data-key": a.key },
        el("td", { class: "state-" + a.state, "data-label": "State" }, a.state), el("td", { "data-label": "Rule" }, a.rule),
        el("td", { "data-label": "Series" }, a.series),
        el("td", { class: "hide-phone" }, a.severity), el("td", { "data-label": "Since" }, when(a.since)),
        el("td", { class: "hide-phone" }, a.message),
        el("td", { class: "ack", "data-label": withActions ? "Acknowledged" : "At" }, withActions ? (a.acknowledged_by ? `acknowledged by ${a.acknowledged_by}` + (a.acknowledged_at ? " · " + when(a.acknowledged_at) : "") : "no") : when(a.at)),
        withActions ? el("td", {}, actions(a)) : null))));
  }
  function render() {
    const f = new FormData(filters);
    const text = (f.get("text") || "").toLowerCase();
    const keep = (a) => (!f.get("state") || a.state === f.get("state")) && (!f.get("severity") || a.severity === f.get("severity"))
      && (!text || (a.rule + " " + a.series).toLowerCase().includes(text));
    $("#current").replaceChildren(table(data.current, true));
    $("#history").replaceChildren(table(data.history.filter(keep), false));
  }
  filters.addEventListener("input", render);
  filters.addEventListener("submit", (e) => e.preventDefault());
  const refresh = async () => { data = await api("/api/v1/alerts?limit=1000"); render(); };
  on("alert", refresh); on("alert_cleared", refresh);
  render();
}

/* Rules. */
async function rulesPage() {
  const data = await api("/api/v1/rules");
  $("#rule-list").replaceChildren(data.rules.length ? el("table", { class: "list" }, el("thead", {}, el("tr", {}, el("th", {}, "Rule"), el("th", {}, "Pending"), el("th", {}, "Firing"))),
    el("tbody", {}, data.rules.map((r) => el("tr", {}, el("td", {}, r.name), el("td", {}, r.pending), el("td", { class: r.firing ? "state-firing" : "" }, r.firing)))))
    : el("p", { class: "muted" }, `No rules found in ${data.path}.`));
  const files = $("#rule-files");
  for (const f of data.files) {
    const area = el("textarea", { class: "yaml", spellcheck: "false", "aria-label": "Rules YAML of " + f.file });
    area.value = f.text;
    const out = el("ul", { class: "plain", role: "status" });
    const show = (r) => out.replaceChildren(...(r.ok ? [el("li", { class: "okmsg" }, `OK: ${r.rules.length} rules`)] : []),
      ...r.issues.map((i) => el("li", { class: "error" }, i)), ...r.warnings.map((w) => el("li", {}, "warning: " + w)));
    const check = el("button", { type: "button", onclick: async () => {
      try { show(await api("/api/v1/rules/validate", { method: "POST", body: { file: f.file, text: area.value } })); } catch (e) { show({ ok: false, issues: [e.message], warnings: [], rules: [] }); }
    } }, "Check");
    const save = isAdmin() ? el("button", { type: "button", onclick: async () => {
      try { const r = await api("/api/v1/rules/reload", { method: "POST", body: { file: f.file, text: area.value } }); show(r); out.prepend(el("li", { class: "okmsg" }, "Saved; the rule engine was asked to reload.")); }
      catch (e) { show({ ok: false, issues: e.problems.length ? e.problems.map((p) => p.error) : [e.message], warnings: [], rules: [] }); }
    } }, "Save and reload") : null;
    files.append(el("section", {}, el("h2", {}, f.file), area, el("p", {}, check, " ", save), out));
    if (f.ok !== null) show(f);
  }
}

/* Silences. */
async function silencesPage() {
  async function render() {
    const list = await api("/api/v1/silences");
    $("#silence-list").replaceChildren(list.length ? el("table", { class: "list" }, el("thead", {}, el("tr", {}, el("th", {}, "Matchers"), el("th", {}, "Until"),
      el("th", {}, "By"), el("th", { class: "hide-phone" }, "Comment"), el("th", {}, ""))),
      el("tbody", {}, list.map((s) => el("tr", {}, el("td", {}, Object.entries(s.matchers).map(([k, v]) => k + "=" + v).join(", ")),
        el("td", {}, when(s.until)), el("td", {}, s.by), el("td", { class: "hide-phone" }, s.comment),
        el("td", {}, isAdmin() ? el("button", { type: "button", onclick: async () => { await api("/api/v1/silences/" + encodeURIComponent(s.id), { method: "DELETE" }); } }, "Expire") : "")))))
      : el("p", { class: "muted" }, "No silences."));
  }
  const form = $("#new-silence");
  if (form) form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(form);
    const matchers = {};
    for (const line of String(f.get("matchers")).split("\n")) { const i = line.indexOf("="); if (i > 0) matchers[line.slice(0, i).trim()] = line.slice(i + 1).trim(); }
    try { await api("/api/v1/silences", { method: "POST", body: { matchers, duration: f.get("duration"), comment: f.get("comment") } }); $("#silence-result").textContent = "Silence created."; form.reset(); }
    catch (err) { $("#silence-result").textContent = err.message; }
  });
  on("silence", render); on("silence_cleared", render);
  const q = await api("/api/v1/mute-windows");
  const rows = [...q.mute_windows.map((m) => [m.name, `${(m.weekdays || []).join(", ")} ${m.start}–${m.end} ${m.time_zone}`,
    (m.allow_severity || []).length ? "except " + m.allow_severity.join(", ") : ""]),
    ...q.silences.map((s) => ["silence", JSON.stringify(s.match || {}), "until " + (s.until || "")])];
  $("#mute-list").replaceChildren(rows.length ? el("table", { class: "list" }, el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c))))))
    : el("p", { class: "muted" }, "None configured."));
  await render();
}

document.addEventListener("DOMContentLoaded", () => {
  initTheme();
  const page = document.body.dataset.page;
  if (page === "login") return;
  const pages = { overview, sensor: sensorPage, alerts: alertsPage, rules: rulesPage, silences: silencesPage };
  connectLive();
  (pages[page] || (async () => {}))().then(() => { document.body.dataset.ready = "yes"; })
    .catch((e) => { $("#main").append(el("p", { class: "error", role: "alert" }, "Could not load: " + e.message)); });
});
