"""How the scheduler starts a job: ``python -m dataflow <command...> --project <dir>``.

Each run is a child process, so a crash, a leak or a hung import in a job cannot take the
scheduler down, and the scheduler can stop a run that outlives a shutdown. The child gets the
scheduler's environment (the API key, ``DATAFLOW__...`` overrides) plus ``DATAFLOW_SCHEDULE_JOB``,
``DATAFLOW_SCHEDULE_SCHEDULED_AT`` and ``DATAFLOW_SCHEDULE_ATTEMPT`` naming the fire it serves.

It runs in its own session (``start_new_session``): a Ctrl-C in the terminal reaches only the
scheduler, which then decides how long to wait for the run (graceful shutdown).

:class:`Runner` is the seam tests use to replace processes with scripted ones.

Example:
    >>> from pathlib import Path
    >>> from dataflow.config import JobSpec
    >>> runner = SubprocessRunner(Path("/srv/project"), python="python3")
    >>> runner.argv(JobSpec(name="n", schedule="rate(1 hour)", command=["runs"]))
    ['python3', '-m', 'dataflow', 'runs', '--project', '/srv/project']
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Protocol

from dataflow.config import JobSpec
from dataflow.monitor.logs import redact

#: Characters of a child's stderr kept as the message of a failed attempt.
MESSAGE_CHARS = 500
_BOX = " \t│┃╭╮╰╯─━┏┓┗┛"


class RunHandle(Protocol):
    """A started run of a job."""

    @property
    def pid(self) -> int | None:
        """The process id (recorded in ``schedule_fires.pid``), if there is a process."""
        ...

    def poll(self) -> int | None:
        """The exit code once the run ended, else ``None``. Never blocks."""
        ...

    def terminate(self) -> None:
        """Ask the run to stop (SIGTERM)."""
        ...

    def kill(self) -> None:
        """Stop the run now (SIGKILL)."""
        ...

    def message(self) -> str | None:
        """After the end: a one-line summary of what went wrong (the last line of stderr)."""
        ...


class Runner(Protocol):
    """Starts runs of jobs."""

    def __call__(self, job: JobSpec, env: Mapping[str, str]) -> RunHandle:
        """Start ``job`` with ``env`` added to the environment. Raises ``OSError`` if it cannot."""
        ...


class SubprocessRunner:
    """Runs a job's command as ``python -m dataflow <command...> --project <dir>``.

    Args:
        project_dir: the project the job belongs to.
        python: the interpreter (default: the scheduler's own, ``sys.executable``).
        echo_stderr: copy each child's stderr to the scheduler's stderr when it ends.
    """

    def __init__(
        self, project_dir: Path, *, python: str | None = None, echo_stderr: bool = True
    ) -> None:
        self.project_dir = Path(project_dir)
        self.python = python or sys.executable
        self.echo_stderr = echo_stderr

    def argv(self, job: JobSpec) -> list[str]:
        """The command line of a run of ``job``."""
        return [
            self.python,
            "-m",
            "dataflow",
            *job.command,
            "--project",
            str(self.project_dir),
        ]

    def __call__(self, job: JobSpec, env: Mapping[str, str]) -> ProcessHandle:
        child_env = {**os.environ, **env}
        # stderr goes to a file, not a pipe: a chatty child can never block on a full pipe.
        stderr = tempfile.TemporaryFile(prefix="dataflow-job-")  # noqa: SIM115 - closed by the handle
        try:
            process = subprocess.Popen(
                self.argv(job),
                env=child_env,
                stdin=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        except OSError:
            stderr.close()
            raise
        return ProcessHandle(job.name, process, stderr, echo=self.echo_stderr)


class ProcessHandle:
    """A run of a job in a child process."""

    def __init__(
        self, job: str, process: subprocess.Popen[bytes], stderr: IO[bytes], *, echo: bool
    ) -> None:
        self.job = job
        self.process = process
        self._stderr = stderr
        self._echo = echo
        self._message: str | None = None
        self._done = False

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def poll(self) -> int | None:
        code = self.process.poll()
        if code is not None and not self._done:
            self._done = True
            self._collect()
        return code

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()

    def message(self) -> str | None:
        return self._message

    def _collect(self) -> None:
        self._stderr.seek(0)
        text = redact(self._stderr.read().decode("utf-8", errors="replace"))
        self._stderr.close()
        if self._echo and text:
            for line in text.splitlines():
                sys.stderr.write(f"[{self.job}] {line}\n")
        # The last line that says something; Rich boxes end with a border line.
        lines = [line.strip(_BOX) for line in text.splitlines()]
        lines = [line for line in lines if any(char.isalnum() for char in line)]
        self._message = lines[-1][:MESSAGE_CHARS] if lines else None
