"""`vigil rules backtest` on history in a SQLite store (docs/rules.md "Backtests"): each sensor-health condition
(stale, stuck, forecast, jump, noise) fires on the series that shows it, at the time it shows it, and on no
healthy series."""

from __future__ import annotations

import contextlib
import io
import math
import random
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from vigil.app.cli import main
from vigil.core.event import Event
from vigil.core.stores import open_store

T0 = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC
STEP = 60.0
HOURS = 2

RULES = """\
rules:
  - name: stale
    match: {metric: temperature, device: "st-*"}
    stale: {factor: 5}
  - name: stuck
    match: {metric: temperature, device: "sk-*"}
    stuck: {after: 20m}
  - name: forecast
    match: {metric: temperature, device: "fc-*"}
    forecast: {above: -12, within: 20m, window: 30m}
  - name: jump
    match: {metric: temperature, device: "jp-*"}
    jump: {max_step: 5, per: 1m}
  - name: noise
    match: {metric: temperature, device: "nz-*"}
    noise: {factor: 5, window: 1h, recent: 5m}
"""


def healthy(rng: random.Random, i: int) -> float:
    return round(-18 + 0.5 * math.sin(i / 20) + rng.gauss(0, 0.05), 2)


def history() -> dict[str, list[tuple[float, float]]]:
    """Two hours a minute apart; in each group one healthy series and one that shows its condition."""
    rng = random.Random(16)
    n = int(HOURS * 3600 / STEP)
    out: dict[str, list[tuple[float, float]]] = {}
    for group in ("st", "sk", "fc", "jp", "nz"):
        out[f"{group}-ok"] = [(T0 + i * STEP, healthy(rng, i)) for i in range(n)]
    # stale: silent from 60m to 90m (limit: 5 x the usual minute)
    out["st-bad"] = [(T0 + i * STEP, healthy(rng, i)) for i in range(n) if not 60 <= i < 90]
    # stuck: the same value from 30m on
    out["sk-bad"] = [(T0 + i * STEP, healthy(rng, i) if i < 30 else -18.0) for i in range(n)]
    # forecast: flat, then +0.3 °C/min from 40m (-12 at 66m40s), the compressor back at 70m
    out["fc-bad"] = [(T0 + i * STEP, round(-20 + 0.3 * max(0, min(i, 70) - 40) - 0.5 * max(0, i - 70), 2)
                      if i < 90 else -20.0) for i in range(n)]
    # jump: one reading 30 °C off at 50m
    out["jp-bad"] = [(T0 + i * STEP, 12.0 if i == 50 else healthy(rng, i)) for i in range(n)]
    # noise: from 80m to 90m the readings scatter by 2 °C
    out["nz-bad"] = [(T0 + i * STEP, healthy(rng, i) + (rng.gauss(0, 2) if 80 <= i < 90 else 0.0))
                     for i in range(n)]
    return out


@pytest.fixture(scope="module")
def backtest_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("bt")
    db = tmp / "vigil.db"
    store = open_store(f"sqlite:///{db}")
    for device, points in history().items():
        store.write([Event(device, "t0", "temperature", v, ts, "°C") for ts, v in points])
    store.close()
    rules = tmp / "rules.yaml"
    rules.write_text(RULES)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["rules", "backtest", str(rules), "--store", f"sqlite:///{db}", "--from", str(int(T0)),
                     "--to", str(int(T0 + HOURS * 3600))])
    assert code == 0, buf.getvalue()
    return buf.getvalue()


def events(out: str, rule: str) -> list[tuple[str, str, float]]:
    """(state, series, minutes after T0) of the rule's lines."""
    found = []
    for line in out.splitlines():
        m = re.match(r"(\S+ \S+) UTC\s+(FIRING|RESOLVED)\s+(\S+) (\S+):", line)
        if m and m.group(3) == rule:
            at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
            found.append((m.group(2), m.group(4), (at - T0) / 60))
    return found


def test_the_backtest_reads_every_series(backtest_output: str) -> None:
    assert re.search(r": 10 series, \d+ points, 5 rules \(nothing is sent\)", backtest_output), backtest_output


def test_stale_in_a_backtest(backtest_output: str) -> None:
    got = events(backtest_output, "stale")
    assert [(s, sid) for s, sid, _ in got] == [("FIRING", "st-bad/t0/temperature"),
                                               ("RESOLVED", "st-bad/t0/temperature")]
    assert got[0][2] == pytest.approx(59 + 5, abs=0.1) and got[1][2] == pytest.approx(90, abs=0.1)


def test_stuck_in_a_backtest(backtest_output: str) -> None:
    got = events(backtest_output, "stuck")
    assert [(s, sid) for s, sid, _ in got] == [("FIRING", "sk-bad/t0/temperature")]
    assert got[0][2] == pytest.approx(30 + 21, abs=1.1)


def test_forecast_in_a_backtest(backtest_output: str) -> None:
    got = events(backtest_output, "forecast")
    assert [(s, sid) for s, sid, _ in got] == [("FIRING", "fc-bad/t0/temperature"),
                                               ("RESOLVED", "fc-bad/t0/temperature")]
    assert 50 <= got[0][2] <= 60 and 70 < got[1][2] < 90
    assert "fc-bad/t0 will reach -12.0 °C in about" in backtest_output


def test_jump_in_a_backtest(backtest_output: str) -> None:
    got = events(backtest_output, "jump")
    assert got == [("FIRING", "jp-bad/t0/temperature", 50.0), ("RESOLVED", "jp-bad/t0/temperature", 51.0)]
    assert "jp-bad/t0 jumped from" in backtest_output


def test_noise_in_a_backtest(backtest_output: str) -> None:
    got = events(backtest_output, "noise")
    assert [(s, sid) for s, sid, _ in got][:1] == [("FIRING", "nz-bad/t0/temperature")]
    assert 80 <= got[0][2] <= 86
    assert all(sid == "nz-bad/t0/temperature" for _, sid, _ in got)


def test_a_store_with_nothing_in_range_backtests_to_nothing(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    open_store(f"sqlite:///{db}").close()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    assert main(["rules", "backtest", str(rules), "--store", f"sqlite:///{db}", "--from", str(int(T0)),
                 "--to", str(int(T0 + 3600))]) == 0
