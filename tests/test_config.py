"""Settings: layered resolution, validation errors in one line, secrets that never print."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from dataflow.config import Plan, default_endpoints, load_settings
from dataflow.errors import ConfigError
from dataflow.project import init_project

FAKE_KEY = "td-secret-key-0123456789"


def write(project: Path, text: str) -> Path:
    project.mkdir(parents=True, exist_ok=True)
    (project / "dataflow.yaml").write_text(text, encoding="utf-8")
    return project


def test_defaults_without_a_config_file(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, env={})
    td = settings.sources.twelvedata
    assert td.uses_simulator
    assert td.effective_budget() == (None, None)
    assert len(td.symbols["stocks"]) >= 8
    assert len(td.symbols["forex"]) >= 3
    assert len(td.symbols["crypto"]) >= 2
    assert settings.warehouse_uri == str((tmp_path / "warehouse").resolve())
    db_url = f"sqlite:///{(tmp_path / 'warehouse' / 'dataflow.db')}"
    assert settings.metadata_url == f"{db_url}?dataflow_project=dataflow"


def test_init_template_equals_the_defaults(tmp_path: Path) -> None:
    init_project(tmp_path / "p")
    settings = load_settings(tmp_path / "p", env={})
    assert settings.sources.twelvedata.endpoints == default_endpoints()
    assert settings.model_dump(exclude={"project_dir", "sources"}) == load_settings(
        tmp_path / "empty", env={}
    ).model_dump(exclude={"project_dir", "sources"})
    for folder in ("models", "quality", "dashboards", "queries"):
        assert (tmp_path / "p" / folder).is_dir()


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    init_project(tmp_path)
    with pytest.raises(ConfigError, match="already exists — pass --force"):
        init_project(tmp_path)


@pytest.mark.parametrize(
    ("yaml_batch", "env", "overrides", "expected"),
    [
        (None, {}, {}, 8),
        ("3", {}, {}, 3),
        ("3", {"DATAFLOW__SOURCES__TWELVEDATA__BATCH_SIZE": "5"}, {}, 5),
        ("3", {"DATAFLOW__SOURCES__TWELVEDATA__BATCH_SIZE": "5"}, {"batch_size": 7}, 7),
    ],
)
def test_resolution_order(
    tmp_path: Path,
    yaml_batch: str | None,
    env: dict[str, str],
    overrides: dict[str, int],
    expected: int,
) -> None:
    if yaml_batch is not None:
        write(tmp_path, f"sources:\n  twelvedata:\n    batch_size: {yaml_batch}\n")
    given = {f"sources.twelvedata.{key}": v for key, v in overrides.items()}
    settings = load_settings(tmp_path, env=env, overrides=given)
    assert settings.sources.twelvedata.batch_size == expected


def test_env_base_url_and_project_env(tmp_path: Path) -> None:
    env = {
        "DATAFLOW_PROJECT": str(tmp_path),
        "DATAFLOW__SOURCES__TWELVEDATA__BASE_URL": "http://127.0.0.1:9/",
    }
    settings = load_settings(None, env=env)
    assert settings.project_dir == tmp_path.resolve()
    assert settings.sources.twelvedata.base_url == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("plan", "expected"),
    [("basic", (8, 800)), ("grow", (55, None)), ("pro", (610, None)), ("unlimited", (None, None))],
)
def test_plan_presets(tmp_path: Path, plan: str, expected: tuple[int | None, int | None]) -> None:
    write(tmp_path, f"sources:\n  twelvedata:\n    plan: {plan}\n")
    settings = load_settings(tmp_path, env={API_ENV: FAKE_KEY})
    assert settings.sources.twelvedata.effective_budget() == expected


API_ENV = "TWELVEDATA_API_KEY"


def test_custom_plan_and_key_defaults_to_basic(tmp_path: Path) -> None:
    keyed = load_settings(tmp_path, env={API_ENV: FAKE_KEY}).sources.twelvedata
    assert not keyed.uses_simulator
    assert keyed.effective_budget() == (8, 800)
    write(tmp_path, "sources:\n  twelvedata:\n    plan: custom\n    credits_per_minute: 20\n")
    custom = load_settings(tmp_path, env={}).sources.twelvedata
    assert custom.effective_budget() == (20, None)


def test_api_key_never_prints(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, env={API_ENV: FAKE_KEY})
    td = settings.sources.twelvedata
    assert td.api_key is not None
    assert td.api_key.get_secret_value() == FAKE_KEY
    assert FAKE_KEY not in repr(settings)
    assert FAKE_KEY not in str(settings.public_dump())


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        (
            "sources:\n  twelvedata:\n    batch_size: lots\n",
            {},
            r"batch_size: 'lots' is invalid .* — use a whole number",
        ),
        (
            "sources:\n  twelvedata:\n    batch_sise: 3\n",
            {},
            r"sources.twelvedata.batch_sise: unknown setting — remove it or check the spelling",
        ),
        (
            "sources:\n  twelvedata:\n    endpoints:\n      time_series: {intervals: [2min]}\n",
            {},
            r"time_series.intervals: \[.*'2min'.*\] is invalid \(unknown interval '2min'; use",
        ),
        (
            "",
            {"DATAFLOW__SOURCES__TWELVEDATA__MAX_CONCURRENCY": "0"},
            r"^env DATAFLOW__SOURCES__TWELVEDATA__MAX_CONCURRENCY: .*max_concurrency: 0 is inv",
        ),
        ("warehouse: [a\n", {}, r"dataflow.yaml:\d+:\d+: .* — fix the YAML syntax there"),
        ("- a\n- b\n", {}, r"the top level must be a mapping"),
        (
            "sources:\n  twelvedata:\n    base_url: ftp://x\n",
            {},
            r"base_url: 'ftp://x' is invalid \(must be an http\(s\) URL",
        ),
    ],
)
def test_errors_are_one_line_with_key_value_and_fix(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(tmp_path, env=env)
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_secret_values_are_masked_in_errors(tmp_path: Path) -> None:
    write(tmp_path, "sources:\n  twelvedata:\n    api_key: [not, a, string]\n")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path, env={})
    assert "not" not in str(info.value).split("api_key:")[1].split("is invalid")[0]
    assert "***" in str(info.value)


def test_history_start_is_a_date(tmp_path: Path) -> None:
    write(tmp_path, "sources:\n  twelvedata:\n    history_start: 2024-02-01\n")
    assert load_settings(tmp_path, env={}).sources.twelvedata.history_start == dt.date(2024, 2, 1)
    assert load_settings(tmp_path / "x", env={}).sources.twelvedata.plan is None
    assert Plan("basic") is Plan.BASIC


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        ("[{name: a, schedule: 'rate(1 minutes)'}]", r"schedule\.jobs\.0\.schedule: .*rate"),
        ("[{name: a, schedule: 'cron(0 12 * * * *)'}]", r"use \? in one of them"),
        ("[{name: a, schedule: 'rate(5 minutes)', timezone: Mars/Base}]", r"Mars/Base"),
        (
            "[{name: a, schedule: 'rate(5 minutes)'}, {name: a, schedule: 'rate(1 hour)'}]",
            r"two jobs are named 'a'",
        ),
    ],
)
def test_bad_schedules_fail_when_the_settings_load(tmp_path: Path, jobs: str, message: str) -> None:
    write(tmp_path, f"schedule:\n  jobs: {jobs}\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path, env={})
