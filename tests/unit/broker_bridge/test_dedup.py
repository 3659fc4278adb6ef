"""Duplicates: redeliveries and retained replays are dropped and counted; real readings never are."""

from __future__ import annotations

from broker_bridge.dedup import Deduplicator
from tests.support.pipeline import NOW, make_pipeline
from vigil.core.event import Event


def ev(ts: float = NOW, seq: int | None = None, value: float = 1.0, device: str = "d") -> Event:
    return Event(device, "s", "temperature", value, ts, "°C", seq)


def test_same_series_and_timestamp_is_a_duplicate_whatever_the_seq() -> None:
    d = Deduplicator()
    assert d.seen(ev(seq=1)) is False
    assert d.seen(ev(seq=1)) is True
    assert d.seen(ev(seq=2)) is True
    assert d.seen(ev(ts=NOW + 1e-6, seq=1)) is False  # microseconds apart: two readings
    assert d.seen(ev(device="other")) is False


def test_same_seq_without_source_time_is_a_duplicate() -> None:
    d = Deduplicator()
    assert d.seen(ev(ts=NOW, seq=7), from_source=False) is False
    assert d.seen(ev(ts=NOW + 5, seq=7), from_source=False) is True
    assert d.seen(ev(ts=NOW + 6, seq=8), from_source=False) is False


def test_a_restarted_counter_with_new_source_times_is_kept() -> None:
    d = Deduplicator()
    for i in range(5):
        assert d.seen(ev(ts=NOW + i, seq=i)) is False
    for i in range(5):  # the device restarted its counter: new readings, new times
        assert d.seen(ev(ts=NOW + 100 + i, seq=i)) is False


def test_retained_replay_without_source_time_is_a_duplicate_only_with_the_same_value() -> None:
    d = Deduplicator()
    assert d.seen(ev(ts=NOW, value=21.5), from_source=False, retained=True) is False
    assert d.seen(ev(ts=NOW + 60, value=21.5), from_source=False, retained=True) is True
    assert d.seen(ev(ts=NOW + 61, value=21.5), from_source=False, retained=False) is False  # a live reading
    assert d.seen(ev(ts=NOW + 62, value=22.0), from_source=False, retained=True) is False


def test_memory_is_bounded_per_series_and_in_series() -> None:
    d = Deduplicator(max_series=3, per_series=4)
    for i in range(10):
        d.seen(ev(ts=NOW + i))
    assert d.seen(ev(ts=NOW + 9)) is True
    assert d.seen(ev(ts=NOW + 0)) is False  # forgotten: the store's overwrite covers it
    for name in "abcde":
        d.seen(ev(device=name))
    assert len(d) == 3
    assert d.seen(ev(device="e")) is True
    assert d.seen(ev(device="a")) is False


def test_disabled_with_zero_series() -> None:
    d = Deduplicator(max_series=0)
    assert (d.seen(ev()), d.seen(ev())) == (False, False)


def test_pipeline_counts_duplicates_and_replayed_retained_messages() -> None:
    p = make_pipeline()
    payload = b'{"value":1.5,"ts":1699999999,"unit":"C","seq":4}'
    assert len(p.process("vigil/readings/d/s", payload, NOW).events) == 1
    out = p.process("vigil/readings/d/s", payload, NOW + 1)
    assert (out.events, out.duplicates) == ([], 1)
    # ESPHome retains its states: after a reconnect the broker sends them again, with no source time.
    assert len(p.process("esphome/n/sensor/t/state", b"21.5", NOW, retained=True).events) == 1
    out = p.process("esphome/n/sensor/t/state", b"21.5", NOW + 30, retained=True)
    assert (out.events, out.duplicates) == ([], 1)
    assert len(p.process("esphome/n/sensor/t/state", b"21.5", NOW + 40).events) == 1
    # A zigbee2mqtt message with four metrics replayed: four duplicates.
    z = b'{"temperature":20,"humidity":40,"battery":90,"linkquality":100,"last_seen":1699999990000}'
    p.process("zigbee2mqtt/z", z, NOW)
    assert p.process("zigbee2mqtt/z", z, NOW).duplicates == 4


def test_times_beyond_64_bits_are_not_remembered_and_do_not_crash() -> None:
    d = Deduplicator()
    assert d.seen(ev(ts=1e20)) is False
    assert d.seen(ev(ts=1e20)) is False
    assert d.seen(ev(ts=NOW)) is False and d.seen(ev(ts=NOW)) is True
