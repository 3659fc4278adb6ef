"""Acknowledgements and corrective-action notes, the engine's side (a part of :class:`alerting.engine.Engine`).

An acknowledgement stops repeats and escalation of the alert's current excursion; a latched alert that is
CLEARED resolves with it. One naming an ``episode`` (the excursion's ``since``, as a link carries it) applies
only while that excursion is the alert's current one. A note is a corrective action, recorded in the ledger
(kind ``note``) for an alert that exists or fired once; its id makes a redelivered note count once. Each is
committed with the state it changes, its ledger rows in the same transaction.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Optional

from alerting import excursion
from alerting.conditions import Ctx, SeriesData
from alerting.state import AlertRecord, StateDB
from alerting.transition import AlertState, Transition

if TYPE_CHECKING:
    from alerting.index import CompiledRule, RuleIndex
    from vigil.core.clock import Clock

__all__ = ["ACKABLE", "Acknowledging"]

log = logging.getLogger(__name__)

#: the states an acknowledgement applies to
ACKABLE = (AlertState.FIRING, AlertState.FLAPPING, AlertState.PENDING, AlertState.CLEARED)


class Acknowledging:
    """What the engine does when people act on an alert; the attributes are the engine's."""

    if TYPE_CHECKING:
        alerts: dict[str, AlertRecord]
        state: Optional[StateDB]
        clock: Clock
        index: RuleIndex
        series: dict[str, SeriesData]
        scratch: dict[str, dict[str, object]]
        _rows: list[tuple[str, str, dict[str, object], float]]
        _dirty_alerts: dict[str, AlertRecord]

        def _lookup(self, sid: str) -> Optional[SeriesData]: ...
        def _emit(self, c: CompiledRule, rec: AlertRecord, ctx: Ctx, state: AlertState, at: float) -> None: ...
        def _commit(self, force: bool = False, learned: bool = False) -> list[Transition]: ...

    def acknowledge(self, rule: str, series: str, by: str, comment: str = "", episode: Optional[float] = None,
                    via: str = "mqtt", note: Optional[str] = None) -> Optional[excursion.Acked]:
        """Acknowledge an alert (firing, flapping, pending, or cleared: that one resolves now). None when there
        is no such alert, when ``episode`` (its excursion's ``since``) names another excursion than the
        current one (a stale link), or when the same acknowledgement was already recorded (a redelivery)."""
        rec = self.alerts.get(f"{rule}/{series}")
        if rec is None or rec.state not in ACKABLE:
            return None
        # (an alert that fired before episodes were kept: its pending start is its since)
        current = rec.episode if rec.state != AlertState.PENDING and rec.episode is not None else rec.pending_since
        if episode is not None and (current is None or abs(current - episode) > excursion.EPISODE_TOLERANCE):
            log.info("acknowledgement of %s for the excursion of %s ignored: its current one began at %s",
                     rec.key, episode, current)
            return None
        if rec.acked_by == by and rec.ack_comment == comment:
            return None  # the same acknowledgement again (a message delivered twice)
        now = self.clock.now()
        rec.acked_by, rec.ack_comment, rec.acked_at = by, comment, now
        self._rows.append(("acked", rec.key, {"by": by, "comment": comment, "via": via, "episode": current,
                                              "at": now}, now))
        if note:
            self._note_row(rec.key, excursion.note_id(rec.key, current, by, note), by, note, now)
        if rec.state == AlertState.CLEARED:
            c = self.index.get(rec.rule)
            data = self.series.get(rec.series)
            if c is not None and data is not None:
                ctx = Ctx(now, data, self._lookup, self.scratch.setdefault(rec.key, {}))
                self._emit(c, rec, ctx, AlertState.RESOLVED, now)
        self._dirty_alerts[rec.key] = rec
        return excursion.Acked(rec, self._commit(force=True))

    def note(self, rule: str, series: str, note_id: str, by: str, text: str) -> bool:
        """Record a corrective-action note on an alert that exists or once fired; False when there is no such
        alert, no state file to keep it in, or a note with this id was recorded already (a redelivery)."""
        key = f"{rule}/{series}"
        if self.state is None or (key not in self.alerts and not self.state.has_fired(key)) \
                or self.state.has_note(key, note_id):
            return False
        self._note_row(key, note_id, by, text, self.clock.now())
        self._commit(force=True)
        return True

    def notes(self, rec: AlertRecord, limit: int = 20) -> list[dict[str, object]]:
        """The last notes written since the alert's current excursion began (for its retained state)."""
        if self.state is None:
            return []
        since = rec.episode if rec.episode is not None else rec.pending_since
        return self.state.notes(rec.key, since if since is not None else rec.state_since, limit)

    def latched(self, rule: str) -> bool:
        c = self.index.get(rule)
        return c is not None and c.rule.spec.latch

    def _note_row(self, key: str, note_id: str, by: str, text: str, at: float) -> None:
        self._rows.append(("note", key, {"id": note_id, "by": by, "text": text, "at": at}, at))
