"""Alarm actions: what an alarm does when it changes state (CloudWatch's AlarmActions et al.).

Four kinds (``ActionSpec.type``):

* ``log``: one WARNING line on the ``dataflow.monitor.alarms`` logger.
* ``webhook``: a JSON POST (httpx) of the notification CloudWatch sends through SNS
  (``AlarmName``, ``NewStateValue``, ``NewStateReason``, ``Trigger`` ...); ``format: slack``
  posts a Slack incoming-webhook payload (``text`` + ``attachments``) instead.
* ``email``: a plain-text message over SMTP (smtplib) to ``smtp_host:smtp_port``.
* ``command``: runs ``command`` (argv, no shell) with the notification as JSON on stdin and
  ``DATAFLOW_ALARM_NAME``, ``DATAFLOW_ALARM_STATE``, ``DATAFLOW_ALARM_OLD_STATE``,
  ``DATAFLOW_ALARM_REASON`` in its environment.

Actions fire on transitions only (the caller decides when); a failing action is logged and
reported as a failed :class:`ActionOutcome`, never raised. Targets are described without
secrets: a webhook by scheme, host and port only (Slack webhook paths *are* credentials), a
command by its program name; Dataflow's own secrets (``TWELVEDATA_API_KEY``, ``DATAFLOW__*``)
are removed from a command's environment.

Example:
    >>> from dataflow.config import ActionSpec, AlarmSpec, MetricSpec
    >>> spec = AlarmSpec(name="a", metric=MetricSpec(namespace="N", name="M"))
    >>> event = AlarmEvent(spec, "OK", "ALARM", "Threshold Crossed: ...", {})
    >>> fire_actions([ActionSpec(type="log")], event)[0].ok
    True
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import smtplib
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from dataflow.config import API_KEY_ENV, ENV_PREFIX, ActionSpec, AlarmSpec
from dataflow.metadata.schema import utcnow
from dataflow.monitor.logs import redact

log = logging.getLogger("dataflow.monitor.alarms")

#: Seconds an action may take (HTTP request, SMTP session, command).
DEFAULT_TIMEOUT = 10.0

_COLORS = {"ALARM": "danger", "OK": "good", "INSUFFICIENT_DATA": "warning"}


@dataclass(frozen=True)
class AlarmEvent:
    """A state change of an alarm, as actions see it."""

    spec: AlarmSpec
    old_state: str
    new_state: str
    reason: str
    reason_data: dict[str, Any]
    timestamp: dt.datetime = field(default_factory=utcnow)
    test: bool = False
    pipeline: str | None = None


@dataclass(frozen=True)
class ActionOutcome:
    """How one action went. ``target`` and ``detail`` never contain secrets."""

    type: str
    target: str
    ok: bool
    detail: str = ""


def event_payload(event: AlarmEvent) -> dict[str, Any]:
    """The notification as CloudWatch publishes it to SNS (plus ``Test`` and ``Pipeline``).

    Example:
        >>> from dataflow.config import AlarmSpec, MetricSpec
        >>> spec = AlarmSpec(name="a", metric=MetricSpec(namespace="N", name="M"))
        >>> event_payload(AlarmEvent(spec, "OK", "ALARM", "r", {}))["Trigger"]["Namespace"]
        'N'
    """
    spec = event.spec
    percentile = spec.statistic.startswith("p")
    when = event.timestamp.astimezone(dt.UTC)
    return {
        "AlarmName": spec.name,
        "AlarmDescription": spec.description,
        "NewStateValue": event.new_state,
        "NewStateReason": event.reason,
        "StateChangeTime": when.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{when.microsecond // 1000:03d}+0000",
        "OldStateValue": event.old_state,
        "Trigger": {
            "MetricName": spec.metric.name,
            "Namespace": spec.metric.namespace,
            "StatisticType": "ExtendedStatistic" if percentile else "Statistic",
            "Statistic": None if percentile else spec.statistic.upper(),
            "ExtendedStatistic": spec.statistic if percentile else None,
            "Dimensions": [{"name": k, "value": v} for k, v in spec.metric.dimensions.items()],
            "Period": spec.period,
            "EvaluationPeriods": spec.evaluation_periods,
            "DatapointsToAlarm": spec.datapoints_to_alarm or spec.evaluation_periods,
            "ComparisonOperator": spec.comparison_operator.value,
            "Threshold": spec.threshold,
            "TreatMissingData": spec.treat_missing_data.value,
        },
        "StateReasonData": event.reason_data,
        "Pipeline": event.pipeline,
        "Test": event.test,
    }


def slack_payload(event: AlarmEvent) -> dict[str, Any]:
    """A Slack incoming-webhook message for the event (``text`` + one coloured attachment).

    Example:
        >>> from dataflow.config import AlarmSpec, MetricSpec
        >>> spec = AlarmSpec(name="a", metric=MetricSpec(namespace="N", name="M"))
        >>> slack_payload(AlarmEvent(spec, "OK", "ALARM", "r", {}))["text"]
        'ALARM: "a" (was OK)'
    """
    spec = event.spec
    title = f'{event.new_state}: "{spec.name}" (was {event.old_state})'
    if event.test:
        title += " [test]"
    metric = f"{spec.metric.namespace} {spec.metric.name}"
    if spec.metric.dimensions:
        metric += " {" + ", ".join(f"{k}={v}" for k, v in spec.metric.dimensions.items()) + "}"
    return {
        "text": title,
        "attachments": [
            {
                "color": _COLORS.get(event.new_state, "warning"),
                "title": spec.name,
                "text": event.reason,
                "fields": [
                    {"title": "Metric", "value": metric, "short": False},
                    {"title": "Statistic", "value": spec.statistic, "short": True},
                    {"title": "Period", "value": f"{spec.period} s", "short": True},
                    {"title": "Description", "value": spec.description or "", "short": False},
                ],
                "ts": int(event.timestamp.timestamp()),
            }
        ],
    }


def describe_target(action: ActionSpec) -> str:
    """The action's target without secrets: ``webhook http://host:port``, ``command prog``.

    Example:
        >>> describe_target(ActionSpec(type="webhook", url="https://hooks.example/T0/B0/secret"))
        'webhook https://hooks.example'
    """
    if action.type == "webhook":
        parts = urlsplit(action.url or "")
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
        return f"webhook {parts.scheme}://{host}{port}"
    if action.type == "email":
        return f"email {', '.join(action.to) or '(no recipients)'} via {action.smtp_host}"
    if action.type == "command":
        program = (action.command or ["?"])[0]
        return f"command {os.path.basename(program)}"
    return action.type


def fire_actions(
    actions: Sequence[ActionSpec], event: AlarmEvent, *, timeout: float = DEFAULT_TIMEOUT
) -> list[ActionOutcome]:
    """Run each action once for the event; failures are logged and returned, never raised.

    Example:
        >>> from dataflow.config import AlarmSpec, MetricSpec
        >>> spec = AlarmSpec(name="a", metric=MetricSpec(namespace="N", name="M"))
        >>> fire_actions([], AlarmEvent(spec, "OK", "ALARM", "r", {}))
        []
    """
    outcomes = []
    for action in actions:
        target = describe_target(action)
        try:
            detail = _RUNNERS[action.type](action, event, timeout)
            outcome = ActionOutcome(action.type, target, True, detail)
        except Exception as exc:  # an action must never stop the evaluation
            outcome = ActionOutcome(action.type, target, False, _safe_error(exc, action))
            log.warning("alarm %s: action %s failed: %s", event.spec.name, target, outcome.detail)
        outcomes.append(outcome)
    return outcomes


# --- the runners ---------------------------------------------------------------------------------


def _log(action: ActionSpec, event: AlarmEvent, timeout: float) -> str:  # noqa: ARG001
    log.warning(
        "alarm %s: %s -> %s%s: %s",
        event.spec.name,
        event.old_state,
        event.new_state,
        " (test)" if event.test else "",
        event.reason,
    )
    return "logged"


def _webhook(action: ActionSpec, event: AlarmEvent, timeout: float) -> str:
    import httpx

    if not action.url:
        raise ValueError("webhook action has no url")
    body = slack_payload(event) if action.format == "slack" else event_payload(event)
    response = httpx.post(action.url, json=body, timeout=timeout)
    if response.status_code >= 400:
        raise RuntimeError(f"HTTP {response.status_code}")
    return f"HTTP {response.status_code}"


def _email(action: ActionSpec, event: AlarmEvent, timeout: float) -> str:
    if not action.to:
        raise ValueError("email action has no recipients (to)")
    message = EmailMessage()
    subject = f'{event.new_state}: "{event.spec.name}"'
    if event.pipeline:
        subject += f" in {event.pipeline}"
    message["Subject"] = subject + (" [test]" if event.test else "")
    message["From"] = action.sender or "dataflow@localhost"
    message["To"] = ", ".join(action.to)
    lines = [
        f"Alarm: {event.spec.name}",
        f"Description: {event.spec.description or ''}",
        f"State change: {event.old_state} -> {event.new_state}",
        f"Reason: {event.reason}",
        "",
        json.dumps(event_payload(event), indent=2),
    ]
    message.set_content("\n".join(lines))
    with smtplib.SMTP(action.smtp_host, action.smtp_port, timeout=timeout) as smtp:
        smtp.send_message(message)
    return f"sent to {len(action.to)} recipient(s)"


def _command(action: ActionSpec, event: AlarmEvent, timeout: float) -> str:
    if not action.command:
        raise ValueError("command action has no command")
    env = {
        key: value
        for key, value in os.environ.items()
        if key != API_KEY_ENV and not key.startswith(ENV_PREFIX)
    }
    env.update(
        DATAFLOW_ALARM_NAME=event.spec.name,
        DATAFLOW_ALARM_STATE=event.new_state,
        DATAFLOW_ALARM_OLD_STATE=event.old_state,
        DATAFLOW_ALARM_REASON=event.reason,
    )
    try:
        done = subprocess.run(  # argv from the project's configuration, no shell
            action.command,
            input=json.dumps(event_payload(event)),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        # Its message quotes the whole argv, which may hold a secret.
        raise RuntimeError(f"timed out after {timeout:g} s") from None
    if done.returncode != 0:
        raise RuntimeError(f"exit status {done.returncode}")
    return "exit status 0"


_RUNNERS = {"log": _log, "webhook": _webhook, "email": _email, "command": _command}


def _safe_error(exc: Exception, action: ActionSpec) -> str:
    text = str(exc) or type(exc).__name__
    if action.url:
        text = text.replace(action.url, describe_target(action).removeprefix("webhook "))
    for arg in (action.command or [])[1:]:
        if len(arg) > 3:
            text = text.replace(arg, "***")
    text = f"{type(exc).__name__}: {text}" if not isinstance(exc, RuntimeError) else text
    return redact(text)


__all__ = [
    "DEFAULT_TIMEOUT",
    "ActionOutcome",
    "AlarmEvent",
    "describe_target",
    "event_payload",
    "fire_actions",
    "slack_payload",
]
