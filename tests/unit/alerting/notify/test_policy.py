"""What keeps an alert quiet, as a typed answer: the stage (silence, inhibit, mute) and until when."""

from __future__ import annotations

import datetime as dt

from alerting.notify.config import Match
from alerting.notify.policy import ActiveSilence, Quiet, Stage, suppression
from alerting.transition import Severity
from tests.support.dispatcher import START, config

LABELS = {"rule": "freezer-warm", "series": "freezer-1/t0/temperature", "device": "freezer-1",
          "severity": "warning"}
CFG = config(
    inhibit=[{"source": {"rule": "power-out"}, "target": {"severity": "warning"}}],
    mute_windows=[{"name": "night", "start": "00:00", "end": "23:59"}],
)
SILENCE = ActiveSilence("s1", Match.model_validate({"device": "freezer-*"}), START - 60, START + 600, "ana", "")
POWER_OUT = {"rule": "power-out", "series": "mains/v/voltage", "severity": "critical"}


def test_a_silence_is_checked_first_then_an_inhibition_then_a_mute_window() -> None:
    def quiet(silences: list[ActiveSilence], firing: list[dict[str, str]]) -> Quiet | None:
        return suppression(CFG, LABELS, Severity.WARNING, START, silences, firing)

    assert quiet([SILENCE], [POWER_OUT]) == Quiet(Stage.SILENCE, "silence s1", START + 600)
    assert quiet([], [POWER_OUT]) == Quiet(Stage.INHIBIT, "inhibited", None)
    night = quiet([], [])
    assert night is not None and (night.stage, night.reason) == (Stage.MUTE, "mute night")
    day_end = dt.datetime.fromtimestamp(START, dt.timezone.utc).replace(hour=23, minute=59, second=0)
    assert night.until == day_end.timestamp()
    assert suppression(config(), LABELS, Severity.WARNING, START, [], []) is None
