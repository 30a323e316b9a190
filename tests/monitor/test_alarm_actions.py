"""Alarm actions against real receivers on 127.0.0.1: webhook, Slack payload, SMTP, command, log."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socketserver
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dataflow.config import (
    ActionSpec,
    AlarmSpec,
    ComparisonOperator,
    MetricSpec,
    Settings,
    TreatMissingData,
    load_settings,
)
from dataflow.metadata import MetadataDB, open_metadata
from dataflow.monitor.alarm_store import AlarmStore, evaluate_all, fire_test_actions
from dataflow.monitor.metrics import Metrics

NS = "Test/Actions"
T0 = dt.datetime(2024, 7, 9, 11, 51, 5, tzinfo=dt.UTC)
SECRET_PATH = "/services/T000/B000/s3cr3t-t0ken"

# --- a webhook receiver ---------------------------------------------------------------------------


@dataclass
class Receiver:
    url: str
    status: int = 200
    requests: list[dict[str, Any]] = field(default_factory=list)

    def bodies(self) -> list[Any]:
        return [r["json"] for r in self.requests]


@pytest.fixture
def mon_webhook() -> Iterator[Receiver]:
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.requests.append(
                {
                    "path": self.path,
                    "content_type": self.headers["Content-Type"],
                    "json": json.loads(body),
                }
            )
            self.send_response(receiver.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}"
    yield receiver
    server.shutdown()
    server.server_close()
    thread.join(5)


# --- a minimal SMTP server (RFC 5321's happy path) ------------------------------------------------


@dataclass
class Mailbox:
    host: str
    port: int
    messages: list[dict[str, Any]] = field(default_factory=list)


class _SMTPHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        mailbox: Mailbox = self.server.mailbox  # type: ignore[attr-defined]
        self._send("220 localhost test SMTP")
        sender, recipients = "", []
        while line := self.rfile.readline():
            command = line.decode().rstrip("\r\n")
            verb = command[:4].upper()
            if verb in {"EHLO", "HELO"}:
                self._send("250 localhost")
            elif verb == "MAIL":
                sender = command.split(":", 1)[1].strip()
                self._send("250 OK")
            elif verb == "RCPT":
                recipients.append(command.split(":", 1)[1].strip())
                self._send("250 OK")
            elif verb == "DATA":
                self._send("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                while (data := self.rfile.readline().decode()) not in {".\r\n", ".\n", ""}:
                    lines.append(data[1:] if data.startswith("..") else data)
                mailbox.messages.append({"from": sender, "to": recipients, "data": "".join(lines)})
                self._send("250 OK queued")
            elif verb == "QUIT":
                self._send("221 Bye")
                return
            else:  # RSET, NOOP
                self._send("250 OK")

    def _send(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")


@pytest.fixture
def mon_smtp() -> Iterator[Mailbox]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTPHandler)
    server.daemon_threads = True
    mailbox = Mailbox("127.0.0.1", server.server_address[1])
    server.mailbox = mailbox  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield mailbox
    server.shutdown()
    server.server_close()
    thread.join(5)


# --- alarms ---------------------------------------------------------------------------------------


@pytest.fixture
def mon_db(tmp_path: Path) -> Iterator[MetadataDB]:
    db = open_metadata(f"sqlite:///{tmp_path / 'dataflow.db'}")
    yield db
    db.dispose()


@pytest.fixture
def mon_settings(tmp_path: Path) -> Settings:
    return load_settings(tmp_path, overrides={"name": "demo"}, env={})


@pytest.fixture
def mon_log() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("dataflow.monitor.alarms")
    handler = Keep(logging.DEBUG)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def _alarm(**fields: Any) -> AlarmSpec:
    base: dict[str, Any] = {
        "name": "api-errors",
        "description": "Errors from the API",
        "metric": MetricSpec(namespace=NS, name="Errors", dimensions={"endpoint": "quote"}),
        "statistic": "Sum",
        "period": 60,
        "comparison_operator": ComparisonOperator.GT,
        "threshold": 1.0,
        "treat_missing_data": TreatMissingData.IGNORE,
    }
    return AlarmSpec(**{**base, **fields})


def _with(settings: Settings, *alarms: AlarmSpec) -> Settings:
    return settings.model_copy(update={"alarms": list(alarms)})


def _put(db: MetadataDB, value: float, when: dt.datetime) -> None:
    Metrics(db).record(NS, "Errors", value, "Count", {"endpoint": "quote"}, when)


def _minutes(n: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


def test_webhook_fires_on_transitions_only(
    mon_webhook: Receiver, mon_settings: Settings, mon_db: MetadataDB
) -> None:
    hook = ActionSpec(type="webhook", url=mon_webhook.url)
    settings = _with(mon_settings, _alarm(actions=[hook], ok_actions=[hook]))

    evaluate_all(settings, mon_db, T0)  # created: INSUFFICIENT_DATA, no transition
    assert mon_webhook.requests == []

    _put(mon_db, 2.0, T0)
    first = evaluate_all(settings, mon_db, _minutes(1.5))
    assert first[0].changed
    assert first[0].state == "ALARM"
    assert [o.ok for o in first[0].actions] == [True]
    (request,) = mon_webhook.requests
    assert request["path"] == SECRET_PATH
    assert request["content_type"] == "application/json"
    body = request["json"]
    assert body["AlarmName"] == "api-errors"
    assert (body["OldStateValue"], body["NewStateValue"]) == ("INSUFFICIENT_DATA", "ALARM")
    assert body["NewStateReason"] == (
        "Threshold Crossed: 1 out of the last 1 datapoints [2.0 (09/07/24 11:51:00)] was greater "
        "than the threshold (1.0) (minimum 1 datapoint for INSUFFICIENT_DATA -> ALARM transition)."
    )
    assert body["Trigger"]["Dimensions"] == [{"name": "endpoint", "value": "quote"}]
    assert body["Trigger"]["ComparisonOperator"] == "GreaterThanThreshold"
    assert body["Pipeline"] == "demo"
    assert body["Test"] is False

    # Still breaching, then a gap (ignore): no transition, no request.
    _put(mon_db, 3.0, _minutes(1))
    evaluate_all(settings, mon_db, _minutes(2.5))
    evaluate_all(settings, mon_db, _minutes(30))
    assert len(mon_webhook.requests) == 1

    _put(mon_db, 0.0, _minutes(30))
    back = evaluate_all(settings, mon_db, _minutes(31.2))
    assert back[0].state == "OK"
    assert [b["NewStateValue"] for b in mon_webhook.bodies()] == ["ALARM", "OK"]

    history = AlarmStore(mon_db).history("api-errors", item_type="Action")
    port = mon_webhook.url.split(":")[2].split("/")[0]
    assert [h.summary for h in history] == [
        f"Successfully executed action webhook http://127.0.0.1:{port}"
    ] * 2
    everything = json.dumps([h.__dict__ for h in AlarmStore(mon_db).history("api-errors")],
                            default=str)  # fmt: skip
    assert "s3cr3t" not in everything


def test_slack_format(mon_webhook: Receiver, mon_settings: Settings, mon_db: MetadataDB) -> None:
    hook = ActionSpec(type="webhook", url=mon_webhook.url, format="slack")
    settings = _with(mon_settings, _alarm(actions=[hook]))
    _put(mon_db, 5.0, T0)
    evaluate_all(settings, mon_db, _minutes(1))
    (body,) = mon_webhook.bodies()
    assert body["text"] == 'ALARM: "api-errors" (was INSUFFICIENT_DATA)'
    (attachment,) = body["attachments"]
    assert attachment["color"] == "danger"
    assert attachment["text"].startswith("Threshold Crossed: 1 out of the last 1 datapoints")
    assert {f["title"] for f in attachment["fields"]} >= {"Metric", "Statistic", "Period"}


def test_failing_actions_are_recorded_and_do_not_stop_the_evaluation(
    mon_webhook: Receiver, mon_settings: Settings, mon_db: MetadataDB,
    mon_log: list[logging.LogRecord],
) -> None:  # fmt: skip
    mon_webhook.status = 500
    closed = "http://127.0.0.1:9/never"  # the discard port: nothing listens on loopback
    alarm = _alarm(actions=[
        ActionSpec(type="webhook", url=mon_webhook.url),
        ActionSpec(type="webhook", url=closed),
        ActionSpec(type="command", command=[sys.executable, "-c", "raise SystemExit(3)"]),
        ActionSpec(type="email", to=[]),
        ActionSpec(type="log"),
    ])  # fmt: skip
    second = _alarm(name="second", actions=[ActionSpec(type="log")])
    settings = _with(mon_settings, alarm, second)
    _put(mon_db, 5.0, T0)

    results = evaluate_all(settings, mon_db, _minutes(1))
    assert [(r.name, r.state) for r in results] == [("api-errors", "ALARM"), ("second", "ALARM")]
    outcomes = results[0].actions
    assert [o.ok for o in outcomes] == [False, False, False, False, True]
    assert outcomes[0].detail == "HTTP 500"
    assert outcomes[2].detail == "exit status 3"
    assert "no recipients" in outcomes[3].detail
    failed = AlarmStore(mon_db).history("api-errors", item_type="Action")
    summaries = sorted(h.summary for h in failed)
    assert any(s.endswith('Received error: "HTTP 500"') for s in summaries)
    assert sum(s.startswith("Failed to execute action") for s in summaries) == 4
    assert all(h.data["actionState"] in {"Failed", "Succeeded"} for h in failed)
    logged = "\n".join(r.getMessage() for r in mon_log)
    assert "failed" in logged
    assert "s3cr3t" not in logged
    assert "/never" not in logged


def test_email_over_smtp(mon_smtp: Mailbox, mon_settings: Settings, mon_db: MetadataDB) -> None:
    mail = ActionSpec(type="email", to=["ops@example.com", "dev@example.com"],
                      sender="dataflow@example.com", smtp_host=mon_smtp.host,
                      smtp_port=mon_smtp.port)  # fmt: skip
    settings = _with(mon_settings, _alarm(actions=[mail]))
    _put(mon_db, 5.0, T0)
    result = evaluate_all(settings, mon_db, _minutes(1))
    assert [o.ok for o in result[0].actions] == [True], result[0].actions
    (message,) = mon_smtp.messages
    assert message["from"] == "<dataflow@example.com>"
    assert message["to"] == ["<ops@example.com>", "<dev@example.com>"]
    data = message["data"]
    assert 'Subject: ALARM: "api-errors" in demo' in data
    assert "State change: INSUFFICIENT_DATA -> ALARM" in data
    assert "Threshold Crossed: 1 out of the last 1 datapoints [5.0" in data


def test_command_gets_the_alarm_on_stdin_and_in_its_environment(
    tmp_path: Path, mon_settings: Settings, mon_db: MetadataDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWELVEDATA_API_KEY", "do-not-leak")
    monkeypatch.setenv("DATAFLOW__SOURCES__TWELVEDATA__API_KEY", "do-not-leak-either")
    out = tmp_path / "alarm.json"
    script = (
        "import json, os, sys; json.dump({'stdin': json.load(sys.stdin), 'env': "
        "{k: v for k, v in os.environ.items() if 'ALARM' in k or 'KEY' in k}}, "
        f"open({str(out)!r}, 'w'))"
    )
    settings = _with(mon_settings, _alarm(actions=[
        ActionSpec(type="command", command=[sys.executable, "-c", script])
    ]))  # fmt: skip
    _put(mon_db, 5.0, T0)
    result = evaluate_all(settings, mon_db, _minutes(1))
    assert [o.ok for o in result[0].actions] == [True]
    got = json.loads(out.read_text())
    assert got["stdin"]["AlarmName"] == "api-errors"
    assert got["stdin"]["NewStateValue"] == "ALARM"
    assert got["env"]["DATAFLOW_ALARM_NAME"] == "api-errors"
    assert got["env"]["DATAFLOW_ALARM_STATE"] == "ALARM"
    assert got["env"]["DATAFLOW_ALARM_OLD_STATE"] == "INSUFFICIENT_DATA"
    assert got["env"]["DATAFLOW_ALARM_REASON"].startswith("Threshold Crossed")
    assert "do-not-leak" not in json.dumps(got)


def test_log_action_writes_a_warning(
    mon_settings: Settings, mon_db: MetadataDB, mon_log: list[logging.LogRecord]
) -> None:
    settings = _with(mon_settings, _alarm(actions=[ActionSpec(type="log")]))
    _put(mon_db, 5.0, T0)
    evaluate_all(settings, mon_db, _minutes(1))
    (record,) = mon_log
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("alarm api-errors: INSUFFICIENT_DATA -> ALARM: ")


def test_alarms_test_fires_actions_without_changing_the_state(
    mon_webhook: Receiver, mon_settings: Settings, mon_db: MetadataDB
) -> None:
    settings = _with(mon_settings, _alarm(ok_actions=[
        ActionSpec(type="webhook", url=mon_webhook.url)
    ]))  # fmt: skip
    outcomes = fire_test_actions(settings, mon_db, "api-errors", state="OK")
    assert [o.ok for o in outcomes] == [True]
    (body,) = mon_webhook.bodies()
    assert body["Test"] is True
    assert body["NewStateValue"] == "OK"
    record = AlarmStore(mon_db).get("api-errors")
    assert record is not None
    assert record.state == "INSUFFICIENT_DATA"
    kinds = [h.item_type for h in AlarmStore(mon_db).history("api-errors")]
    assert kinds == ["Action", "ConfigurationUpdate"]
