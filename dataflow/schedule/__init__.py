"""Schedules: EventBridge Scheduler expressions and the `dataflow schedule` daemon.

Example:
    >>> import datetime as dt
    >>> from dataflow.schedule import next_fire_times
    >>> t0 = dt.datetime(2024, 6, 3, tzinfo=dt.UTC)  # a Monday
    >>> [t.isoformat() for t in next_fire_times("cron(0 9 ? * 2#1 *)", after=t0, count=2)]
    ['2024-06-03T09:00:00+00:00', '2024-07-01T09:00:00+00:00']
"""

from dataflow.schedule.expressions import (
    AtExpression,
    CronExpression,
    RateExpression,
    ScheduleExpression,
    next_fire_times,
    parse_expression,
)

__all__ = [
    "AtExpression",
    "CronExpression",
    "RateExpression",
    "ScheduleExpression",
    "next_fire_times",
    "parse_expression",
]
