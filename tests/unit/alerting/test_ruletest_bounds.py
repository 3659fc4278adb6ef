"""The rule-test notation refuses a series over its bound before building it (issue 22)."""

from __future__ import annotations

import tracemalloc

import pytest

from alerting.ruletest import parse_values

_LIMIT = 1_000_000


def _peak_bytes(text: str) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="1,000,000 values"):
            parse_values(text)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("text", ["1x20000000", "0+1x20000000", "1x600000 2x600000", "1x" + "9" * 5000])
def test_a_series_over_the_bound_is_refused_before_it_is_built(text: str) -> None:
    # 20,000,000 repeats used to take 320 MB (tracemalloc's peak) before the bound refused them;
    # now at most what the bound allows is built: 1,000,000 values, a list of 8 MB.
    assert _peak_bytes(text) < 16_000_000


def test_the_bound_itself_is_allowed() -> None:
    assert len(parse_values(f"1x{_LIMIT}")) == _LIMIT
    assert len(parse_values(f"0+1x{_LIMIT - 1}")) == _LIMIT
    with pytest.raises(ValueError, match="1,000,000 values"):
        parse_values(f"0+1x{_LIMIT}")
    with pytest.raises(ValueError, match="1,000,000 values"):
        parse_values(f"1x{_LIMIT} 2")
