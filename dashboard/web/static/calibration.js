/* Vigil dashboard: the sensor page's Calibration section (templates/_calibration.html). Uses app.js's helpers. */
"use strict";

function calibrationText(c) {
  if (!c) return "none";
  if (c.points) return `two points: raw ${c.points[0][0]} → ${c.points[0][1]}, raw ${c.points[1][0]} → ${c.points[1][1]}`;
  return `offset ${c.offset >= 0 ? "+" : ""}${c.offset}`;
}

async function calibrationSection() {
  const b = document.body.dataset;
  const series = [b.device, b.sensor, b.metric].join("/");
  const path = "/api/v1/calibration/" + [b.device, b.sensor, b.metric].map(encodeURIComponent).join("/");
  async function render() {
    const q = await api("/api/v1/calibration?series=" + encodeURIComponent(series));
    const cur = q.current[series];
    $("#calibration-now").textContent = cur
      ? `In force: ${calibrationText(cur.calibration)} (by ${cur.by}, ${when(cur.at)}). Stored values are corrected; the raw value is kept beside each.`
      : (q.journal ? "Not calibrated: readings are stored as they come." : "No calibration history here (it is kept by the bridge, in its data directory).");
    const rows = (q.history || []).slice().reverse();
    $("#calibration-history").replaceChildren(rows.length ? el("table", { class: "list" },
      el("thead", {}, el("tr", {}, ["When", "Who", "Change", "Before", "Note"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((c) => el("tr", {}, el("td", {}, when(c.at)), el("td", {}, c.by),
        el("td", {}, c.calibration ? calibrationText(c.calibration) : "cleared"), el("td", {}, calibrationText(c.previous)),
        el("td", {}, c.note)))))
      : el("p", { class: "muted" }, "No changes."));
  }
  const form = $("#calibration-form");
  if (form) {
    const show = () => { const k = form.querySelector("input[name=kind]:checked").value;
      /* style, not only hidden: a flex row's display would show it anyway */
      form.querySelectorAll("[data-kind]").forEach((n) => { n.hidden = n.dataset.kind !== k; n.style.display = n.hidden ? "none" : ""; }); };
    form.querySelectorAll("input[name=kind]").forEach((r) => r.addEventListener("change", show));
    show();
    const done = async (text) => { $("#calibration-result").textContent = text; setTimeout(() => render().catch(() => {}), 1500); };
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const f = new FormData(form);
      const num = (n) => { const t = String(f.get(n) || "").trim(); return t === "" ? null : Number(t); };
      const body = { note: String(f.get("note") || "") };
      if (f.get("kind") === "points") body.points = [[num("raw1"), num("ref1")], [num("raw2"), num("ref2")]];
      else body.offset = num("offset");
      try {
        const r = await api(path, { method: "PUT", body });
        await done(`Saved: ${calibrationText(r.calibration)}. The bridge applies it to the next readings.`);
      } catch (err) { $("#calibration-result").textContent = err.message; }
    });
    $("#calibration-clear").addEventListener("click", async () => {
      try { await api(path, { method: "DELETE", body: { note: String(new FormData(form).get("note") || "") } });
        await done("Cleared: the next readings are stored as they come."); }
      catch (err) { $("#calibration-result").textContent = err.message; }
    });
  }
  await render();
}

document.addEventListener("DOMContentLoaded", () => {
  calibrationSection().catch((e) => { $("#calibration-now").textContent = "Could not load the calibration: " + e.message; });
});
