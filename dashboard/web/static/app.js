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

/* One time format: the site's zone (data-tz, the dashboard.timezone setting) in the browser's locale, zone named. */
const TZ = document.body.dataset.tz || undefined;
const dateFmt = new Intl.DateTimeFormat(undefined, { timeZone: TZ, year: "numeric", month: "short", day: "numeric",
  hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short" });
const when = (ts) => ts ? dateFmt.format(new Date(ts * 1000)) : "–";
const shortFmt = new Intl.DateTimeFormat(undefined, { timeZone: TZ, hour: "2-digit", minute: "2-digit", timeZoneName: "short" });
const dayFmt = new Intl.DateTimeFormat(undefined, { timeZone: TZ, month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short" });
/* Within the next or last 20 hours the time of day is enough; further away the day too. */
const whenShort = (ts) => !ts ? "–" : (Math.abs(ts - Date.now() / 1000) < 72000 ? shortFmt : dayFmt).format(new Date(ts * 1000));
function timeEl(ts, short) {
  return ts ? el("time", { datetime: new Date(ts * 1000).toISOString(), title: short ? when(ts) : null }, short ? whenShort(ts) : when(ts)) : "–";
}

/* The From/To inputs hold wall-clock times of the site's zone, not the browser's: "2026-12-02T21:39" <-> epoch s. */
const wallFmt = new Intl.DateTimeFormat("en-US", { timeZone: TZ, hourCycle: "h23", year: "numeric", month: "2-digit",
  day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
function wallMs(ms) {  /* the site's wall clock at ms, read as if it were UTC */
  const p = Object.fromEntries(wallFmt.formatToParts(new Date(ms)).map((x) => [x.type, +x.value]));
  return Date.UTC(p.year, p.month - 1, p.day, p.hour % 24, p.minute, p.second);
}
function siteInput(ts) {
  return new Date(wallMs(Math.floor(ts / 60) * 60000)).toISOString().slice(0, 16);
}
function fromSiteInput(text) {
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d))?$/.exec(text || "");
  if (!m) return null;
  const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
  let t = wall - (wallMs(wall) - wall);       /* first guess with the offset at that instant */
  t = wall - (wallMs(t) - t);                  /* again with the offset at the guess (across a DST change) */
  return t / 1000;
}

/* Values at the sensor's precision: its `precision` label, else one decimal (whole numbers stay whole). */
function fmtValue(v, labels) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  const p = labels && /^[0-6]$/.test(labels.precision || "") ? +labels.precision : 1;
  if (Number.isInteger(v)) return String(v);
  const t = v.toFixed(p);
  return +t === 0 ? t.replace("-", "") : t;
}
const withUnit = (v, unit, labels) => fmtValue(v, labels) + (unit && v !== null && v !== undefined ? " " + unit : "");
function ago(ts) {
  if (!ts) return "never";
  const s = Math.max(0, Date.now() / 1000 - ts);
  if (s < 60) return Math.round(s) + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
}
function span(seconds) {
  const s = Math.round(seconds);
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " d";
}
const sensorHref = (r) => "/sensor/" + [r.device, r.sensor, r.metric].map(encodeURIComponent).join("/");
const cssVar = (n) => getComputedStyle(document.documentElement).getPropertyValue(n).trim();
/* A person's name for a series: labels `name` and `room` when the device sends them. */
function friendly(r) {
  const l = r.labels || {};
  return { name: l.name || (r.sensor + " · " + r.metric), where: [l.room, l.name ? r.sensor + " · " + r.metric : null].filter(Boolean).join(" · ") };
}
/* What a rule holds a series to, in words: "above -15 °C", "outside 2–8 °C", "avg 10 min above 5 °C". */
function limitText(lim, unit, labels) {
  const v = (x) => withUnit(x, unit, labels);
  let t = lim.above !== null && lim.below !== null ? `outside ${fmtValue(lim.below, labels)}–${v(lim.above)}`
    : lim.above !== null ? `above ${v(lim.above)}` : `below ${v(lim.below)}`;
  if (lim.kind === "aggregate") t = `${lim.fn} ${span(lim.window)} ${t}`;
  return t + (lim.for ? ` for ${span(lim.for)}` : "");
}

/* Icons beside the words (never instead of them: colour and shape are never the only signal). */
const ICONS = {
  ok: "M4 10.5l4 4 8-9",
  pending: "M10 3a7 7 0 1 0 0 14a7 7 0 1 0 0-14M10 6v4.5l3 2",
  firing: "M10 2.5L18 17H2zM10 8v4.5M10 14.5v.5",
  acknowledged: "M10 3a7 7 0 1 0 0 14a7 7 0 1 0 0-14M6.5 10.5l2.5 2.5 4.5-5",
  silenced: "M5 14h10l-1.5-2V9a3.5 3.5 0 0 0-7 0v3zM8.5 16.5h3M3 3l14 14",
  offline: "M10 3a7 7 0 1 0 0 14a7 7 0 1 0 0-14M5 5l10 10",
  stale: "M6 3h8M6 17h8M7 3c0 4 6 4 6 7s-6 3-6 7M13 3c0 4-6 4-6 7s6 3 6 7",
  unknown: "M10 3a7 7 0 1 0 0 14a7 7 0 1 0 0-14M8 8a2 2 0 1 1 2.5 2c-.5.3-.5.8-.5 1.5M10 14v.5",
};
function icon(kind) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 20 20"); svg.setAttribute("class", "icon"); svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[kind] || ICONS.unknown);
  svg.append(path);
  return svg;
}
const WORDS = { ok: "OK", pending: "Pending", firing: "FIRING", flapping: "FLAPPING", acknowledged: "Acknowledged",
  silenced: "Silenced", offline: "Offline", stale: "Stale", unknown: "Unknown", resolved: "Resolved",
  cleared: "Cleared, not acknowledged" };
const ICON_OF = { flapping: "firing", resolved: "ok", cleared: "pending" };
const condBadge = (cond) => el("span", { class: "cond cond-" + cond }, icon(ICON_OF[cond] || cond), WORDS[cond] || cond);

/* Silences as the engine applies them: every matcher a glob on the alert's labels, rule, series and severity. */
function globRe(g) {
  let re = "";
  for (let i = 0; i < g.length; i++) {
    const c = g[i];
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[" && g.indexOf("]", i + 2) > 0) { const j = g.indexOf("]", i + 2); re += "[" + g.slice(i + 1, j).replace(/^!/, "^").replace(/\\/g, "\\\\") + "]"; i = j; }
    else re += c.replace(/[.+^${}()|[\]\\\/]/g, "\\$&");
  }
  return new RegExp("^" + re + "$");
}
function alertLabels(a) {
  const [device, sensor, metric] = (a.series || "").split("/");
  return { device, sensor, metric, ...(a.labels || {}), rule: a.rule, series: a.series, severity: a.severity };
}
function silenceOf(a, silences) {
  const labels = alertLabels(a), now = Date.now() / 1000;
  return silences.find((s) => (!s.until || s.until > now) && Object.entries(s.matchers || {}).every(([k, g]) =>
    labels[k] !== undefined && globRe(String(g)).test(String(labels[k])))) || null;
}

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

/* Overview: a summary line, then each sensor's condition in words and an icon, value, limit and age. */
async function overview() {
  // Tiles first; the sparklines (one store query per series) follow when they come.
  const sparkReq = api("/api/v1/sparklines?hours=6&points=60").catch(() => ({}));
  const limitsReq = api("/api/v1/limits").catch(() => ({ series: {}, stale_after: 900 }));
  const [rows, devices] = await Promise.all([api("/api/v1/latest"), api("/api/v1/devices")]);
  let sparks = {}, limits = { series: {}, stale_after: 900 };
  const bySeries = new Map(rows.map((r) => [r.series, r]));
  const deviceInfo = new Map(devices.map((d) => [d.device, d]));
  const tiles = new Map();
  const charts = new Map();
  const alertsNow = {};
  let silences = [];
  let haveAlerts = false;

  function conditionOf(sid) {
    const r = bySeries.get(sid) || {};
    const d = deviceInfo.get(r.device);
    const mine = haveAlerts ? Object.values(alertsNow).filter((a) => a.series === sid)
      : (r.state && r.state !== "ok" ? [{ state: r.state, series: sid, rule: "" }] : []);
    const firing = mine.find((a) => a.state === "firing" || a.state === "flapping");
    if (firing) {
      const sil = silenceOf(firing, silences);
      if (sil) return { cond: "silenced", alert: firing, silence: sil };
      if (firing.acknowledged_by) return { cond: "acknowledged", alert: firing };
      return { cond: firing.state, alert: firing };
    }
    // A latched alarm whose condition cleared: still someone's to acknowledge.
    const cleared = mine.find((a) => a.state === "cleared" && !a.acknowledged_by);
    if (cleared) return { cond: "cleared", alert: cleared };
    const pending = mine.find((a) => a.state === "pending");
    if (pending) return { cond: "pending", alert: pending };
    if (d && d.state === "offline") return { cond: "offline" };
    const lim = limits.series[sid];
    const staleAfter = lim ? lim.stale_after : limits.stale_after;
    if (r.ts && Date.now() / 1000 - r.ts > staleAfter) return { cond: "stale", after: staleAfter };
    return { cond: "ok" };
  }

  function fillTile(t, sid) {
    const r = bySeries.get(sid), c = conditionOf(sid), f = friendly(r);
    const lims = ((limits.series[sid] || {}).limits || []).map((l) => limitText(l, r.unit, r.labels));
    let note = "";
    if (c.cond === "acknowledged") note = "by " + c.alert.acknowledged_by;
    else if (c.cond === "silenced") note = "until " + whenShort(c.silence.until);
    else if (c.cond === "stale") note = "no reading for " + span(Date.now() / 1000 - r.ts);
    else if (c.cond === "cleared" && c.alert.peak !== undefined) note = "worst " + withUnit(c.alert.peak, r.unit, r.labels);
    // Why a sensor-health rule flags it (flags.js): "stuck since 03:12 UTC".
    const flags = haveAlerts ? flagsOf(Object.values(alertsNow), sid) : [];
    const why = flags.map((a) => a.rule + ":" + flagText(a.reason, r.labels));
    // Rebuild a tile only when what it says changed; a new reading changes two texts (hundreds a second arrive).
    const key = [c.cond, note, lims.join(";"), f.name, f.where, r.unit, why.join(";")].join("\u0001");
    if (t._key === key) {
      const value = $(".value", t), text = fmtValue(r.value, r.labels), age = $(".age", t), when = ago(r.ts);
      if (value.textContent !== text) value.textContent = text;
      if (age.textContent !== when) age.textContent = when;
      if (age.dataset.ts !== String(r.ts)) age.dataset.ts = r.ts;
      return;
    }
    t._key = key;
    t.dataset.condition = c.cond;
    $(".tbody", t).replaceChildren(
      el("div", { class: "tline" }, condBadge(c.cond), note ? el("span", { class: "note" }, note) : null),
      ...flags.map((a) => flagEl(a, r.labels)),
      el("div", { class: "name" }, f.name), f.where ? el("div", { class: "where" }, f.where) : "",  // replaceChildren writes null as "null"
      el("div", { class: "reading" }, el("span", { class: "value" }, fmtValue(r.value, r.labels)), " ", el("span", { class: "unit" }, r.unit || "")),
      el("div", { class: "limit" }, lims.length ? "Limit: " + lims.join("; ") : "No limit set"),
      el("div", { class: "age", "data-ts": r.ts }, ago(r.ts)));
  }

  function summarize() {
    const by = {};
    for (const sid of bySeries.keys()) {
      const c = conditionOf(sid);
      const group = ["acknowledged", "silenced", "flapping"].includes(c.cond) ? "firing" : c.cond;
      const f = friendly(bySeries.get(sid)).name + (group !== c.cond ? ` (${WORDS[c.cond].toLowerCase()})` : "");
      (by[group] = by[group] || []).push(f);
    }
    const out = $("#summary");
    const bad = ["firing", "cleared", "pending", "offline", "stale"].filter((k) => by[k]);
    const text = !bad.length ? `All ${bySeries.size} sensors OK`
      : bad.map((k) => `${by[k].length} ${k === "firing" ? "firing" : k === "cleared" ? "cleared, not acknowledged" : WORDS[k].toLowerCase()}: ${by[k].slice(0, 6).join(", ")}${by[k].length > 6 ? ` and ${by[k].length - 6} more` : ""}`).join(" · ");
    const worst = bad[0] || "ok";
    if (out.textContent !== text) out.replaceChildren(icon(ICON_OF[worst] || worst), text);
    out.className = "summary cond-" + worst;
  }

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
      const cards = el("div", { class: "devices" });
      const sec = el("section", { class: "group", "aria-label": g }, el("h2", {}, g), cards);
      for (const d of devs.sort((a, b) => a.device.localeCompare(b.device))) {
        const state = d.state || "unknown";
        const card = el("article", { class: "device", "data-device": d.device, "aria-label": "Device " + d.device },
          el("header", {}, el("strong", {}, d.device), el("span", { class: "badge " + state, "data-role": "status" }, state)));
        const grid = el("div", { class: "tiles" });
        for (const sid of d.sensors) {
          if (!bySeries.has(sid)) continue;
          const t = el("a", { class: "tile", href: sensorHref(bySeries.get(sid)), "data-series": sid },
            el("div", { class: "tbody" }), el("div", { class: "spark", "aria-hidden": "true" }));
          fillTile(t, sid);
          grid.append(t);
          tiles.set(sid, t);
        }
        card.append(grid);
        // A card as wide as its tiles (up to four a row), so that one-sensor devices share a row.
        card.style.flexBasis = (Math.min(4, Math.max(1, grid.children.length)) * 212 + 26) + "px";
        cards.append(card);
      }
      root.append(sec);
    }
    for (const [sid, t] of tiles) {
      const pts = sparks[sid] || [];
      if (pts.length > 1) charts.set(sid, sparkline($(".spark", t), pts));
    }
    summarize();
  }
  render();
  limitsReq.then((got) => { limits = got; tiles.forEach((t, sid) => fillTile(t, sid)); summarize(); document.body.dataset.limits = "yes"; });
  sparkReq.then((got) => { sparks = got; render(); document.body.dataset.sparklines = "yes"; });
  window.addEventListener("themechange", render);

  const restate = (sid) => { const t = tiles.get(sid); if (t) fillTile(t, sid); };
  const restateAll = () => { tiles.forEach((t, sid) => fillTile(t, sid)); summarize(); };
  // Readings are applied once per animation frame: at hundreds a second, a tile is drawn once, not per reading.
  const dirty = new Set();
  let frame = 0, grown = false;
  function flush() {
    frame = 0;
    if (grown) { grown = false; dirty.clear(); render(); return; }
    let changed = false;
    for (const sid of dirty) {
      const t = tiles.get(sid);
      if (!t) continue;
      const before = t.dataset.condition;
      fillTile(t, sid);
      changed = changed || t.dataset.condition !== before;
      // A sparkline point is a 6-minute mean: add one when the next is due, not for every reading.
      const c = charts.get(sid), r = bySeries.get(sid);
      if (c) { const [xs, ys] = c.data; const step = xs.length > 1 ? xs[1] - xs[0] : 0;
        if (r.ts >= xs[xs.length - 1] + step) c.setData([[...xs, r.ts], [...ys, r.value]]); }
    }
    dirty.clear();
    if (changed) summarize();
  }
  const onEvent = (e) => {
    const known = bySeries.get(e.series);
    if (known && known.ts > e.ts) return;
    bySeries.set(e.series, { ...known, ...e, state: known ? known.state : "ok" });
    if (!deviceInfo.has(e.device)) deviceInfo.set(e.device, { device: e.device, state: "unknown", sensors: [], labels: e.labels || {} });
    const d = deviceInfo.get(e.device);
    if (!d.sensors.includes(e.series)) { d.sensors.push(e.series); grown = true; }
    dirty.add(e.series);
    if (!frame) frame = requestAnimationFrame(flush);
  };
  on("event", onEvent);
  on("status", (s) => {
    const d = deviceInfo.get(s.device) || { device: s.device, sensors: [], labels: {} };
    d.state = s.state;
    if (!deviceInfo.has(s.device)) { deviceInfo.set(s.device, d); render(); return; }
    for (const card of document.querySelectorAll(".device")) {
      if (card.dataset.device === s.device) { const b = $('[data-role="status"]', card); b.textContent = s.state; b.className = "badge " + s.state; }
    }
    d.sensors.forEach(restate); summarize();
  });
  on("snapshot", (snap) => {
    haveAlerts = true;
    for (const k of Object.keys(alertsNow)) delete alertsNow[k];
    snap.alerts.forEach((a) => { alertsNow[a.key] = a; });
    silences = snap.silences || [];
    snap.latest.forEach(onEvent);
    restateAll();
  });
  on("alert", (a) => { alertsNow[a.key] = a; restate(a.series); summarize(); });
  on("alert_cleared", (a) => { const old = alertsNow[a.key]; delete alertsNow[a.key]; if (old) { restate(old.series); summarize(); } });
  on("silence", (x) => { silences = [...silences.filter((y) => y.id !== x.id), x]; restateAll(); });
  on("silence_cleared", (x) => { silences = silences.filter((y) => y.id !== x.id); restateAll(); });
  // Ages tick, a silence runs out, a quiet sensor turns stale: look again every few seconds.
  setInterval(restateAll, 5000);
}

/* Silences. */
async function silencesPage() {
  async function render() {
    const list = await api("/api/v1/silences");
    $("#silence-list").replaceChildren(list.length ? el("table", { class: "list" }, el("thead", {}, el("tr", {}, el("th", {}, "Matchers"), el("th", {}, "Until"),
      el("th", {}, "By"), el("th", { class: "hide-phone" }, "Comment"), el("th", {}, ""))),
      el("tbody", {}, list.map((s) => el("tr", {}, el("td", {}, Object.entries(s.matchers).map(([k, v]) => k + "=" + v).join(", ")),
        el("td", {}, timeEl(s.until)), el("td", {}, s.by), el("td", { class: "hide-phone" }, s.comment),
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
  // sensor.js, alerts.js, rules.js and reports.js are loaded only on their own pages.
  const pages = { overview, silences: silencesPage,
    sensor: typeof sensorPage === "function" ? sensorPage : null, alerts: typeof alertsPage === "function" ? alertsPage : null,
    rules: typeof rulesPage === "function" ? rulesPage : null,
    reports: typeof reportsPage === "function" ? reportsPage : null };
  connectLive();
  (pages[page] || (async () => {}))().then(() => { document.body.dataset.ready = "yes"; })
    .catch((e) => { $("#main").append(el("p", { class: "error", role: "alert" }, "Could not load: " + e.message)); });
});
