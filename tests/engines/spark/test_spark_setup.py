"""Bad set-ups of engine: spark end in one line and exit 2; a real standalone cluster works.

Every case runs the `dataflow` CLI in its own process, as a user would.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataflow.catalog.iceberg import open_catalog
from dataflow.config import load_settings
from dataflow.engines.spark import runtime
from dataflow.errors import ConfigError
from dataflow.storage import import_responses, open_store

from .samples import SAMPLES

pytestmark = pytest.mark.spark

HIDE_PYSPARK = (
    "import sys, importlib.abc\n"
    "class Hide(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] == 'pyspark':\n"
    "            raise ModuleNotFoundError(name)\n"
    "sys.meta_path.insert(0, Hide())\n"
    "from dataflow.cli.app import main\n"
    "sys.argv = ['dataflow', *sys.argv[1:]]\n"
    "main()\n"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    settings = load_settings(root, env={})
    store = open_store(settings)
    import_responses(store, [SAMPLES / "quote__aapl_2022.json"], endpoint="quote")
    import_responses(store, [SAMPLES / "time_series__daily_tsla_keys_sorted.json"],
                     endpoint="time_series")  # fmt: skip
    return root


def _dataflow(
    *args: str, env: dict[str, str] | None = None, code: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", code, *args] if code else [
        sys.executable, "-m", "dataflow", *args
    ]  # fmt: skip
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, result.stdout
    return lines[-1]


def test_without_pyspark_the_error_names_the_extra(project: Path) -> None:
    result = _dataflow("transform", "--engine", "spark", "--project", str(project),
                       code=HIDE_PYSPARK)  # fmt: skip
    assert "pip install 'dataflow-etl[spark]'" in _one_line_error(result)


def test_without_java_the_error_says_how_to_install_it(project: Path) -> None:
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if not (Path(p) / "java").exists())  # fmt: skip
    env = {"PATH": path, "JAVA_HOME": ""}
    result = _dataflow("transform", "--engine", "spark", "--project", str(project), env=env)
    line = _one_line_error(result)
    assert "Java 17" in line
    assert "openjdk-17-jre-headless" in line


def test_an_unreachable_master_is_reported_within_30_seconds(project: Path) -> None:
    port = _free_port()  # nothing listens there
    started = time.monotonic()
    result = _dataflow(
        "transform", "--engine", "spark", "--project", str(project),
        env={"DATAFLOW__SPARK__MASTER": f"spark://127.0.0.1:{port}"},
    )  # fmt: skip
    assert time.monotonic() - started < 30
    line = _one_line_error(result)
    assert f"spark://127.0.0.1:{port} is unreachable" in line
    table = open_catalog(load_settings(project, env={}))
    assert not table.table_exists(("market", "quotes"))


def test_an_s3_warehouse_is_refused_with_the_reason(project: Path) -> None:
    result = _dataflow(
        "transform", "--engine", "spark", "--project", str(project),
        env={"DATAFLOW__WAREHOUSE": "s3://bucket/prefix",
             "DATAFLOW__METADATA__URL": f"sqlite:///{project / 'meta.db'}"},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "S3 from Spark needs the iceberg-aws-bundle" in result.stderr + result.stdout


def test_the_runtime_jar_is_verified_and_a_wrong_one_refused(tmp_path: Path) -> None:
    jar = runtime.runtime_jar()
    assert jar.name == runtime.RUNTIME_JAR
    assert jar.stat().st_size == 47_157_008
    fake = tmp_path / runtime.RUNTIME_JAR
    fake.write_bytes(b"not a jar")
    with pytest.raises(ConfigError, match=r"checksum .* is not the pinned"):
        runtime.verify_jar(fake)
    with pytest.raises(ConfigError, match="missing"):
        runtime.verify_jar(tmp_path / "absent.jar")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    """A standalone Spark master and one worker on 127.0.0.1 (free ports), killed at teardown."""
    home = runtime.spark_home()
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1",
           "JAVA_HOME": runtime.java_home(), "SPARK_WORKER_DIR": str(tmp_path / "work"),
           "SPARK_LOG_DIR": str(tmp_path / "logs")}  # fmt: skip
    port, ui, worker_ui = _free_port(), _free_port(), _free_port()
    master_url = f"spark://127.0.0.1:{port}"
    spark_class = str(home / "bin" / "spark-class")
    logs = (tmp_path / "master.log").open("w"), (tmp_path / "worker.log").open("w")
    processes = [
        subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
             "--port", str(port), "--webui-port", str(ui)],
            env=env, stdout=logs[0], stderr=subprocess.STDOUT, start_new_session=True,
        ),
        subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.worker.Worker", master_url, "--host",
             "127.0.0.1", "--cores", "1", "--memory", "1g", "--webui-port", str(worker_ui)],
            env=env, stdout=logs[1], stderr=subprocess.STDOUT, start_new_session=True,
        ),
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "Registering worker" not in (tmp_path / "master.log").read_text():
            assert time.monotonic() < deadline, (tmp_path / "master.log").read_text()
            assert all(p.poll() is None for p in processes), "the cluster did not start"
            time.sleep(0.5)
        yield master_url
    finally:
        for process in processes:
            os.killpg(process.pid, 9)
            process.wait(timeout=30)
        for log in logs:
            log.close()
        shutil.rmtree(tmp_path / "work", ignore_errors=True)


def test_transform_runs_on_a_standalone_cluster(project: Path, cluster: str) -> None:
    result = _dataflow(
        "transform", "--engine", "spark", "--tables", "quotes,time_series",
        "--project", str(project), "--format", "json",
        env={"DATAFLOW__SPARK__MASTER": cluster,
             "DATAFLOW__SPARK__CONF__SPARK.EXECUTOR.MEMORY": "512m"},
        timeout=420,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert '"status": "succeeded"' in result.stdout
    # Written on the audit branch by the cluster, audited by the quality gate, published.
    settings = load_settings(project, env={})
    table = open_catalog(settings).load_table(("market", "time_series"))
    rows = table.scan().to_arrow()
    assert rows.num_rows == 10
    assert set(rows.column("symbol").to_pylist()) == {"TSLA"}
