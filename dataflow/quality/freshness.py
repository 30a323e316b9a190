"""Freshness against the schedule: the window of the built-in rulesets' freshness rule.

A table is stale when its newest row is older than the window — the time it can legitimately be
old at an evaluation: the longest wait for the next run plus the time the data itself lags::

    window = longest gap between two consecutive scheduled runs over the next 7 days
           + longest market closure around now (the data's own lag)

* **Schedule gap**: the fire times of ``dataflow.yaml``'s ``schedule.jobs`` that bring new data
  — enabled jobs whose command is ``run`` or ``ingest`` (the default command is ``run``) with a
  ``rate(...)`` or ``cron(...)`` expression; one-time ``at(...)`` jobs do not recur — merged,
  over the next 7 days (plus each job's first fire after them, so a weekly job counts a week).
  Without such a schedule (runs by hand, or fewer than two fires ahead), the gap is
  :data:`DEFAULT_RUN_GAP`: one run a day.
* **Data lag**: markets close at weekends and on holidays, and a daily bar is stamped at 00:00
  UTC of its trading day, so just before the next session opens the newest bar is as old as the
  time from the last trading day's 00:00 UTC to that open. The lag is the longest such stretch
  of the slowest calendar of the default universe — ``us_equity`` (NYSE hours and holidays, the
  simulator's trading calendar :mod:`dataflow.sources.twelvedata.simulator.calendar`) — among
  the closures within 7 days of now: a weekend is 86.5 h (Friday 00:00 UTC to Monday 14:30
  UTC), a long weekend 110.5 h.

The built-in rulesets carry the rule with a literal window and a marker comment at the end of
its line, ``# dataflow:freshness-window-hours`` (or ``-days``, for ``eod``'s date column).
:func:`ruleset_text` rewrites that number with the derived window before the ruleset is parsed
— only for the built-in files: a project's own ``quality/<table>.dqdl`` (a copy included) is
evaluated as written. The files parse as they are (``dataflow dq parse``), and the effective
rule is the one ``dataflow dq check`` and the DQ history show.

Example:
    >>> import datetime as dt
    >>> monday = dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC)
    >>> freshness_window([], now=monday).hours
    111
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dataflow.quality.policy import BUILTIN_RULESETS

if TYPE_CHECKING:
    from dataflow.config import JobSpec, Settings
    from dataflow.schedule.expressions import ScheduleExpression

HORIZON = dt.timedelta(days=7)
"""How far ahead the schedule is read, and how far around now market closures are."""
DEFAULT_RUN_GAP = dt.timedelta(hours=24)
"""The schedule gap assumed when no recurring job brings data: one run a day."""
DATA_COMMANDS = ("run", "ingest")
"""Jobs running these commands bring new data; others (transform, crawl, ...) do not."""
CALENDAR = "us_equity"
"""The trading calendar whose closures make the data's lag (the slowest of the universe)."""
MARKER = re.compile(
    r"(?P<op><=|<)\s*(?P<value>\d+(?:\.\d+)?)(?P<rest>\s*,?\s*#\s*dataflow:freshness-window-"
    r"(?P<unit>hours|days)\b)"
)
"""``<= 96, # dataflow:freshness-window-hours``: the number the window replaces."""

__all__ = [
    "DEFAULT_RUN_GAP",
    "FreshnessWindow",
    "data_lag",
    "freshness_window",
    "ruleset_text",
    "schedule_gap",
]


@dataclass(frozen=True)
class FreshnessWindow:
    """The freshness window and where it came from.

    Attributes:
        gap: the longest wait between two runs (the schedule's, or the default).
        lag: the longest market closure around now.
        scheduled: the gap comes from ``schedule.jobs`` (False: :data:`DEFAULT_RUN_GAP`).
    """

    gap: dt.timedelta
    lag: dt.timedelta
    scheduled: bool

    @property
    def hours(self) -> int:
        """The window in whole hours, rounded up."""
        return math.ceil((self.gap + self.lag).total_seconds() / 3600)

    @property
    def days(self) -> int:
        """The window in whole days, rounded up (for rules on a date column)."""
        return math.ceil((self.gap + self.lag).total_seconds() / 86_400)


def schedule_gap(jobs: Sequence[JobSpec], *, now: dt.datetime) -> dt.timedelta | None:
    """The longest gap between consecutive fires of the data-bringing jobs over the next week.

    Returns:
        None when fewer than two such fires are ahead (no recurring schedule).

    Example:
        >>> from dataflow.config import JobSpec
        >>> jobs = [JobSpec(name="daily", schedule="cron(0 22 ? * MON-FRI *)")]
        >>> schedule_gap(jobs, now=dt.datetime(2026, 11, 25, tzinfo=dt.UTC))
        datetime.timedelta(days=3)
    """
    from dataflow.schedule.expressions import AtExpression, parse_expression

    fires: set[dt.datetime] = set()
    for job in jobs:
        command = job.command[0] if job.command else "run"
        if not job.enabled or command not in DATA_COMMANDS:
            continue
        expression = parse_expression(job.schedule)
        if isinstance(expression, AtExpression):
            continue
        fires.update(_fires(job, expression, now))
    ordered = sorted(fires)
    if len(ordered) < 2:
        return None
    # A gap counts when it starts within the horizon: past it, only each job's first fire is
    # known, and the space between those is no gap of the schedule.
    end = now + HORIZON
    return max(b - a for a, b in itertools.pairwise(ordered) if a <= end)


def _fires(job: JobSpec, expression: ScheduleExpression, now: dt.datetime) -> list[dt.datetime]:
    """The job's fires over the horizon and its first one after it, in UTC."""
    from dataflow.schedule.expressions import next_fire_times

    end = now + HORIZON
    found: list[dt.datetime] = []
    after = now
    while True:
        batch = next_fire_times(
            expression, tz=job.timezone, after=after, count=1000,
            start_date=job.start_date, end_date=job.end_date,
        )  # fmt: skip
        for when in batch:
            found.append(when.astimezone(dt.UTC))
            if when > end:
                return found
        if len(batch) < 1000:
            return found
        after = batch[-1]


def data_lag(now: dt.datetime, calendar: str = CALENDAR) -> dt.timedelta:
    """The longest closure of ``calendar`` within :data:`HORIZON` of ``now``.

    A closure runs from 00:00 UTC of a trading day (the stamp of its daily bar) to the open of
    the next session.

    Example:
        >>> data_lag(dt.datetime(2026, 11, 19, tzinfo=dt.UTC))  # a plain weekend
        datetime.timedelta(days=3, seconds=52200)
    """
    from dataflow.sources.twelvedata.simulator.calendar import session

    today = now.astimezone(dt.UTC).date()
    # Ten days either side of the horizon always hold a session (no closure is that long).
    days = [today + dt.timedelta(days=n) for n in range(-HORIZON.days - 10, HORIZON.days + 11)]
    sessions = [s for s in (session(calendar, d) for d in days) if s is not None]
    low, high = now - HORIZON, now + HORIZON
    longest = dt.timedelta(0)
    for previous, following in itertools.pairwise(sessions):
        start = dt.datetime.combine(previous.day, dt.time(), dt.UTC)
        reopen = dt.datetime.fromtimestamp(following.open, dt.UTC)
        if reopen >= low and start <= high:
            longest = max(longest, reopen - start)
    return longest


def freshness_window(jobs: Sequence[JobSpec], *, now: dt.datetime | None = None) -> FreshnessWindow:
    """The window of the freshness rule for a schedule (see the module docstring).

    Example:
        >>> from dataflow.config import JobSpec
        >>> hourly = [JobSpec(name="h", schedule="rate(1 hour)")]
        >>> freshness_window(hourly, now=dt.datetime(2026, 11, 19, tzinfo=dt.UTC)).hours
        88
    """
    now = now or dt.datetime.now(dt.UTC)
    gap = schedule_gap(jobs, now=now)
    return FreshnessWindow(
        gap=gap if gap is not None else DEFAULT_RUN_GAP,
        lag=data_lag(now),
        scheduled=gap is not None,
    )


def ruleset_text(
    path: Path, settings: Settings | None = None, *, now: dt.datetime | None = None
) -> str:
    """The text of a ruleset file as evaluated: a built-in one gets its freshness window.

    Args:
        path: the ``.dqdl`` file. Only files of the built-in folder are rewritten.
        settings: the project (its ``schedule.jobs``); None: no schedule.
        now: the instant of the evaluation (default: now).

    Raises:
        ConfigError: the file cannot be read.

    Example:
        >>> from dataflow.quality.policy import BUILTIN_RULESETS
        >>> "dataflow:freshness-window" in ruleset_text(BUILTIN_RULESETS / "quotes.dqdl")
        True
    """
    from dataflow.errors import ConfigError

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read ruleset {path}: {exc.strerror or exc}") from exc
    if not _is_builtin(path) or MARKER.search(text) is None:
        return text
    jobs = settings.schedule.jobs if settings is not None else []
    window = freshness_window(jobs, now=now)

    def substitute(match: re.Match[str]) -> str:
        value = window.days if match.group("unit") == "days" else window.hours
        return f"{match.group('op')} {value}{match.group('rest')}"

    return MARKER.sub(substitute, text)


def _is_builtin(path: Path) -> bool:
    try:
        return path.resolve().parent == BUILTIN_RULESETS.resolve()
    except OSError:
        return False
