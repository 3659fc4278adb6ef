"""The one retry-backoff formula: exponential, capped, with jitter. Standard library only (the edge imports it).

The delay before attempt ``n`` (1, 2, ...) is drawn from ``[top/2, top]``, ``top = min(cap, first * 2**(n-1))``:
the jitter spreads many clients that lost the same server, and the lower half-bound keeps a retry from
coming at once after a failure.

:class:`Rotation` applies it to a list of brokers (failover): the next broker is tried at once, and the
formula's wait comes only after a whole round of the list failed.
"""

from __future__ import annotations

import random
import time
from typing import Callable, Optional

__all__ = ["BROKER_RECONNECT_CAP", "STABLE_CONNECTION", "Rotation", "backoff_delay"]

#: a connection that ends sooner than this after it was made does not start the backoff over: a broker that
#: accepts and drops at once (flapping, overloaded) is then retried ever more slowly, not hammered
STABLE_CONNECTION = 10.0

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


class Rotation:
    """Which of ``count`` brokers to try, and how long to wait first.

    Call :meth:`connected` when a connection is made and :meth:`failed` when one could not be made or was
    lost; ``index`` is then the broker to try next, after the delay :meth:`failed` returned: 0 until every
    broker of the round failed, then :func:`backoff_delay` of the rounds failed so far. The count starts
    over only once a connection held :data:`STABLE_CONNECTION` seconds. One broker: the plain backoff.
    """

    def __init__(self, count: int, cap: float = 60.0, *, first: float = 1.0, stable: float = STABLE_CONNECTION,
                 rng: Optional[random.Random] = None, clock: Callable[[], float] = time.monotonic) -> None:
        if count < 1:
            raise ValueError("a rotation needs at least one broker")
        self.count, self.cap, self.first, self.stable = count, cap, first, stable
        self.rng, self.clock = rng, clock
        self.index = 0  # the broker to try (or in use)
        self.attempt = 0  # rounds failed since the last stable connection
        self._tried = 0  # brokers failed in this round
        self._since: Optional[float] = None  # when the current connection was made

    def connected(self) -> None:
        self._since = self.clock()
        self._tried = 0

    def failed(self) -> float:
        """The broker at ``index`` failed or its connection was lost: move on; the seconds to wait before trying."""
        if self._since is not None:
            if self.clock() - self._since >= self.stable:
                self.attempt = 0
            self._since = None
        self.index = (self.index + 1) % self.count
        self._tried += 1
        if self._tried < self.count:
            return 0.0
        self._tried = 0
        self.attempt += 1
        return backoff_delay(self.attempt, self.cap, first=self.first, rng=self.rng)
