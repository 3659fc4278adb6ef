"""Time to verify a dashboard password: the older scrypt hashes against today's argon2id.

Interleaved rounds, medians (the machine is shared; expect ±30 % between runs):

    .venv/bin/python bench/dashboard/passwords.py
    .venv/bin/python bench/dashboard/passwords.py --rounds 41
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from dashboard.passwords import LegacyScrypt, hash_password, verify_password  # noqa: E402

PASSWORD = "correct horse battery"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=21)
    args = ap.parse_args()
    hashes = {"scrypt N=2^14 r=8 p=1 (before)": LegacyScrypt().hash(PASSWORD),
              "argon2id m=19 MiB t=2 p=1 (now)": hash_password(PASSWORD)}
    times: dict[str, list[float]] = {name: [] for name in hashes}
    for _ in range(args.rounds):
        for name, stored in hashes.items():
            t = time.perf_counter()
            assert verify_password(PASSWORD, stored)
            times[name].append((time.perf_counter() - t) * 1000)
    for name, ms in times.items():
        print(f"{name:34} verify: median {statistics.median(ms):5.1f} ms  (min {min(ms):.1f}, max {max(ms):.1f})")


if __name__ == "__main__":
    main()
