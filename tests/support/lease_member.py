"""One lease member as a real process, for the failover tests: ``python -m tests.support.lease_member URL ID
[PARTITIONS TTL INTERVAL]`` steps alerting.lease.Leases every INTERVAL s and prints one JSON line per step
({"member", "t", "held": {p: epoch}, "gained", "lost"} or {"member", "t", "error"}); SIGTERM leaves cleanly."""

from __future__ import annotations

import json
import signal
import sys
import time

from alerting.lease import Leases


def main(argv: list[str]) -> None:
    url, member = argv[0], argv[1]
    partitions = int(argv[2]) if len(argv) > 2 else 16
    ttl = float(argv[3]) if len(argv) > 3 else 10.0
    interval = float(argv[4]) if len(argv) > 4 else 2.0
    leases = Leases(url, member, partitions=partitions, ttl=ttl, interval=interval)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    while not stopping:
        began = time.monotonic()
        try:
            change = leases.step()
            line = {"member": member, "t": time.time(), "held": leases.held, "gained": change.gained,
                    "lost": sorted(change.lost)}
        except Exception as error:
            line = {"member": member, "t": time.time(), "error": str(error)}
        print(json.dumps(line), flush=True)
        time.sleep(max(0.0, interval - (time.monotonic() - began)))
    leases.leave()
    print(json.dumps({"member": member, "t": time.time(), "left": True}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
