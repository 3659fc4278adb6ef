/* Vigil dashboard, Rules page: a form for the common rules, the YAML with line numbers and checks as you type,
   and a preview of an edited rule over the stored history before anything is saved.
   Loaded after app.js (its helpers: $, el, api, isAdmin, fmtValue, cssVar, when). The server edits the YAML:
   only the changed values' bytes move, so comments, order and formatting stay as written. */
"use strict";

(() => {
  const FIELDS = {
    threshold: [["above", "Fire above"], ["clear_below", "Clear only below (hysteresis)"],
      ["below", "Fire below"], ["clear_above", "Clear only above (hysteresis)"]],
    nodata: [["nodata", "Fire after no reading for", "e.g. 10m"]],
    rate: [["rate.window", "Rate of change over", "e.g. 5m"], ["rate.above", "Rises faster than (units/min)"],
      ["rate.below", "Falls faster than (units/min, negative)"]],
    offline: [],
    other: [],
  };
  const KIND_NAMES = { threshold: "Threshold", nodata: "No data", rate: "Rate of change", offline: "Device offline",
    other: "Other (edit in the YAML)" };
  const RANGE_NAMES = { "24h": "24 h", "7d": "7 days" };
  const duration = (s) => s < 90 ? Math.round(s) + " s" : s < 5400 ? Math.round(s / 60) + " min"
    : s < 172800 ? (s / 3600).toFixed(1) + " h" : (s / 86400).toFixed(1) + " d";

  function fieldInput(pre, name, label, value, hint) {
    const id = pre + "-" + name.replace(".", "-");
    const input = el("input", { id, name, type: "text", inputmode: hint ? null : "decimal", autocomplete: "off",
      placeholder: hint || "", size: 10 });
    input.value = value ?? "";
    return el("label", { for: id }, label, input);
  }

  function fileEditor(f, index) {
    const pre = "r" + index;
    let forms = f.forms || [], saved = f.text, previewed = null, chart = null;
    const area = el("textarea", { class: "yaml", spellcheck: "false", wrap: "off", "aria-label": "Rules YAML of " + f.file });
    area.value = f.text;
    const gutter = el("pre", { class: "gutter", "aria-hidden": "true" });
    const issues = el("ul", { class: "plain issues", "aria-live": "polite" });
    const saveState = el("p", { class: "savestate", role: "status", "aria-live": "polite" });
    const ruleSelect = el("select", { id: pre + "-rule" });
    const kind = el("span", { class: "kind" });
    const fields = el("div", { class: "fields" });
    const formMsg = el("p", { class: "formmsg", role: "status" });
    const summary = el("p", { class: "summary", role: "status", "aria-live": "polite" });
    const seriesSelect = el("select", { "aria-label": "Series to draw", hidden: true });
    const chartBox = el("div", { class: "chart preview-chart", "aria-label": "Preview chart", hidden: true });
    const periods = el("ul", { class: "plain periods" });
    let range = "24h";

    function lines(bad) {
      const n = area.value.split("\n").length;
      const out = [];
      for (let i = 1; i <= n; i++) out.push(bad.has(i) ? el("span", { class: "bad" }, "▶" + i + "\n") : i + "\n");
      gutter.replaceChildren(...out);
      gutter.scrollTop = area.scrollTop;
    }
    function goTo(line) {
      const starts = area.value.split("\n").slice(0, line - 1).reduce((a, l) => a + l.length + 1, 0);
      const end = area.value.indexOf("\n", starts);
      area.focus();
      area.setSelectionRange(starts, end < 0 ? area.value.length : end);
      area.scrollTop = Math.max(0, (line - 4) * parseFloat(getComputedStyle(area).lineHeight));
    }
    function show(r) {
      const bad = new Set((r.issue_lines || []).filter((x) => x));
      const item = (text, line, cls) => el("li", { class: cls }, text, line ? " " : null,
        line ? el("button", { type: "button", class: "link", onclick: () => goTo(line) }, "go to line " + line) : null);
      issues.replaceChildren(...(r.ok ? [el("li", { class: "okmsg" }, `OK: ${r.rules.length} rules`)] : []),
        ...r.issues.map((i, k) => item(i, (r.issue_lines || [])[k], "error")),
        ...r.warnings.map((w, k) => item("warning: " + w, (r.warning_lines || [])[k], "")));
      lines(bad);
      if (r.forms) { forms = r.forms; fillRules(); }
    }
    function dirty() {
      const changed = area.value !== saved;
      saveState.replaceChildren(changed ? el("span", { class: "muted" }, "Unsaved changes.") : "");
    }
    async function check() {
      try { show(await api("/api/v1/rules/validate", { method: "POST", body: { file: f.file, text: area.value } })); }
      catch (e) { show({ ok: false, issues: [e.message], warnings: [], rules: [] }); }
    }
    let timer = null;
    area.addEventListener("input", () => { lines(new Set()); dirty(); clearTimeout(timer); timer = setTimeout(check, 700); });
    area.addEventListener("scroll", () => { gutter.scrollTop = area.scrollTop; });

    async function save() {
      clearTimeout(timer);
      try {
        const r = await api("/api/v1/rules/reload", { method: "POST", body: { file: f.file, text: area.value } });
        show(r);
        saved = area.value;
        issues.prepend(el("li", { class: "okmsg" }, "Saved; the rule engine was asked to reload."));
        saveState.replaceChildren(el("span", { class: "okmsg" }, "Saved."));
      } catch (e) {
        const reasons = e.problems.length ? e.problems.map((p) => p.error) : [e.message];
        show({ ok: false, issues: reasons, warnings: [], rules: [], issue_lines: reasons.map(lineOf) });
        saveState.replaceChildren(el("strong", { class: "error" }, "Not saved: "),
          (reasons.length === 1 ? reasons[0] : `${reasons.length} problems in the rules, listed below`)
            + ". The file on disk is unchanged.");
      }
    }
    const lineOf = (msg) => { const m = /^[^:\n]*:(\d+):/.exec(msg); return m ? +m[1] : null; };

    /* The form. */
    function current() { return forms.find((r) => r.name === ruleSelect.value) || forms[0]; }
    function fillRules() {
      const keep = ruleSelect.value;
      ruleSelect.replaceChildren(...forms.map((r) => el("option", { value: r.name }, r.name)));
      if (forms.some((r) => r.name === keep)) ruleSelect.value = keep;
      fillFields();
    }
    function fillFields() {
      const r = current();
      if (!r) {
        kind.textContent = "";
        fields.replaceChildren(el("p", { class: "muted" }, "No rules in this file yet: write one in the YAML below."));
        return;
      }
      kind.textContent = KIND_NAMES[r.kind] + (r.match && Object.keys(r.match).length
        ? " · matches " + Object.entries(r.match).map(([k, v]) => k + "=" + v).join(", ") : "");
      const v = r.fields;
      const offline = el("input", { type: "checkbox", id: pre + "-offline", name: "offline" });
      offline.checked = v.offline === "true";
      const severity = el("select", { id: pre + "-severity", name: "severity" },
        ["info", "warning", "critical"].map((s) => el("option", { value: s }, s)));
      severity.value = v.severity || "warning";
      fields.replaceChildren(
        ...FIELDS[r.kind].map(([name, label, hint]) => fieldInput(pre, name, label, v[name], hint)),
        fieldInput(pre, "for", "For (must hold this long before firing)", v.for, "e.g. 5m"),
        el("label", { for: pre + "-severity" }, "Severity", severity),
        ...(r.kind === "offline" ? [el("label", { for: pre + "-offline", class: "check" }, offline, "Fire when the device is offline")] : []));
    }
    function changedFields() {
      const r = current(), out = {};
      for (const input of fields.querySelectorAll("input, select")) {
        const was = r.fields[input.name] ?? "";
        const now = input.type === "checkbox" ? String(input.checked) : input.value.trim();
        if (now !== was && !(input.type === "checkbox" && was === "" && now === "false")) out[input.name] = now || null;
      }
      return out;
    }
    async function apply() {
      const r = current();
      if (!r) return;
      const change = changedFields();
      if (!Object.keys(change).length) { formMsg.textContent = "Nothing changed."; return; }
      try {
        const res = await api("/api/v1/rules/edit", { method: "POST", body: { file: f.file, text: area.value, rule: r.name, fields: change } });
        area.value = res.text;
        show(res);
        dirty();
        const what = Object.entries(change).map(([k, x]) => x === null ? `removed ${k}` : `${k} ${x}`).join(", ");
        formMsg.replaceChildren(`Changed ${r.name}: ${what}. In the YAML below, not saved yet.`);
      } catch (e) {
        formMsg.replaceChildren(el("strong", { class: "error" }, "Not changed: "), e.message.replace(/^not changed: /, ""));
      }
    }
    ruleSelect.addEventListener("change", fillFields);

    /* The preview. */
    async function preview() {
      const r = current();
      if (!r) return;
      summary.textContent = `Replaying ${r.name} over the last ${RANGE_NAMES[range]}…`;
      try {
        previewed = await api("/api/v1/rules/preview", { method: "POST", body: { file: f.file, text: area.value, rule: r.name, range } });
      } catch (e) {
        const why = e.problems.length ? e.problems.map((p) => p.error).join("; ") : "";
        summary.replaceChildren(el("strong", { class: "error" }, "No preview: "), e.message + (why ? ": " + why : ""));
        return;
      }
      const p = previewed;
      const fired = p.series.reduce((a, s) => a + s.periods.filter((x) => x.state === "firing").length, 0);
      summary.replaceChildren(el("strong", {}, `Over the last ${RANGE_NAMES[range]}, ${p.rule} would have fired ${fired} time${fired === 1 ? "" : "s"} `
        + `and sent ${p.notifications} notification${p.notifications === 1 ? "" : "s"}`),
        ` (${p.firing} firing, ${p.notifications - p.firing} resolved). Nothing was sent. ${p.points} stored readings of ${p.series_read} series replayed in ${p.seconds.toFixed(2)} s.`,
        r.kind === "offline" ? " Device status is not stored, so an offline rule cannot be previewed." : "");
      seriesSelect.replaceChildren(...p.series.map((s) => el("option", { value: s.series },
        `${s.series} · ${s.notifications} notification${s.notifications === 1 ? "" : "s"}`)));
      seriesSelect.hidden = p.series.length < 2;
      if (p.series.length) await draw(p.series[0].series);
      else { chartBox.hidden = true; periods.replaceChildren(); }
    }
    seriesSelect.addEventListener("change", () => draw(seriesSelect.value));

    async function draw(sid) {
      const p = previewed, s = p.series.find((x) => x.series === sid);
      const [device, sensor, metric] = sid.split("/");
      chartBox.hidden = false;
      periods.replaceChildren(...(s.periods.length ? s.periods.map((x) => el("li", {},
        el("span", { class: "state-" + x.state }, x.state === "firing" ? "FIRING" : x.state), " from ", when(x.start),
        x.open ? " and still at the end" : ` to ${when(x.end)} (${duration(x.end - x.start)})`))
        : [el("li", { class: "muted" }, "Never pending or firing on this series.")]));
      const q = `device=${encodeURIComponent(device)}&sensor=${encodeURIComponent(sensor)}&metric=${encodeURIComponent(metric)}`;
      const h = await api(`/api/v1/history?${q}&start=${p.start}&end=${p.end}&points=${Math.min(2000, Math.max(200, chartBox.clientWidth))}`);
      if (chart) chart.destroy();
      chartBox.replaceChildren();
      if (!window.uPlot) { chartBox.textContent = "The chart library is not installed."; return; }
      const v = current() ? current().fields : {};
      const levels = [["above", false], ["below", false], ["clear_below", true], ["clear_above", true]]
        .filter(([k]) => v[k] !== null && v[k] !== undefined && isFinite(+v[k])).map(([k, dashed]) => [+v[k], dashed, k]);
      const muted = cssVar("--muted"), grid = cssVar("--line");
      const axis = { stroke: muted, grid: { stroke: grid }, ticks: { stroke: grid } };
      const ys = h.points.map((x) => x[1]).concat(levels.map((l) => l[0]));
      chart = new uPlot({
        width: chartBox.clientWidth - 12, height: 280,
        scales: { x: { time: true, min: p.start, max: p.end }, y: { range: [Math.min(...ys) - 1, Math.max(...ys) + 1] } },
        axes: [axis, { ...axis, size: 60 }],
        series: [{}, { label: sid, stroke: cssVar("--accent"), width: 2, points: { show: false } }],
        // Drawn over the grid: a grid line (midnight) across a narrow band hid half of it.
        hooks: { draw: [(u) => shade(u, s.periods), (u) => thresholds(u, levels)] },
      }, [h.points.map((x) => x[0]), h.points.map((x) => x[1])], chartBox);
      chartBox.dataset.firing = String(s.periods.filter((x) => x.state === "firing").length);
    }
    function shade(u, list) {
      const c = u.ctx, top = u.bbox.top, hgt = u.bbox.height;
      for (const x of list) {
        const a = Math.max(u.bbox.left, u.valToPos(x.start, "x", true));
        const z = Math.min(u.bbox.left + u.bbox.width, u.valToPos(x.end, "x", true));
        if (z <= a) continue;
        c.save();
        c.fillStyle = cssVar(x.state === "pending" ? "--pending" : "--firing");
        c.globalAlpha = x.state === "pending" ? 0.18 : 0.28;
        c.fillRect(a, top, Math.max(z - a, 2 * devicePixelRatio), hgt);
        c.restore();
      }
    }
    function thresholds(u, levels) {
      const c = u.ctx;
      for (const [y, dashed] of levels) {
        const py = u.valToPos(y, "y", true);
        c.save();
        c.strokeStyle = cssVar("--firing"); c.lineWidth = devicePixelRatio;
        c.setLineDash(dashed ? [6, 4] : []);
        c.beginPath(); c.moveTo(u.bbox.left, py); c.lineTo(u.bbox.left + u.bbox.width, py); c.stroke();
        c.restore();
      }
    }

    const rangeButtons = Object.keys(RANGE_NAMES).map((k) => el("button", { type: "button", "aria-pressed": String(k === range),
      onclick: (ev) => { range = k; rangeButtons.forEach((b) => b.setAttribute("aria-pressed", String(b === ev.target))); } },
    "Last " + RANGE_NAMES[k]));
    const admin = isAdmin();
    const section = el("section", { class: "rulefile", "data-file": f.file }, el("h2", {}, f.file),
      el("form", { class: "ruleform", onsubmit: (e) => { e.preventDefault(); apply(); } },
        el("fieldset", {}, el("legend", {}, "Edit a rule"),
          el("div", { class: "rulehead" }, el("label", { for: pre + "-rule" }, "Rule", ruleSelect), kind),
          fields,
          el("p", {}, el("button", { type: "submit" }, "Apply to YAML")), formMsg)),
      admin ? el("div", { class: "preview" }, el("h3", {}, "Preview before saving"),
        el("p", { class: "muted" }, "Replays the edited rule with the rule engine over the stored history; nothing is sent or saved."),
        el("div", { class: "ranges" }, el("span", { role: "group", "aria-label": "Preview range", class: "ranges" }, rangeButtons),
          el("button", { type: "button", class: "primary", onclick: preview }, "Preview")),
        summary, seriesSelect, chartBox,
        el("p", { class: "legend muted" }, el("span", { class: "swatch pending" }), " pending ",
          el("span", { class: "swatch firing" }), " firing; solid line: fire level, dashed: clear level"), periods) : null,
      el("h3", {}, "YAML"),
      el("div", { class: "editor" }, gutter, area),
      el("p", {}, el("button", { type: "button", onclick: check }, "Check"), " ",
        admin ? el("button", { type: "button", onclick: save }, "Save and reload") : null, " ", saveState),
      issues);
    fillRules();
    lines(new Set(f.issue_lines || []));
    if (f.ok !== null) show(f);
    return section;
  }

  function pick(name) {
    // The first file's form that has this rule shows it, and takes the focus.
    for (const select of document.querySelectorAll("select[id$=-rule]")) {
      if (![...select.options].some((o) => o.value === name)) continue;
      select.value = name;
      select.dispatchEvent(new Event("change"));
      select.scrollIntoView({ block: "center" });
      select.focus();
      return;
    }
  }

  async function rulesPage() {
    const data = await api("/api/v1/rules");
    const kinds = {};
    for (const f of data.files) for (const r of f.forms || []) kinds[r.name] = KIND_NAMES[r.kind];
    $("#rule-list").replaceChildren(data.rules.length ? el("table", { class: "list" },
      el("thead", {}, el("tr", {}, el("th", {}, "Rule"), el("th", {}, "Kind"), el("th", {}, "Pending"), el("th", {}, "Firing"))),
      el("tbody", {}, data.rules.map((r) => el("tr", {}, el("td", { "data-label": "Rule" }, kinds[r.name]
        ? el("button", { type: "button", class: "link", title: "Edit in the form", onclick: () => pick(r.name) }, r.name) : r.name),
        el("td", { "data-label": "Kind" }, kinds[r.name] || "–"), el("td", { "data-label": "Pending" }, r.pending),
        el("td", { class: r.firing ? "state-firing" : "", "data-label": "Firing" }, r.firing ? r.firing + " FIRING" : "0")))))
      : el("p", { class: "muted" }, `No rules found in ${data.path}.`));
    $("#rule-files").replaceChildren(...data.files.map((f, i) => fileEditor(f, i)));
  }

  window.rulesPage = rulesPage;  // app.js runs it once the page has loaded
})();
