"""Which library writes the report's PDF, and which draws its chart: the same representative page (a
table of 200 rows, and a chart of 4,300 points: a month in 10-minute steps) built with fpdf2,
ReportLab and WeasyPrint; the chart drawn by fpdf2 itself (vector lines) or by matplotlib (a PNG
placed in the fpdf2 page). Each case runs in a fresh process, 3 times (the best taken): wall time of
imports and page, peak RSS; then each library's installed size and number of dependencies (the
distributions it pulls in, transitively).

Run it with a Python that has all of them (a throwaway venv, outside the project):

    python3 -m venv /tmp/libs && /tmp/libs/bin/pip install fpdf2 reportlab weasyprint matplotlib
    /tmp/libs/bin/python bench/report_libs.py
"""

from __future__ import annotations

import importlib
import json
import math
import re
import resource
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Callable

ROWS = 200
POINTS = 4300


def data() -> tuple[list[list[str]], list[tuple[float, float]]]:
    rows = [[f"2026-11-{1 + i // 6:02d} {i % 6 * 4:02d}:00", f"{-18 + math.sin(i / 7):.1f}",
             f"{-17.6 + math.sin(i / 7):.1f}",
             "no" if i % 3 else "yes"] for i in range(ROWS)]
    pts = [(i / POINTS, -18 + 2 * math.sin(i / 50) + 0.3 * math.sin(i * 1.7)) for i in range(POINTS)]
    return rows, pts


def fpdf2_page(out: str, chart: str, pages: int) -> None:
    from fpdf import FPDF

    rows, pts = data()
    pdf = FPDF()
    for _ in range(pages):
        fpdf2_one(pdf, rows, pts, chart)
    pdf.output(out)


def fpdf2_one(pdf: object, rows: list[list[str]], pts: list[tuple[float, float]], chart: str) -> None:
    pdf.add_page()  # type: ignore[attr-defined]
    pdf.set_font("helvetica", size=7)  # type: ignore[attr-defined]
    if chart == "vector":
        lo, hi = min(p[1] for p in pts), max(p[1] for p in pts)
        pdf.polyline([(15 + x * 180, 80 - (y - lo) / (hi - lo) * 60) for x, y in pts])  # type: ignore[attr-defined]
    else:
        import matplotlib

        matplotlib.use("Agg")
        import io

        from matplotlib import pyplot as plt

        fig, ax = plt.subplots(figsize=(7.1, 2.4), dpi=150)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], linewidth=0.6)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        pdf.image(buf, x=15, y=20, w=180)  # type: ignore[attr-defined]
    pdf.set_y(90)  # type: ignore[attr-defined]
    for row in rows:
        for cell in row:
            pdf.cell(40, 4, cell, new_x="RIGHT", new_y="TOP")  # type: ignore[attr-defined]
        pdf.ln(4)  # type: ignore[attr-defined]


def reportlab_page(out: str, pages: int) -> None:
    from reportlab.graphics.shapes import Drawing, PolyLine
    from reportlab.lib.pagesizes import A4
    from reportlab.platypus import PageBreak, SimpleDocTemplate, Table

    rows, pts = data()
    lo, hi = min(p[1] for p in pts), max(p[1] for p in pts)
    story: list[object] = []
    for _ in range(pages):
        drawing = Drawing(510, 170)
        drawing.add(PolyLine([c for x, y in pts for c in (x * 510, (y - lo) / (hi - lo) * 170)], strokeWidth=0.5))
        story += [drawing, Table(rows), PageBreak()]
    SimpleDocTemplate(out, pagesize=A4).build(story)


def weasyprint_page(out: str, pages: int) -> None:
    import weasyprint

    rows, pts = data()
    lo, hi = min(p[1] for p in pts), max(p[1] for p in pts)
    poly = " ".join(f"{x * 700:.1f},{(hi - y) / (hi - lo) * 200:.1f}" for x, y in pts)
    table = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    html = (f'<div style="page-break-after: always"><svg width="700" height="200"><polyline fill="none" '
            f'stroke="blue" points="{poly}"/></svg><table style="font-size:7pt">{table}</table></div>') * pages
    weasyprint.HTML(string=html).write_pdf(out)


CASES: dict[str, tuple[str, Callable[[str, int], None]]] = {
    "fpdf2, chart as vector lines": ("fpdf", lambda out, n: fpdf2_page(out, "vector", n)),
    "fpdf2, chart by matplotlib (PNG)": ("fpdf, matplotlib.pyplot", lambda out, n: fpdf2_page(out, "png", n)),
    "reportlab (platypus table, vector chart)": ("reportlab.platypus, reportlab.graphics.shapes", reportlab_page),
    "weasyprint (HTML table, SVG chart)": ("weasyprint", weasyprint_page),
}
PAGES = 20  # a month's report of 20 units: one such page each (at least)
DISTS = {"fpdf2": "fpdf2", "reportlab": "reportlab", "weasyprint": "weasyprint", "matplotlib": "matplotlib"}


def closure(name: str) -> set[str]:
    """The distribution and every one it requires (no extras), by normalized name."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        n = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if n in seen:
            continue
        try:
            dist = metadata.distribution(n)
        except metadata.PackageNotFoundError:
            continue
        seen.add(n)
        for req in dist.requires or []:
            if "extra ==" in req:
                continue
            todo.append(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0])
    return seen


def size_mb(names: set[str]) -> float:
    total = 0
    for n in names:
        for f in metadata.distribution(n).files or []:
            p = Path(str(f.locate()))
            if p.is_file():
                total += p.stat().st_size
    return total / 1e6


def child(case: str) -> None:
    modules, build = CASES[case]
    t0 = time.perf_counter()
    for m in modules.split(", "):
        importlib.import_module(m)
    imported = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        out = str(Path(d) / "page.pdf")
        t0 = time.perf_counter()
        build(out, 1)
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        build(out, PAGES)
        many = time.perf_counter() - t0
        size = Path(out).stat().st_size
    print(json.dumps({"import": imported, "one": one, "many": many, "bytes": size,
                      "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
        return
    print(f"a page: a table of {ROWS} rows and a chart of {POINTS:,} points; the import, one page, then "
          f"{PAGES} pages; best of 3 fresh processes\n")
    print(f"{'case':42} {'import':>7} {'1 page':>7} {PAGES:>3} pages {'peak RSS':>9} {f'PDF of {PAGES}':>11}")
    for case in CASES:
        runs = []
        for _ in range(3):
            done = subprocess.run([sys.executable, __file__, "--child", case], capture_output=True, text=True,
                                  check=False)
            if done.returncode != 0:
                print(f"{case:42} failed: {done.stderr.strip().splitlines()[-1:]}")
                break
            runs.append(json.loads(done.stdout))
        if runs:
            best = {k: min(r[k] for r in runs) for k in runs[0]}
            print(f"{case:42} {best['import']:6.2f}s {best['one']:6.2f}s {best['many']:8.2f}s {best['rss']:7.0f}MB "
                  f"{best['bytes'] / 1e3:9.0f}kB")
    print(f"\n{'library':12} {'installed':>10} {'dependencies':>13}  (distributions it pulls in)")
    for name, dist in DISTS.items():
        deps = closure(dist)
        if not deps:
            print(f"{name:12} not installed")
            continue
        print(f"{name:12} {size_mb(deps):8.1f}MB {len(deps) - 1:13d}  {', '.join(sorted(deps - {dist}))}")


if __name__ == "__main__":
    main()
