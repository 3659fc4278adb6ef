"""``vigil notify test|status``: what a user sees, and the exit code."""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
from pathlib import Path

import pytest

from alerting.notify import Dispatcher, NotifyConfig, Outbox, RecordingSender
from alerting.notify.cli import add_arguments, run
from alerting.transition import AlertState, Severity, Transition
from tests.support.notify import Receiver
from vigil.core.clock import ManualClock

RULES = """\
receivers:
  kitchen: ["json://127.0.0.1:{port}/kitchen"]
  night: ["json://127.0.0.1:{port}/${{VIGIL_NOTIFY_NIGHT_TOKEN}}"]
rules:
  - name: freezer-warm
    match: {{metric: temperature}}
    above: -15
    notify: kitchen
"""


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vigil notify")
    add_arguments(parser)
    return parser.parse_args(argv)


async def test_test_sends_to_each_receiver_and_reports_each_url(
        tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIGIL_NOTIFY_NIGHT_TOKEN", raising=False)
    (tmp_path / "rules.yaml").write_text(RULES.format(port=receiver.port))
    code = await asyncio.to_thread(run, _args("test", str(tmp_path / "rules.yaml")))
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out == [
        f"ok    kitchen  json://127.0.0.1:{receiver.port}/***",
        f"FAIL  night  json://127.0.0.1:{receiver.port}/***: environment variable VIGIL_NOTIFY_NIGHT_TOKEN is not set "
        "(named in a receiver URL)",
    ]
    assert [(m["path"], m["title"]) for m in receiver.received] == [
        ("/kitchen", "[TEST info] Vigil notification test")]
    monkeypatch.setenv("VIGIL_NOTIFY_NIGHT_TOKEN", "tok-123")
    code = await asyncio.to_thread(run, _args("test", str(tmp_path / "rules.yaml"), "--receiver", "night"))
    assert code == 0
    assert receiver.received[-1]["path"] == "/tok-123"
    assert "tok-123" not in capsys.readouterr().out


def test_test_with_bad_rules_or_unknown_receiver_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "rules.yaml").write_text(RULES.format(port=9))
    assert run(_args("test", str(tmp_path / "rules.yaml"), "--receiver", "nobody")) == 3
    assert "no receiver 'nobody' (known: kitchen, night)" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("receivers:\n  kitchen: [nope]\n")
    assert run(_args("test", str(tmp_path / "bad.yaml"))) == 3
    assert f"{tmp_path / 'bad.yaml'}:2: receivers.kitchen[0]: expected an apprise URL" in capsys.readouterr().err


async def test_status_shows_alerts_told_acks_and_silences(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "alerts.db"
    clock = ManualClock(1_780_000_000.0)
    engine = sqlite3.connect(str(state))
    Outbox(engine).create_tables()
    Outbox(engine).enqueue(Transition(id="t1", rule="freezer-warm", series="freezer-1/t0/temperature",
                                      state=AlertState.FIRING, previous=AlertState.PENDING, at=clock.now(),
                                      severity=Severity.CRITICAL, message="warm", since=clock.now(),
                                      notify=("kitchen",)))
    engine.commit()
    engine.close()
    config = NotifyConfig.model_validate({"receivers": {"kitchen": ["json://127.0.0.1:9/k"]},
                                          "grouping": {"group_wait": "0s"}})
    d = Dispatcher(state, config, RecordingSender(), clock, rng=random.Random(1))
    await d.step()
    d.acknowledge("freezer-warm/freezer-1/t0/temperature", "ana", "door")
    sid = d.add_silence({"device": "freezer-2"}, 4_000_000_000.0, by="bo", comment="defrost")
    d.close()
    assert run(_args("status", "--state", str(state))) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "1 alert(s) firing, cleared (waiting for an acknowledgement) or flapping"
    assert out[1] == ("  firing   critical freezer-warm/freezer-1/t0/temperature  since 2026-05-28 20:26:40 UTC; "
                      "told: kitchen; acknowledged by ana at 2026-05-28 20:26:40 UTC")
    assert out[2:] == ["1 silence(s)",
                       f"  {sid}  {{'device': 'freezer-2'}}  until 2096-10-02 07:06:40 UTC  by bo: defrost",
                       "0 message(s) waiting to be sent"]


def test_status_of_a_missing_or_foreign_file_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_args("status", "--state", str(tmp_path / "none.db"))) == 3
    assert "no such state file" in capsys.readouterr().err
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    assert run(_args("status", "--state", str(tmp_path / "junk.db"))) == 3
    assert "not an alerting state file" in capsys.readouterr().err
