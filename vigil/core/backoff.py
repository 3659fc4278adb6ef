"""The one retry-backoff formula: exponential, capped, with jitter. Standard library only (the edge imports it).

The delay before attempt ``n`` (1, 2, ...) is drawn from ``[top/2, top]``, ``top = min(cap, first * 2**(n-1))``:
the jitter spreads many clients that lost the same server, and the lower half-bound keeps a retry from
coming at once after a failure.
"""

from __future__ import annotations

import random
from typing import Optional

__all__ = ["BROKER_RECONNECT_CAP", "backoff_delay"]

#: the longest wait of the bridge and the rule engine before they try their broker again: both are on the
#: path from a reading to a person, and a try costs the broker one TCP connect; the edge keeps the default
#: minute (hundreds of devices reconnect to a broker that was restarted)
BROKER_RECONNECT_CAP = 5.0


def backoff_delay(attempt: int, cap: float = 60.0, *, first: float = 1.0,
                  rng: Optional[random.Random] = None) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): jittered, doubling from ``first``, at most ``cap``."""
    # the exponent is bounded: 2.0 ** 1100 overflows a float, and any real cap is reached long before
    top = min(cap, first * 2.0 ** min(max(attempt, 1) - 1, 64))
    return (rng or random).uniform(top / 2, top)
