"""`dataflow dashboard`: dashboards as code (``dashboards/*.yaml``): list, validate, export."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the `dashboard` command group."""
    group = typer.Typer(help="Dashboards as code: list, validate and export dashboards/*.yaml.")
    app.add_typer(group, name="dashboard")


__all__ = ["register"]
