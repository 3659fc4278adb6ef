"""partition_of: the lease layer's partition of a series, stable everywhere, and the same cut as --partition I/N."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from alerting.lease import partition_of
from alerting.partition import owns


def test_partition_of_is_crc32_pinned_and_the_same_in_a_fresh_interpreter() -> None:
    # pinned: a change of hash would move every series of a running deployment to another partition
    assert [partition_of(s, 16) for s in ("freezer-1/temp", "site-a/room-2/humidity", "é/ü")] == [5, 1, 14]
    code = "from alerting.lease import partition_of; print(partition_of('freezer-1/temp', 16))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == "5"


@pytest.mark.parametrize("count", [1, 2, 3, 16])
def test_owns_and_partition_of_agree(count: int) -> None:
    for n in range(500):
        series = f"site-{n % 7}/sensor-{n}"
        owners = [i for i in range(count) if owns(series, (i, count))]
        assert owners == [partition_of(series, count)] and 0 <= owners[0] < count
