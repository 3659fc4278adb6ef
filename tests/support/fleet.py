"""A fleet of devices with their health metrics as the formats store them (battery %, rssi dBm,
linkquality lqi, uptime s), for the Fleet page's tests and bench: most are healthy, and every
``every``-th device has one known problem, so the page's counts are known in advance."""

from __future__ import annotations

from vigil.core.event import Event

DAY = 86400.0
# The problem of device i is PROBLEMS[(i // every) % len(PROBLEMS)] when i % every == every - 1.
PROBLEMS = ("low battery", "falling battery", "weak signal", "reboots", "stale")


def problem_of(i: int, every: int) -> str:
    return PROBLEMS[(i // every) % len(PROBLEMS)] if i % every == every - 1 else ""


def fleet_events(now: float, devices: int, every: int = 10, days: float = 7.0, step: float = 3600.0) -> list[Event]:
    """``days`` of hourly readings of ``devices`` devices named ``dev-0000``...: zigbee ones (even: battery,
    linkquality) and wifi ones (odd: battery, rssi, uptime)."""
    out: list[Event] = []
    n = int(days * DAY / step)
    for i in range(devices):
        name, problem, zigbee = f"dev-{i:04}", problem_of(i, every), i % 2 == 0
        level = 12.0 if problem == "low battery" else 80.0 - (i % 7)
        fall = 3.0 if problem == "falling battery" else 0.0  # % a day
        if problem == "falling battery":
            level = 70.0
        up, last = 5e5 + i, n if problem != "stale" else n - 10
        for k in range(last):
            ts = now - (n - k) * step + 1
            battery = round(level - fall * (k * step / DAY)) + float(k % 2)  # jitters by 1 %
            out.append(Event(name, "main", "battery", battery, ts, "%"))
            if zigbee:
                lqi = 18.0 if problem == "weak signal" else 120.0 + (k % 5)
                out.append(Event(name, "main", "linkquality", lqi, ts, "lqi"))
            else:
                rssi = -88.0 if problem == "weak signal" else -60.0 - (k % 3)
                out.append(Event(name, "Wifi", "rssi", rssi, ts, "dBm"))
                # reboots: 4 in the last day (every 5 hours), else one steady run
                hours_left = n - k
                if problem == "reboots" and hours_left <= 20 and hours_left % 5 == 0:
                    up = 60.0
                else:
                    up += step
                out.append(Event(name, "system", "uptime", up, ts, "s"))
    return out
