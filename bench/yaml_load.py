"""Time vigil._yaml.load_yaml with libyaml's composer against the pure-Python one, on the largest rules
file the loader accepts (512 KB), a 100-rule file and a vigil.yaml-sized file; checks both give the same
data and lines.

    .venv/bin/python bench/yaml_load.py [--rounds 7] [--against /work/main]

Prints the median of interleaved rounds per file and loader, and the ratio. With ``--against DIR``,
DIR's vigil/_yaml.py (another checkout: the code before a change) against this one instead.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerting.rules import MAX_RULES_FILE_CHARS
from bench.rules.throughput import rules_text
from vigil._yaml import HAVE_LIBYAML, load_yaml

ROOT = Path(__file__).resolve().parents[1]


def largest_rules() -> str:
    """The most rules (of bench/rules/throughput.py's shape) that stay within the rules-file bound."""
    lo, hi = 1, 20_000
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if len(rules_text(mid, True)) <= MAX_RULES_FILE_CHARS else (lo, mid - 1)
    return rules_text(lo, True)


def timed(load: Callable[[str], object], text: str) -> list[float]:
    t = time.perf_counter()
    load(text)
    return [time.perf_counter() - t]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--against", type=Path, help="another checkout whose load_yaml to compare with this one's")
    args = ap.parse_args()
    if not HAVE_LIBYAML:
        sys.exit("this PyYAML has no libyaml: nothing to compare")
    first: Callable[[str], Any] = lambda text: load_yaml(text, fast=False)  # noqa: E731
    labels = ("python", "libyaml")
    if args.against:
        spec = importlib.util.spec_from_file_location("other_yaml", args.against / "vigil/_yaml.py")
        assert spec is not None and spec.loader is not None
        other = importlib.util.module_from_spec(spec)
        sys.modules["other_yaml"] = other  # dataclasses look their module up
        spec.loader.exec_module(other)
        first, labels = other.load_yaml, ("other", "this")
    files = {"rules, 512 KB bound": largest_rules(), "rules, 100": rules_text(100, True),
             "vigil.yaml (demo)": (ROOT / "vigil/demo/init/vigil.yaml").read_text()}
    for name, text in files.items():
        assert load_yaml(text) == first(text), name
        fast: list[float] = []
        slow: list[float] = []
        for _ in range(args.rounds):  # interleaved, so a noisy neighbour hits both
            slow += timed(first, text)
            fast += timed(load_yaml, text)
        f, s = statistics.median(fast), statistics.median(slow)
        print(f"{name:22} {len(text):>9,} chars  {labels[0]} {s * 1000:9.2f} ms  {labels[1]} {f * 1000:9.2f} ms  "
              f"{s / f:5.2f} x")


if __name__ == "__main__":
    main()
