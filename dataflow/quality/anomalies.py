"""DetectAnomalies: is this run's metric an outlier against its own history?

Glue uses an undocumented ML model; Dataflow uses a documented, robust statistic instead — the
modified z-score of Iglewicz and Hoaglin over the last ``WINDOW`` values of the metric::

    z = 0.6745 * (x - median) / MAD        MAD = median(|v - median|)

and flags ``|z| > 3.5``. The median and MAD are not dragged by earlier outliers, so one bad
run does not hide the next. When MAD is 0 (a flat history) the mean absolute deviation times
1.2533 stands in for it (Iglewicz-Hoaglin's fallback); when that is 0 too, any change from the
constant is an anomaly. With fewer than ``MIN_HISTORY`` earlier values there is no verdict yet:
the rule passes and says how much history it has.

Example:
    >>> detect(130.0, [100.0, 101.0, 99.0, 100.0, 102.0]).anomalous
    True
    >>> detect(101.0, [100.0, 101.0, 99.0, 100.0, 102.0]).anomalous
    False
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

MIN_HISTORY = 3
"""Earlier values needed before a verdict."""
WINDOW = 20
"""Earlier values looked at (the most recent)."""
THRESHOLD = 3.5
"""|modified z| above which a value is an anomaly (Iglewicz & Hoaglin, 1993)."""


@dataclass(frozen=True)
class Detection:
    """The verdict on one value: ``anomalous`` is None without enough history."""

    value: float
    anomalous: bool | None
    score: float | None
    message: str


def detect(value: float, history: list[float], *, threshold: float = THRESHOLD) -> Detection:
    """Judge ``value`` against ``history`` (earlier values, most recent first)."""
    past = history[:WINDOW]
    if len(past) < MIN_HISTORY:
        return Detection(
            value,
            None,
            None,
            f"Not enough history for anomaly detection: {len(past)} of {MIN_HISTORY} earlier "
            "values; the rule passes until there are enough",
        )
    median = statistics.median(past)
    mad = statistics.median(abs(v - median) for v in past)
    if mad > 0:
        score = 0.6745 * (value - median) / mad
    else:
        mean_ad = statistics.fmean(abs(v - median) for v in past)
        if mean_ad > 0:
            score = (value - median) / (1.2533 * mean_ad)
        else:
            score = 0.0 if value == median else float("inf") if value > median else float("-inf")
    anomalous = abs(score) > threshold
    verdict = "is an anomaly" if anomalous else "is within the expected range"
    return Detection(
        value,
        anomalous,
        score,
        f"Value {value:g} {verdict}: robust z-score {score:.2f} (median {median:g} of the last "
        f"{len(past)} values, limit {threshold:g})",
    )


__all__ = ["MIN_HISTORY", "THRESHOLD", "WINDOW", "Detection", "detect"]
