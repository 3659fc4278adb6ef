/* Vigil dashboard: the Reports page. Sensors from the store's latest values, a period of the site's calendar, and the
   report downloaded as PDF or CSV (POST /api/v1/reports). Uses app.js's helpers. */
"use strict";

async function reportsPage() {
  const form = $("#report");
  if (!form) return;  // the dashboard runs without reports: the page says so
  const rows = await api("/api/v1/latest");
  $("#units").replaceChildren(...(rows.length ? rows.map((r) => el("label", { class: "inline" },
    el("input", { type: "checkbox", name: "unit", value: r.series }), `${friendly(r).name} `, el("span", { class: "muted small" }, r.series)))
    : [el("span", { class: "muted" }, "No sensor has stored readings yet.")]));
  const checks = () => [...form.querySelectorAll('input[name="unit"]')];
  $('[data-role="all"]', form).addEventListener("click", () => checks().forEach((c) => { c.checked = true; }));
  $('[data-role="none"]', form).addEventListener("click", () => checks().forEach((c) => { c.checked = false; }));
  form.elements.date.value = siteInput(Date.now() / 1000).slice(0, 10);  // today in the site's zone
  const result = $('[data-role="result"]', form);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form), format = (ev.submitter && ev.submitter.value) || "pdf";
    const units = f.getAll("unit");
    if (!units.length) { result.className = "error"; result.textContent = "Choose at least one sensor."; return; }
    result.className = ""; result.textContent = "Making the report…";
    const r = await fetch("/api/v1/reports", { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify({ units, period: f.get("period"), date: f.get("date"), interval: f.get("interval"), format, title: f.get("title") || "" }) });
    if (!r.ok) {
      const data = (r.headers.get("content-type") || "").includes("json") ? await r.json() : {};
      result.className = "error"; result.textContent = "Not made: " + (data.error || "HTTP " + r.status);
      return;
    }
    const name = (/filename="([^"]+)"/.exec(r.headers.get("content-disposition") || "") || [])[1] || "report." + format;
    const url = URL.createObjectURL(await r.blob());
    const a = el("a", { href: url, download: name, hidden: true });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    result.className = "okmsg"; result.textContent = `Downloaded ${name}.`;
  });
}
