"""The engine writes from another connection while the dispatcher runs on the real clock."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections import defaultdict
from pathlib import Path

from alerting.notify import Dispatcher, NotifyConfig, Outbox, RecordingSender
from alerting.transition import AlertState, Severity, Transition
from vigil.core.clock import SystemClock


def _engine(path: Path, series: int, rounds: int) -> None:
    """Fire and resolve every series ``rounds`` times, committing each change like the engine does."""
    conn = sqlite3.connect(str(path), timeout=10)
    outbox = Outbox(conn)
    rng = random.Random(3)
    try:
        for r in range(rounds):
            for s in rng.sample(range(series), series):
                for state in (AlertState.FIRING, AlertState.RESOLVED):
                    now = time.time()
                    outbox.enqueue(Transition(
                        id=f"{s}-{r}-{state.value}", rule="warm", series=f"dev-{s}/t0/temperature", state=state,
                        previous=AlertState.PENDING if state is AlertState.FIRING else AlertState.FIRING, at=now,
                        severity=Severity.WARNING, message="m", since=now, notify=("hook",)))
                    conn.commit()
                    # sometimes resolved at once (before anyone was told), mostly a little later
                    time.sleep(rng.random() * 0.03)
    finally:
        conn.close()


async def test_every_resolve_follows_its_firing_and_nothing_is_sent_twice(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    config = NotifyConfig.model_validate({"receivers": {"hook": ["json://127.0.0.1:9/hook"]},
                                          "grouping": {"group_by": ["series"], "group_wait": "0s",
                                                       "group_interval": "0s"}})
    sender = RecordingSender()
    dispatcher = Dispatcher(path, config, sender, SystemClock(), poll_interval=0.01)
    runner = asyncio.create_task(dispatcher.run())
    try:
        await asyncio.to_thread(_engine, path, 10, 4)
        deadline = time.monotonic() + 10
        while (dispatcher.status().waiting or dispatcher.status().alerts) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        dispatcher.close()
    seen: dict[str, list[str]] = defaultdict(list)
    for m in sender.sent:
        # one alert in the title, or several listed in the body ("- [FIRING warning] warm dev-3/t0/temperature")
        headlines = [m.title] if not m.title.endswith("alerts)") else [
            line[2:] for line in m.body.splitlines() if line.startswith("- [")]
        for headline in headlines:
            seen[headline.split()[-1]].append(headline.split()[0].strip("["))
    firings = sum(words.count("FIRING") for words in seen.values())
    assert firings >= 10, f"only {firings} firing messages: the test did not exercise delivery"
    for series, words in seen.items():
        # told of a firing, then of its end, round after round: never a resolve out of nowhere, never twice
        assert words == ["FIRING", "RESOLVED"] * (len(words) // 2), (series, words)
