"""Spreading the rule engine: instance I of N owns the series whose stable hash is I modulo N."""

from __future__ import annotations

import zlib

__all__ = ["owns", "parse_partition", "partition_of"]


def partition_of(series_id: str, count: int) -> int:
    """The partition (0 .. count-1) of ``series_id``: crc32 of its UTF-8 bytes modulo ``count``, the same in every
    process, machine and Python version (unlike ``hash()``, which is salted per process)."""
    return zlib.crc32(series_id.encode("utf-8")) % count


def owns(series_id: str, partition: tuple[int, int]) -> bool:
    """Whether instance I of N owns ``series_id``: its :func:`partition_of` N is I."""
    index, count = partition
    return count <= 1 or partition_of(series_id, count) == index


def parse_partition(text: str) -> tuple[int, int]:
    """``"1/3"`` -> (1, 3); ValueError with a sentence otherwise."""
    try:
        i_text, n_text = text.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise ValueError(f"expected a partition I/N such as 0/2, got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"expected 0 <= I < N in partition I/N, got {text!r}")
    return i, n
