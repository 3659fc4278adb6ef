"""Time YAML loading: vigil.core._yaml.load_yaml with libyaml's composer against the pure-Python one, and the
whole rules loader (alerting.rules.load_rules_text), on the largest rules file the loader accepts (512 KB,
at most 30,000 values), 1,000 and 100 rules, and a vigil.yaml-sized file.

    .venv/bin/python bench/yaml_load.py [--rounds 7]                 # libyaml against pure Python, here
    .venv/bin/python bench/yaml_load.py --root /tmp/before            # another checkout's code, same files

Prints the median of interleaved rounds per file. ``--root DIR`` imports DIR's vigil and alerting
(a checkout before a change) so that its figures can be set beside this one's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parents[1]

METRICS = ["temperature", "humidity", "pressure", "battery", "voltage", "current", "power", "energy"]


def rules_text(n: int, message: int = 0) -> str:
    """``n`` rules of a usual shape; ``message`` characters of message each (to fill a file with few values)."""
    lines = ["rules:"]
    for i in range(n):
        lines += [f"  - name: r{i}", f"    match: {{metric: {METRICS[i % len(METRICS)]}, device: \"site{i % 100}-*\"}}",
                  "    above: 90" if i % 4 else "    aggregate: {fn: avg, window: 10m, above: 90}", "    for: 1m"]
        if message:
            lines.append("    message: \"{{ device }} " + "is too warm, see the runbook " * (message // 29) + "\"")
    return "\n".join(lines) + "\n"


def largest_rules(max_chars: int, max_nodes: int) -> str:
    """A rules file just under both bounds: as many rules as the values allow, messages filling the rest."""
    n = max_nodes // 20  # values of one rule with a message (13, or 19 with an aggregate), rounded up
    text = rules_text(n, 1)
    return rules_text(n, max(0, (max_chars - len(text)) // n - 5))


def timed(load: Callable[[str], object], text: str) -> float:
    t = time.perf_counter()
    load(text)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--root", type=Path, default=HERE, help="the checkout whose code to time (default: this one)")
    args = ap.parse_args()
    sys.path.insert(0, str(args.root.resolve()))
    from alerting import rules as rules_mod
    from vigil.core import _yaml

    files = {"rules, largest allowed": largest_rules(rules_mod.MAX_RULES_FILE_CHARS, rules_mod.MAX_RULES_NODES),
             "rules, 1,000": rules_text(1000), "rules, 100": rules_text(100),
             "vigil.yaml (demo)": (HERE / "vigil/app/demo/init/vigil.yaml").read_text()}
    loaders: dict[str, Callable[[str], Any]] = {"load_yaml": _yaml.load_yaml}
    if getattr(_yaml, "HAVE_LIBYAML", False):
        loaders["load_yaml, pure Python"] = lambda text: _yaml.load_yaml(text, fast=False)
    print(f"code of {args.root.resolve()}; PyYAML with libyaml: {getattr(_yaml, 'HAVE_LIBYAML', 'not used')}")
    for name, text in files.items():
        runs = dict(loaders)
        if name.startswith("rules"):
            runs["load_rules_text"] = lambda text: rules_mod.load_rules_text(text, "bench.yaml")
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(args.rounds):  # interleaved, so a noisy neighbour hits each alike
            for k, load in runs.items():
                times[k].append(timed(load, text))
        figures = "  ".join(f"{k} {statistics.median(v) * 1000:8.2f} ms" for k, v in times.items())
        print(f"{name:23} {len(text):>8,} chars  {figures}")


if __name__ == "__main__":
    main()
