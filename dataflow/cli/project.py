"""`dataflow init`: scaffold a project."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dataflow.cli.common import console, handle_errors


def register(app: typer.Typer) -> None:
    """Add the project commands."""
    app.command("init")(init)


@handle_errors
def init(
    directory: Annotated[Path, typer.Argument(help="Folder of the new project.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite dataflow.yaml.")] = False,
) -> None:
    """Scaffold a project: a commented dataflow.yaml, models/ quality/ dashboards/ queries/."""
    from dataflow.project import init_project

    created = init_project(directory, force=force)
    out = console()
    out.print(f"Created project in {directory.resolve()}:")
    for path in created:
        out.print(f"  {path.relative_to(directory)}{'/' if path.is_dir() else ''}")
    out.print(f"Next: dataflow run --project {directory}")
