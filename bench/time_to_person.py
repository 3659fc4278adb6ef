"""Time to a person (issue 21): a power cut, with the settings Vigil ships.

    .venv/bin/python bench/time_to_person.py                    # 20 freezers over 30 s, shipped, then tuned
    .venv/bin/python bench/time_to_person.py --freezers 50 --spread 60 --runs 3
    .venv/bin/python bench/time_to_person.py --group-wait 10s --only group_wait  # another group_wait

20 freezers on one rule (``above: -15``, no ``for:``) turn warm at random moments over 30 s, each
reporting every second, through a private Mosquitto (the shipped queue settings), `vigil bridge`,
influxd and `vigil alerting`, each its own process, to a local HTTP receiver for apprise's json://.
For each freezer: the time from its first warm reading (published) to the first message that names
it; printed as median and slowest, with the number of messages. Runs the rules file with no
``grouping:`` block (the shipped settings), then tuned for speed (one group per series, group_wait 0s).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.chain import Chain, Hook  # noqa: E402
from tests.support.freezers import Burst, Figures, freezer_rules, timed  # noqa: E402
from tests.support.services import Influxd, Mosquitto, shipped_broker_settings  # noqa: E402

SETTINGS = {
    "shipped": "",
    "tuned": "grouping: {group_by: [rule, series], group_wait: 0s}\n",
}


def run_once(work: Path, broker: Mosquitto, influxd: Influxd, grouping: str, freezers: int, spread: float,
             seed: int) -> Figures:
    hook = Hook()
    bodies = timed(hook)
    work.mkdir(parents=True)
    chain = Chain(work, broker, influxd, influxd.create_database(f"ttp_{work.name}"), hook,
                  rules=freezer_rules(hook.url, grouping=grouping))
    try:
        chain.start()
        return Burst(broker, bodies, count=freezers, spread=spread, seed=seed).run(timeout=120, settle=3)
    finally:
        chain.close()
        hook.down()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--freezers", type=int, default=20)
    ap.add_argument("--spread", type=float, default=30.0, help="seconds over which they turn warm")
    ap.add_argument("--runs", type=int, default=1, help="runs of each setting (seeds 21, 22, ...)")
    ap.add_argument("--group-wait", help="also run the shipped settings with this group_wait (e.g. 10s)")
    ap.add_argument("--only", choices=[*sorted(SETTINGS), "group_wait"], help="run one setting")
    args = ap.parse_args()
    settings = dict(SETTINGS)
    if args.group_wait:
        settings["group_wait"] = f"grouping: {{group_wait: {args.group_wait}}}\n"
    with tempfile.TemporaryDirectory(prefix="vigil-bench-ttp-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "mq", extra_config="\n".join(shipped_broker_settings()) + "\n")
        influxd = Influxd(work / "influxd")
        broker.start()
        influxd.start()
        try:
            for name, grouping in settings.items():
                if args.only and name != args.only:
                    continue
                for run in range(args.runs):
                    result = run_once(work / f"{name}-{run}", broker, influxd, grouping, args.freezers,
                                      args.spread, 21 + run)
                    print(f"{name:8} run {run + 1}: {result}"
                          + (f"; NOT TOLD: {', '.join(result.missing)}" if result.missing else ""), flush=True)
        finally:
            influxd.stop()
            broker.stop()


if __name__ == "__main__":
    main()
