"""Rule messages write times in the site's zone, named, and values at the sensor's precision (issue 14).

The zone reaches the templates the way it reaches the notifications: through ``make_dispatcher``.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerting.delivery import make_dispatcher
from alerting.rules import load_rules_text
from alerting.templates import MessageTemplate, use_zone
from tests.support.engine import T0, engine, feed

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
DEFAULTED = """
rules:
  - name: freezer-warm
    match: {metric: temperature, device: "freezer-*"}
    above: -15
"""
CUSTOM = """
rules:
  - name: freezer-warm
    match: {metric: temperature, device: "freezer-*"}
    above: -15
    message: "{{ device }} at {{ value_text }} {{ unit }} since {{ since }}{% if value > -12 %} (very warm){% endif %}"
"""


@pytest.fixture(autouse=True)
def _server_zone_after() -> Iterator[None]:
    yield
    use_zone(None)


def test_the_site_zone_given_to_delivery_reaches_the_default_message(tmp_path: Path) -> None:
    e, sink, clock = engine(DEFAULTED)
    rules, _ = load_rules_text(DEFAULTED, "test.yaml")
    make_dispatcher(str(tmp_path / "state.db"), rules.notify, clock, BERLIN)
    feed(e, clock, -11.913)
    # T0 is 2023-11-14 22:13:20 UTC: 23:13:20 in Berlin (winter time).
    assert sink.items[0].message == "freezer-warm: freezer-1/t0/temperature is firing (-11.9°C) " \
        "since 2023-11-14 23:13:20 CET"
    assert sink.items[0].value == -11.913  # the transition keeps the exact reading


def test_a_precision_label_and_numeric_comparisons_on_value_still_work() -> None:
    use_zone(BERLIN)
    e, sink, clock = engine(CUSTOM)
    feed(e, clock, -11.913, precision="2")
    feed(e, clock, -11.5, device="freezer-2")
    assert [t.message for t in sink.items] == [
        "freezer-1 at -11.91 °C since 2023-11-14 23:13:20 CET (very warm)",
        "freezer-2 at -11.5 °C since 2023-11-14 23:13:20 CET (very warm)"]


def test_the_time_filter_and_a_template_check_use_the_same_zone() -> None:
    use_zone(BERLIN)
    assert MessageTemplate("{{ since_ts | time }}").render({"since_ts": T0}) == "2023-11-14 23:13:20 CET"
    MessageTemplate("{{ value_text }} {{ value | round(1) }}").check()  # value_text is a known variable
    use_zone(None)  # the server's zone (UTC on this machine and in CI)
    assert MessageTemplate("{{ since_ts | time }}").render({"since_ts": T0}).startswith("2023-11-14 22:13:20 ")
