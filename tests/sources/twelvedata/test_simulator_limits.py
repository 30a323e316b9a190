"""Credits, auth, legacy errors, fault injection, stats and the CLI of the simulator."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time

import httpx
import pytest
from typer.testing import CliRunner

from dataflow.sources.twelvedata.simulator import SimulatorConfig, SimulatorServer

SIM_NOW = dt.datetime(2024, 6, 14, 18, 0, tzinfo=dt.UTC)  # as the sim_server fixture's clock

MINUTE_429 = (
    "You have run out of API credits for the current minute. {n} API credits were used, with the "
    "current limit being {limit}. Wait for the next minute or consider switching to a higher tier "
    "plan at https://twelvedata.com/pricing"
)
DAY_429 = (
    "You have run out of API credits for the current day. {n} API credits were used, with the "
    "current limit being {limit}. Wait for the next day or consider switching to a higher tier "
    "plan at https://twelvedata.com/pricing"
)
BAD_KEY = (
    "**apikey** parameter is incorrect or not specified. You can get your free API key instantly "
    "following this link: https://twelvedata.com/pricing. If you believe that everything is "
    "correct, you can contact us at https://twelvedata.com/contact/customer"
)


def _to_window_start(seconds: float) -> None:
    """Sleep until just after the next credit window starts, so a test fits in one window."""
    time.sleep(seconds - time.time() % seconds + 0.02)


def test_minute_limit_then_next_window() -> None:
    with SimulatorServer(
        SimulatorConfig(now=SIM_NOW, credits_per_minute=5, minute_seconds=1)
    ) as sim:
        with httpx.Client(base_url=sim.url) as client:
            _to_window_start(1.0)
            for left in (4, 3):
                r = client.get("/price", params={"symbol": "AAPL"})
                assert r.status_code == 200, r.text
                assert r.headers["api-credits-left"] == str(left)
            r = client.get("/price", params={"symbol": "AAPL,MSFT,IBM"})  # 3 credits: 5 used
            assert r.headers["api-credits-used"] == "5"
            rejected = client.get("/price", params={"symbol": "AAPL"})
            assert rejected.status_code == 429
            assert rejected.json() == {
                "code": 429,
                "message": MINUTE_429.format(n=6, limit=5),
                "status": "error",
            }
            assert sim.stats()["credits_used"] == 5  # the rejected request consumed nothing
            _to_window_start(1.0)
            assert client.get("/price", params={"symbol": "AAPL"}).status_code == 200
        stats = sim.stats()
    assert stats["responses_by_status"] == {"200": 4, "429": 1}
    assert stats["credits_used"] == 6


def test_daily_limit() -> None:
    config = SimulatorConfig(now=SIM_NOW, credits_per_minute=100, daily_credits=3)
    with SimulatorServer(config) as sim, httpx.Client(base_url=sim.url) as client:
        assert client.get("/quote", params={"symbol": "AAPL,MSFT"}).status_code == 200
        usage = client.get("/api_usage").json()  # catalogue-like: 1 credit per request
        assert usage["daily_usage"] == 3
        assert usage["plan_daily_limit"] == 3
        r = client.get("/price", params={"symbol": "AAPL"})
    assert r.status_code == 429
    assert r.json()["message"] == DAY_429.format(n=4, limit=3)


def test_auth_and_legacy_errors() -> None:
    config = SimulatorConfig(now=SIM_NOW, api_key="s3cret-key", legacy_errors=True)
    with SimulatorServer(config) as sim, httpx.Client(base_url=sim.url) as client:
        missing = client.get("/price", params={"symbol": "AAPL"})
        wrong = client.get("/price", params={"symbol": "AAPL", "apikey": "nope"})
        header = client.get(
            "/price", params={"symbol": "AAPL"}, headers={"Authorization": "apikey s3cret-key"}
        )
        query = client.get("/price", params={"symbol": "AAPL", "apikey": "s3cret-key"})
        bad_symbol = client.get("/price", params={"symbol": "NOPE", "apikey": "s3cret-key"})
        stats = client.get("/simulator/stats")  # no key needed
    for r in (missing, wrong):
        assert r.status_code == 200  # legacy: errors come back with HTTP 200
        assert r.json() == {"code": 401, "message": BAD_KEY, "status": "error"}
        assert "s3cret" not in r.text
    assert header.json().keys() == {"price"}
    assert query.status_code == 200
    assert bad_symbol.status_code == 200
    assert bad_symbol.json()["code"] == 404
    assert stats.status_code == 200


def test_wrong_key_is_401_without_legacy() -> None:
    with SimulatorServer(SimulatorConfig(api_key="k")) as sim:
        r = httpx.get(f"{sim.url}/stocks", headers={"Authorization": "apikey other"})
        assert r.status_code == 401
        assert r.json()["code"] == 401
        assert sim.stats()["credits_used"] == 0


@pytest.mark.parametrize("kind", ["500", "502", "timeout", "truncated", "slow"])
def test_fault_injection(kind: str) -> None:
    config = SimulatorConfig(
        now=SIM_NOW, error_rate=1.0, faults=(kind,), timeout_seconds=0.2, credits_per_minute=100
    )
    with SimulatorServer(config) as sim, httpx.Client(base_url=sim.url, timeout=5) as client:
        started = time.perf_counter()
        r = client.get("/time_series", params={"symbol": "AAPL", "interval": "1min"})
        elapsed = time.perf_counter() - started
        stats = sim.stats()
    assert stats["faults"] == {kind: 1}
    assert stats["credits_used"] == 0  # faulted requests consume no credits
    if kind == "500":
        assert r.status_code == 500
        assert r.json() == {"code": 500, "message": "Internal server error", "status": "error"}
    elif kind == "502":
        assert r.status_code == 502
        assert r.headers["content-type"].startswith("text/html")
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.text)
    elif kind == "truncated":
        assert r.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.text)
    else:
        assert r.status_code == 200
        assert r.json()["status"] == "ok"
        assert elapsed >= (0.2 if kind == "timeout" else 0.3)


def test_timeout_fault_is_released_on_stop() -> None:
    config = SimulatorConfig(error_rate=1.0, faults=("timeout",), timeout_seconds=60)
    sim = SimulatorServer(config).start()
    with httpx.Client(base_url=sim.url, timeout=0.2) as client, pytest.raises(httpx.ReadTimeout):
        client.get("/price", params={"symbol": "AAPL"})
    started = time.perf_counter()
    sim.stop()
    assert time.perf_counter() - started < 5


def test_faults_are_seeded_and_mixed() -> None:
    config = SimulatorConfig(error_rate=0.5, faults=("500", "502", "truncated"), seed=3)
    runs = []
    for _ in range(2):
        with SimulatorServer(config) as sim, httpx.Client(base_url=sim.url) as client:
            runs.append([client.get("/stocks").status_code for _ in range(30)])
            faults = sim.stats()["faults"]
    assert runs[0] == runs[1]
    assert set(faults) == {"500", "502", "truncated"}
    assert 5 < sum(faults.values()) < 25


def test_stats_and_reset(sim_server: SimulatorServer) -> None:
    with httpx.Client(base_url=sim_server.url) as client:
        client.post("/simulator/reset")
        client.get("/time_series", params={"symbol": "AAPL,MSFT", "interval": "1day"})
        client.get("/quote", params={"symbol": "NOPE"})
        client.get("/nowhere")
        stats = client.get("/simulator/stats").json()
        assert stats == sim_server.stats()
        client.post("/simulator/reset")
        assert client.get("/simulator/stats").json()["requests"] == 0
    assert stats == {
        "requests": 3,
        "credits_used": 3,
        "responses_by_status": {"200": 1, "404": 2},
        "faults": {},
        "by_endpoint": {"time_series": 1, "quote": 1, "nowhere": 1},
    }


def test_latency_is_added() -> None:
    with SimulatorServer(SimulatorConfig(latency_ms=150)) as sim:
        started = time.perf_counter()
        httpx.get(f"{sim.url}/exchanges")
        assert time.perf_counter() - started >= 0.15


def test_cli_help() -> None:
    from dataflow.cli.app import _register, app

    _register()
    result = CliRunner().invoke(app, ["simulator", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--port", "--api-key", "--credits-per-minute", "--legacy-errors", "--seed"):
        assert option in result.output


def test_cli_serves_and_never_prints_the_key() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataflow", "simulator", "--port", "0", "--api-key", "TOPSECRET"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split(" listening on ")[1].split()[0]
        r = httpx.get(f"{url}/price", params={"symbol": "AAPL"}, headers={
            "Authorization": "apikey TOPSECRET"
        })  # fmt: skip
        assert r.status_code == 200
        assert httpx.get(f"{url}/price", params={"symbol": "AAPL"}).status_code == 401
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert "TOPSECRET" not in line + out + err
