"""The Rules page in the real headless Chromium: the form, the line-numbered checks, and the preview.

The preview is also compared with ``vigil rules backtest`` run on the same stored history.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from tests.support.dashboard_served import ARTIFACTS, DESKTOP, PHONE, Running, logged_in, make_config, running_dashboard
from tests.support.services import Mosquitto
from vigil.core.event import Event
from vigil.core.stores import open_store

pytestmark = pytest.mark.integration

SECRET = "tgram://123456789:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-bs/-100123"
RULES = f"""# Kitchen rules. This comment, the order and the spacing must survive an edit.
receivers:
  night: "{SECRET}"   # the night shift's chat

rules:
  # the freezer: alarms the cook at night
  - name: freezer-warm
    match: {{metric: temperature, device: freezer}}
    above: -15          # fire when above -15 °C ...
    clear_below: -17    # ... and clear only below -17 °C (hysteresis)
    for: 30m
    severity: critical
    notify: night
    message: "{{{{ device }}}} is at {{{{ value | round(1) }}}} °C: is the door open?"

  - {{name: freezer-offline, offline: true, match: {{device: freezer}}, for: 2m}}

  - name: greenhouse-silent   # untouched by the tests
    match: {{device: greenhouse}}
    nodata: 10m
"""


def history(now: float) -> list[Event]:
    """24 h of the freezer at one reading a minute: -18 °C, and -10 °C from 6 h to 5 h ago (a known excursion)."""
    start = now - 86400
    return [Event("freezer", "t0", "temperature", -10.0 if now - 6 * 3600 <= ts < now - 5 * 3600 else -18.0, ts, "°C")
            for ts in (start + i * 60 for i in range(1440))]


@pytest.fixture
async def dashboard(mosquitto: Mosquitto, tmp_path: Path) -> AsyncIterator[Running]:
    store = open_store(f"sqlite:///{tmp_path}/vigil.db")
    store.write(history(time.time()))
    config = make_config(mosquitto, "memory://", tmp_path)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    rules.chmod(0o640)
    try:
        async with running_dashboard(config, store) as run:
            yield run
    finally:
        store.close()


async def rules_page(browser: Browser, run: Running, viewport: dict[str, int] = DESKTOP, dark: bool = False) -> Page:
    page = await logged_in(browser, run, viewport, dark)
    await page.goto(run.base + "/rules")
    await page.wait_for_selector("body[data-ready=yes]")
    return page


def rules_file(run: Running) -> Path:
    return Path(str(run.config.dashboard.rules))


async def test_a_threshold_edited_in_the_form_is_saved_with_every_other_byte_kept(
        dashboard: Running, browser: Browser) -> None:
    page = await rules_page(browser, dashboard)
    assert SECRET not in await page.content(), "the receiver's URL stays masked"
    await page.select_option("select[id$=-rule]", "freezer-warm")
    await page.get_by_label("Fire above").fill("-14")
    await page.get_by_label("For (must hold this long before firing)").fill("10m")
    await page.get_by_role("button", name="Apply to YAML").click()
    await page.wait_for_selector("text=Changed freezer-warm: above -14, for 10m.")
    assert rules_file(dashboard).read_text() == RULES, "applying to the YAML saves nothing"
    await page.get_by_role("button", name="Save and reload").click()
    await page.wait_for_selector(".savestate >> text=Saved.")
    on_disk = rules_file(dashboard).read_bytes()
    before = RULES.encode()
    for old, new in [(b"above: -15 ", b"above: -14 "), (b"for: 30m", b"for: 10m")]:
        i = before.index(old)
        assert on_disk[:i] == before[:i] and on_disk[i:i + len(new)] == new
        before = before[:i] + new + before[i + len(old):]
    assert on_disk == before, "every byte but the two values is as it was: comments, order, the secret"
    assert rules_file(dashboard).stat().st_mode & 0o777 == 0o640
    await page.context.close()


async def test_an_invalid_edit_shows_its_line_and_not_saved(dashboard: Running, browser: Browser) -> None:
    page = await rules_page(browser, dashboard)
    area = page.locator("textarea.yaml")
    text = await area.input_value()
    line = text.split("\n").index("    above: -15          # fire when above -15 °C ...") + 1
    await area.fill(text.replace("above: -15 ", "above: lots"))
    error = page.locator("li.error").first
    await error.wait_for()  # checked as you type, without pressing Check
    assert (await error.text_content() or "").startswith(f"rules.yaml:{line}: rule 'freezer-warm': above")
    assert await error.get_by_role("button", name=f"go to line {line}").count() == 1
    assert f"▶{line}" in (await page.locator(".gutter").text_content() or "")
    await page.get_by_role("button", name="Save and reload").click()
    state = page.locator(".savestate")
    await state.get_by_text("Not saved:").wait_for()
    said = await state.text_content() or ""
    assert f"rules.yaml:{line}: rule 'freezer-warm': above" in said and "The file on disk is unchanged" in said
    assert rules_file(dashboard).read_text() == RULES
    await page.get_by_label("For (must hold this long before firing)").fill("5 minutes")
    await page.get_by_role("button", name="Apply to YAML").click()
    await page.get_by_text("Not changed:").wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-rules-not-saved-desktop.png"), full_page=True)
    await page.context.close()


# The excursion's firing stretch in the chart, as the share of the canvas's width tinted red: the commonest count of
# red pixels over the rows that have any (the band spans the plot's height; a threshold's line or the readings'
# line crosses a few rows).
FIRING_SHARE = """() => {
  const c = document.querySelector('.preview-chart canvas'); const g = c.getContext('2d');
  const d = g.getImageData(0, 0, c.width, c.height).data;
  const seen = new Map();
  for (let y = 0; y < c.height; y++) {
    let red = 0;
    for (let i = y * c.width * 4; i < (y + 1) * c.width * 4; i += 4) if (d[i] - d[i + 1] > 30) red++;
    if (red) seen.set(red, (seen.get(red) || 0) + 1);
  }
  const [mode] = [...seen.entries()].sort((a, b) => b[1] - a[1])[0] || [0];
  return mode / c.width;
}"""


@pytest.mark.parametrize(("name", "viewport", "dark"), [("desktop", DESKTOP, False), ("phone", PHONE, False),
                                                        ("desktop-dark", DESKTOP, True)])
async def test_a_preview_draws_the_fired_period_and_counts_the_notifications(
        dashboard: Running, browser: Browser, name: str, viewport: dict[str, int], dark: bool) -> None:
    page = await rules_page(browser, dashboard, viewport, dark)
    await page.select_option("select[id$=-rule]", "greenhouse-silent")
    await page.locator("#rule-list").get_by_role("button", name="freezer-warm").click()  # picks it in the form
    assert await page.locator("select[id$=-rule]").input_value() == "freezer-warm"
    await page.get_by_label("For (must hold this long before firing)").fill("5m")
    await page.get_by_role("button", name="Apply to YAML").click()
    await page.wait_for_selector("text=Changed freezer-warm: for 5m.")
    await page.get_by_role("button", name="Last 24 h").click()
    await page.get_by_role("button", name="Preview", exact=True).click()
    summary = page.locator(".summary")
    await summary.get_by_text("would have fired").wait_for(timeout=15000)
    said = await summary.text_content() or ""
    assert "would have fired 1 time and sent 2 notifications" in said and "Nothing was sent" in said
    await page.wait_for_selector(".preview-chart canvas")
    assert await page.locator(".preview-chart").get_attribute("data-firing") == "1"
    periods = await page.locator(".periods").text_content() or ""
    assert "FIRING from" in periods and "(55 min)" in periods and "pending from" in periods
    if not dark:
        share = await page.evaluate(FIRING_SHARE)
        # 55 min of 24 h is 0.038 of the plot, less of the canvas, which holds the axis too: the phone's band is 8
        # of 342 pixels (0.023) at every time of day. It was drawn under the grid, and between 05:00 and 06:00 UTC
        # the midnight grid line crossed it and hid 2 of its 8 (0.018): it is now drawn over the grid.
        assert 0.019 < share < 0.08, f"the 55 firing minutes of 24 h are drawn ({share:.3f} of the width)"
    assert rules_file(dashboard).read_text() == RULES, "a preview saves nothing"
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"dashboard-rules-preview-{name}.png"), full_page=True)
    if name == "desktop":  # the same excursion, seen in a week
        await page.get_by_role("button", name="Last 7 days").click()
        await page.get_by_role("button", name="Preview", exact=True).click()
        await summary.get_by_text(re.compile("^Over the last 7 days, ")).wait_for(timeout=15000)
        assert "would have fired 1 time and sent 2 notifications" in (await summary.text_content() or "")
    await page.context.close()


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


async def test_the_preview_says_what_vigil_rules_backtest_says(dashboard: Running, tmp_path: Path) -> None:
    edited = RULES.replace("for: 30m", "for: 5m")
    async with dashboard.client() as client:
        csrf = await dashboard.login(client)
        r = await client.post("/api/v1/rules/preview", headers={"X-CSRF-Token": csrf},
                              json={"file": "rules.yaml", "text": edited, "rule": "freezer-warm", "range": "24h"})
    assert r.status_code == 200, r.text
    p = r.json()
    only = tmp_path / "only.yaml"  # the edited rule alone, with its receivers, as the preview replays it
    only.write_text(edited.split("  - {name: freezer-offline")[0])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    out = subprocess.run([sys.executable, "-c", "from vigil.app.cli import main; raise SystemExit(main())", "rules",
                          "backtest", str(only), "--store", f"sqlite:///{tmp_path}/vigil.db",
                          "--from", repr(p["start"]), "--to", repr(p["end"])],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    cli = re.findall(r"^(\S+ \S+) UTC\s+(\w+)\s+(\S+) (\S+):", out.stdout, re.M)
    ours = [(_utc(t["at"]), t["state"].upper(), p["rule"], s["series"]) for s in p["series"] for t in s["transitions"]
            if t["state"] not in ("pending", "ok")]
    assert cli == ours and len(ours) == 2, out.stdout
    assert f"{p['notifications']} notifications would have gone out ({p['firing']} firing)" in out.stdout
