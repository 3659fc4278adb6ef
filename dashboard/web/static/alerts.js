/* Vigil dashboard: the alerts page. Who is on call; the value now beside the value at firing (and the worst of a
   latched alarm that cleared); who acknowledged and who silenced, from the engine's retained state (so both survive
   reloads and restarts); the corrective-action notes; dialogs to acknowledge, add a note and silence.
   Uses app.js's helpers. */
"use strict";

const alertPath = (a) => `${encodeURIComponent(a.rule)}/${a.series.split("/").map(encodeURIComponent).join("/")}`;

/* One <dialog> with a form: resolves when the person submits and `act` succeeds, or cancels. */
function runDialog(dialog, what, act, update) {
  const form = $("form", dialog), err = $('[data-role="error"]', dialog);
  $('[data-role="what"]', dialog).textContent = what;
  form.reset();
  err.textContent = "";
  if (update) { form.oninput = update; update(); }
  form.onsubmit = async (ev) => {
    if (!ev.submitter || ev.submitter.value !== "ok") return;  // Cancel closes the dialog
    ev.preventDefault();
    try { await act(new FormData(form)); dialog.close("done"); }
    catch (e) { err.textContent = "Not done: " + e.message; }
  };
  dialog.showModal();
}

function silenceMatchers(a, scope) {
  return scope === "device" ? { device: a.series.split("/")[0] } : { rule: a.rule, series: a.series };
}
function durationOf(f) {
  return f.get("duration") === "custom" ? String(f.get("custom") || "").trim() : f.get("duration");
}

/* Who is on call now and next, per schedule (GET /api/v1/oncall); hand-overs in the site's zone. */
async function onCallPanel() {
  const data = await api("/api/v1/oncall").catch((e) => ({ schedules: null, error: e.message }));
  const root = $("#oncall");
  if (!data.schedules) { root.replaceChildren(el("li", { class: "error" }, "Not known: " + data.error)); return; }
  if (!data.schedules.length) { root.replaceChildren(el("li", { class: "muted" }, "No on-call schedules in the rules.")); return; }
  root.replaceChildren(...data.schedules.map((o) => el("li", { "data-schedule": o.schedule },
    el("div", { class: "muted small" }, o.schedule),
    el("div", { class: "person" }, o.person || "nobody"),
    o.until ? el("div", { class: "small" }, "until ", timeEl(o.until, true)) : null,
    o.next_person ? el("div", { class: "small muted" }, "next: ", el("strong", {}, o.next_person),
      o.next_from ? [" from ", timeEl(o.next_from, true)] : "") : null)));
}

async function alertsPage() {
  onCallPanel();
  setInterval(onCallPanel, 60000);  // a hand-over happens while the page is open
  let data = await api("/api/v1/alerts?limit=1000");
  let latest = new Map((await api("/api/v1/latest").catch(() => [])).map((r) => [r.series, r]));
  let silences = await api("/api/v1/silences").catch(() => []);
  const filters = $("#filters");
  $("#zone").textContent = "Times in " + (TZ || "the browser's time zone") + ".";

  function ackAction(a) {
    return el("button", { type: "button", "data-action": "ack", onclick: () => runDialog($("#ack-dialog"), `${a.rule} on ${a.series}`,
      (f) => api(`/api/v1/alerts/${alertPath(a)}/ack`, { method: "POST", body: { comment: String(f.get("comment") || "") } })) },
    "Acknowledge…");
  }
  function silenceAction(a) {
    const dialog = $("#silence-dialog");
    const update = () => {
      const f = new FormData($("form", dialog));
      $('[data-role="matchers"]', dialog).replaceChildren(...Object.entries(silenceMatchers(a, f.get("scope")))
        .map(([k, v]) => el("li", {}, el("code", {}, `${k} = ${v}`))));
      const d = durationOf(f), m = /^(\d+)(m|h|d)$/.exec(d || "");
      $('[data-role="until"]', dialog).textContent = m ? "until " + when(Date.now() / 1000 + +m[1] * { m: 60, h: 3600, d: 86400 }[m[2]]) : "";
    };
    return el("button", { type: "button", "data-action": "silence", onclick: () => runDialog(dialog, `${a.rule} on ${a.series}`, (f) => {
      const duration = durationOf(f);
      if (!duration) throw new Error("choose how long, or write a duration such as 2h30m");
      return api("/api/v1/silences", { method: "POST", body: { matchers: silenceMatchers(a, f.get("scope")), duration, comment: String(f.get("comment") || "") } });
    }, update) }, "Silence…");
  }

  function noteAction(a) {
    return el("button", { type: "button", "data-action": "note", onclick: () => runDialog($("#note-dialog"), `${a.rule} on ${a.series}`,
      (f) => api(`/api/v1/alerts/${alertPath(a)}/notes`, { method: "POST", body: { text: String(f.get("text") || "") } })) },
    "Add note…");
  }
  function notesList(a) {
    if (!(a.notes || []).length) return null;
    return el("ul", { class: "notes", "aria-label": "Notes" }, a.notes.map((n) => el("li", {},
      el("strong", {}, n.by || "?"), n.at ? [" ", timeEl(n.at, true)] : "", ": ", n.text)));
  }
  /* The worst value of the excursion; for a latched alarm that cleared, how long it lasted and when it ended. */
  function excursion(a, r) {
    const worst = a.peak !== undefined ? el("div", { class: "nowrap" }, "worst ", el("strong", {}, withUnit(a.peak, r.unit, r.labels))) : null;
    if (a.state !== "cleared") return worst && el("div", { class: "muted" }, worst);
    return el("div", { class: "excursion" }, worst, a.duration !== undefined ? el("div", { class: "nowrap" }, `lasted ${span(a.duration)}`) : null,
      a.ended ? el("div", { class: "nowrap muted" }, "cleared ", timeEl(a.ended, true)) : null);
  }

  function handled(a) {
    const out = [];
    if (a.acknowledged_by) {
      out.push(el("div", { class: "ack" }, condBadge("acknowledged"), ` by ${a.acknowledged_by}`,
        a.acknowledged_at ? [", ", timeEl(a.acknowledged_at, true)] : "", a.ack_comment ? el("div", { class: "comment" }, `“${a.ack_comment}”`) : null));
    }
    const s = silenceOf(a, silences);
    if (s) out.push(el("div", { class: "silenced" }, condBadge("silenced"), " until ", timeEl(s.until, true), s.by ? ` by ${s.by}` : "",
      s.comment ? el("div", { class: "comment" }, `“${s.comment}”`) : null));
    return out.length ? out : el("span", { class: "muted" }, "not yet");
  }
  function valueCell(a) {
    const r = latest.get(a.series) || {};
    return [el("div", { class: "nowrap" }, "now ", el("strong", { class: "now" }, withUnit(r.value, r.unit, r.labels))),
      valueIsReading(a) && a.state !== "cleared" ? el("div", { class: "muted nowrap" }, "at firing ", withUnit(a.value, r.unit, r.labels)) : null,
      excursion(a, r)];
  }
  function sensorCell(a) {
    const r = latest.get(a.series);
    const name = r ? friendly(r).name : a.series;
    return r ? [el("a", { href: sensorHref(r) }, name), el("div", { class: "muted small" }, a.series)] : a.series;
  }
  function condOf(a) {
    if (a.state === "cleared") return a.acknowledged_by ? "acknowledged" : "cleared";
    if (a.state !== "firing" && a.state !== "flapping") return a.state;
    return silenceOf(a, silences) ? "silenced" : a.acknowledged_by ? "acknowledged" : a.state;
  }

  function currentTable(rows) {
    if (!rows.length) return el("p", { class: "muted" }, "None: every rule is satisfied.");
    return el("table", { class: "list" }, el("thead", {}, el("tr", {}, ["State", "Sensor", "Rule", "Severity", "Value", "Since", "Message",
      "Acknowledged / silenced", isAdmin() ? "Actions" : null].filter(Boolean).map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.map((a) => el("tr", { "data-key": a.key },
      el("td", { "data-label": "State" }, condBadge(condOf(a))), el("td", { "data-label": "Sensor" }, sensorCell(a)),
      el("td", { "data-label": "Rule" }, a.rule), el("td", { "data-label": "Severity", class: "sev-" + a.severity }, a.severity),
      el("td", { "data-label": "Value" }, valueCell(a)), el("td", { "data-label": "Since" }, timeEl(a.since, true)),
      el("td", { "data-label": "Message", class: "message" }, a.reason ? flagEl(a, (latest.get(a.series) || {}).labels) : null, a.message),
      el("td", { "data-label": "Handled", class: "handled" }, handled(a), notesList(a)),
      isAdmin() ? el("td", { class: "actions" }, a.acknowledged_by || a.state === "pending" ? null : ackAction(a), noteAction(a),
        silenceOf(a, silences) ? null : silenceAction(a)) : null))));
  }
  function historyTable(rows) {
    if (!rows.length) return el("p", { class: "muted" }, "None.");
    return el("table", { class: "list" }, el("thead", {}, el("tr", {}, ["State", "Rule", "Series", "Severity", "Value", "At", "Message"]
      .map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.map((a) => { const r = latest.get(a.series) || {};
      return el("tr", {}, el("td", { "data-label": "State" }, condBadge(a.state)), el("td", { "data-label": "Rule" }, a.rule),
        el("td", { "data-label": "Series" }, a.series), el("td", { "data-label": "Severity", class: "sev-" + a.severity }, a.severity),
        el("td", { "data-label": "Value" }, valueIsReading(a) ? withUnit(a.value, r.unit, r.labels) : "–"),
        el("td", { "data-label": "At" }, timeEl(a.at)),
        el("td", { "data-label": "Message", class: "message" }, a.message)); })));
  }
  function render() {
    const f = new FormData(filters);
    const text = (f.get("text") || "").toLowerCase();
    const keep = (a) => (!f.get("state") || a.state === f.get("state")) && (!f.get("severity") || a.severity === f.get("severity"))
      && (!text || (a.rule + " " + a.series).toLowerCase().includes(text));
    // Keep focus where it was when the rows are drawn again (a keyboard user must not be thrown to the top).
    const focused = document.activeElement && document.activeElement.closest("tr[data-key]");
    const key = focused && focused.dataset.key, action = key && document.activeElement.dataset.action;
    $("#current").replaceChildren(currentTable(data.current));
    $("#history").replaceChildren(historyTable(data.history.filter(keep)));
    if (key) { const again = $(`tr[data-key="${CSS.escape(key)}"] [data-action="${action}"]`) || $(`tr[data-key="${CSS.escape(key)}"] button`); if (again) again.focus(); }
  }
  filters.addEventListener("input", render);
  filters.addEventListener("submit", (e) => e.preventDefault());
  let pending = null;
  const refresh = () => {
    clearTimeout(pending);
    pending = setTimeout(async () => {
      [data, silences] = await Promise.all([api("/api/v1/alerts?limit=1000"), api("/api/v1/silences").catch(() => silences)]);
      render();
    }, 100);
  };
  on("alert", refresh); on("alert_cleared", refresh); on("silence", refresh); on("silence_cleared", refresh);
  on("event", (e) => {
    const known = latest.get(e.series);
    if (known && known.ts > e.ts) return;
    latest.set(e.series, { ...known, ...e });
    for (const tr of document.querySelectorAll("#current tr[data-key]")) {
      const a = data.current.find((x) => x.key === tr.dataset.key);
      if (a && a.series === e.series) { const n = $(".now", tr); if (n) n.textContent = withUnit(e.value, e.unit, e.labels); }
    }
  });
  render();
  setInterval(() => { if (data.current.some((a) => a.reason)) render(); }, 30000);  // "no reading for 6 min" grows
}
