"""Memory and CPU bombs against `vigil dashboard` as a process: its peak RSS is measured from /proc.

A body far over the limit is refused before it is read, a template that would build a huge string
is refused while it renders, a rules file over the size bound is refused before it is parsed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.proc import cpu_seconds
from tests.support.chain import READER_TOKEN, Dashboard
from tests.support.services import Mosquitto

pytestmark = pytest.mark.integration

MB = 1024 * 1024
RULES = "rules: []\n"


def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


@pytest.fixture
def dashboard(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Dashboard]:
    (tmp_path / "dash" / "rules").mkdir(parents=True)
    (tmp_path / "dash" / "rules" / "kitchen.yaml").write_text(RULES)
    d = Dashboard(tmp_path / "dash", mosquitto, f"sqlite:///{tmp_path}/vigil.db")
    yield d
    d.stop()


def _chunks(total: int, size: int = MB) -> Iterator[bytes]:
    block = b"[" + b"0," * (size // 2 - 1) + b"0"
    sent = 0
    while sent < total:
        piece = block[: min(size, total - sent)]
        sent += len(piece)
        yield piece


def _grown(d: Dashboard, send: object) -> tuple[int, httpx.Response]:
    before = peak_rss(d.proc.proc.pid)
    r = send()  # type: ignore[operator]
    time.sleep(0.2)
    return peak_rss(d.proc.proc.pid) - before, r


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_anonymous_150_mb_body_is_refused_before_it_is_read(dashboard: Dashboard, chunked: bool) -> None:
    total = 150 * MB
    headers = {"Content-Type": "application/json"}
    if not chunked:
        headers["Content-Length"] = str(total)

    def send() -> httpx.Response:
        try:
            return httpx.post(f"{dashboard.base}/api/v1/rules/validate", content=_chunks(total),
                              headers=headers, timeout=60)
        except httpx.HTTPError as exc:  # the server may close while we are still sending
            return httpx.Response(499, text=f"closed while sending: {exc}")

    grown, r = _grown(dashboard, send)
    print(f"\npeak RSS grew by {grown / MB:.1f} MB for an anonymous 150 MB POST ({'chunked' if chunked else 'sized'})")
    assert r.status_code in (413, 499), (r.status_code, r.text[:300])
    if r.status_code == 413:
        assert "larger than" in r.json()["error"]
    assert grown < 20 * MB, f"the dashboard's peak RSS grew by {grown / MB:.0f} MB"
    assert httpx.get(f"{dashboard.base}/api/v1/health", timeout=5).status_code == 200


def _validate(d: Dashboard, text: str) -> tuple[int, float, httpx.Response]:
    """POST a rules text to the validation route as the read-only token: (peak RSS growth, CPU seconds, answer)."""

    def send() -> httpx.Response:
        return httpx.post(f"{d.base}/api/v1/rules/validate", json={"file": "kitchen.yaml", "text": text},
                          headers={"Authorization": f"Bearer {READER_TOKEN}"}, timeout=120)

    cpu0 = cpu_seconds(d.proc.proc.pid)
    grown, r = _grown(d, send)
    return grown, cpu_seconds(d.proc.proc.pid) - cpu0, r


def test_a_template_bomb_in_validation_is_refused_quickly(dashboard: Dashboard) -> None:
    bomb = ("rules:\n  - name: bomb\n    match: {metric: temperature}\n    above: 1\n"
            "    message: \"{{ 'x' * 300000000 }}\"\n")
    grown, took, r = _validate(dashboard, bomb)
    print(f"\npeak RSS grew by {grown / MB:.1f} MB, {took:.2f} s of CPU, for a template of 'x' * 300000000")
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    assert body["ok"] is False
    assert any("message" in i and "larger than" in i for i in body["issues"]), body["issues"]
    assert grown < 50 * MB, f"the dashboard's peak RSS grew by {grown / MB:.0f} MB"
    assert took < 3, f"{took:.2f} s of the dashboard's CPU"  # 5.4 s wall, mostly CPU, before the bound


def test_a_huge_rules_file_is_refused_by_its_size_before_it_is_parsed(dashboard: Dashboard) -> None:
    rule = "  - name: r{i}\n    match: {{metric: temperature, device: d{i}}}\n    above: {i}\n"
    text = "rules:\n" + "".join(rule.format(i=i) for i in range(12_000))
    assert len(text) > 900_000
    _, took, r = _validate(dashboard, text)
    print(f"\n{len(text) / 1000:.0f} KB rules file answered with {took:.2f} s of CPU")
    assert r.status_code == 200, r.text[:300]
    assert r.json()["ok"] is False
    assert any("larger than 512 KB" in i for i in r.json()["issues"]), r.json()["issues"]
    assert took < 3, f"{took:.2f} s of the dashboard's CPU"  # parsing it cost about 6 s of CPU
