"""Alert conditions, one module each; :func:`build_condition` turns a rule's YAML into one."""

from __future__ import annotations

from ._base import Condition, Ctx, SeriesData
from .aggregate import Aggregate
from .anomaly import Anomaly
from .build import OnSeries, build_condition
from .compound import Compound
from .drift import Drift
from .forecast import Forecast
from .jump import Jump, Noise
from .nodata import NoData
from .rate import Rate
from .stale import Stale
from .status import STATUS_METRIC, STATUS_SENSOR, Offline, status_series_id
from .stuck import Stuck
from .threshold import Threshold

__all__ = [
    "STATUS_METRIC",
    "STATUS_SENSOR",
    "Aggregate",
    "Anomaly",
    "Compound",
    "Condition",
    "Ctx",
    "Drift",
    "Forecast",
    "Jump",
    "NoData",
    "Noise",
    "Offline",
    "OnSeries",
    "Rate",
    "SeriesData",
    "Stale",
    "Stuck",
    "Threshold",
    "build_condition",
    "status_series_id",
]
