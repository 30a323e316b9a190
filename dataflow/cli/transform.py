"""`dataflow transform`: raw zone -> Iceberg clean tables through the SQL models.

By default the transform goes through the same quality gate as ``dataflow run``: it writes to
each table's audit branch, the quality stage audits it against its ruleset and the publish
stage moves ``main`` (what readers see) to the approved snapshot — the stage classes of
:func:`dataflow.pipeline.default_stages`, limited to the tables transformed. ``--no-gate``
writes straight to ``main`` with no audit, as before the quality stage existed.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dataflow.cli.common import (
    EngineOption,
    FormatOption,
    OutputFormat,
    ProjectOption,
    console,
    engine_overrides,
    handle_errors,
    print_json,
    print_table,
    settings_for,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from dataflow.contract import Stage

TablesOption = Annotated[
    str | None,
    typer.Option("--tables", help="Comma-separated tables to build (default: all models)."),
]
FullRefreshOption = Annotated[
    bool,
    typer.Option("--full-refresh", help="Rebuild the tables from every raw file."),
]
NoGateOption = Annotated[
    bool,
    typer.Option(
        "--no-gate",
        help=(
            "Write straight to the tables' main branch, with no quality audit and no publish "
            "step (default: write on the audit branch, check the rulesets, publish what passes)."
        ),
    ),
]

GATED_STAGES = ("transform", "quality", "publish")
"""The stages of ``dataflow run`` that a gated ``dataflow transform`` runs."""


def register(app: typer.Typer) -> None:
    """Add the ``transform`` command."""
    app.command("transform")(transform)


@handle_errors
def transform(
    project: ProjectOption = None,
    tables: TablesOption = None,
    full_refresh: FullRefreshOption = False,
    no_gate: NoGateOption = False,
    output: FormatOption = OutputFormat.TABLE,
    engine: EngineOption = None,
) -> None:
    """Transform new raw files into the Iceberg clean tables (upsert, bookmarked).

    The new data is audited and published as in `dataflow run`: written on each table's audit
    branch, checked against its quality ruleset, and published to readers only if its policy
    lets it through. Exit status 1 when a table is blocked by a fail gate.
    """
    from dataflow.monitor.logs import configure_logging
    from dataflow.pipeline import RunOptions, run_pipeline
    from dataflow.transform.models import discover_models, select_models
    from dataflow.transform.writer import QUARANTINE_TABLE

    settings = settings_for(project, **engine_overrides(engine))
    chosen = [t.strip() for t in tables.split(",") if t.strip()] if tables else None
    # Bad names fail before a run.
    targets = [m.target for m in select_models(discover_models(settings.project_dir), chosen)]
    # Rows that could not be parsed go to the shared parse-quarantine, on the same audit branch.
    targets.append(QUARANTINE_TABLE)
    configure_logging(level=settings.logging.level, rich_console=console(stderr=True))
    stages = transform_stages(chosen, targets, full_refresh=full_refresh, gate=not no_gate)
    result = run_pipeline(settings, RunOptions(full_refresh=full_refresh), stages=stages)
    outcome = result.results["transform"]
    per_table = outcome.details.get("tables", {})
    gate = {
        name: {"status": r.status, "message": r.message, "details": r.details}
        for name, r in result.results.items()
        if name != "transform"
    }
    if output is OutputFormat.JSON:
        data: dict[str, Any] = {
            "run_id": result.run.run_id,
            "status": result.status,
            "gated": not no_gate,
            "tables": per_table,
        }
        print_json({**data, **gate})
    else:
        columns = ["table", "files", "rows in", "rows out", "quarantined", "seconds"]
        rows = [
            [name, s["files"], s["rows_in"], s["rows_out"], s["quarantined"], s["seconds"]]
            for name, s in per_table.items()
        ]
        print_table(f"transform {result.run.run_id}: {result.status}", columns, rows)
        for name, stage in gate.items():
            console().print(f"{name}: {stage['status']} — {stage['message']}", markup=False)
    if result.status == "failed":
        raise typer.Exit(1)


def transform_stages(
    chosen: Sequence[str] | None,
    targets: Sequence[str],
    *,
    full_refresh: bool,
    gate: bool = True,
) -> list[Stage]:
    """The stages ``dataflow transform`` runs: transform, then quality and publish unless ungated.

    The stages are those of :func:`dataflow.pipeline.default_stages` (the transform keeps its
    audit branch there), limited to ``targets`` — the tables the selected models write — so a
    table blocked by an earlier run's gate does not fail this one.

    Args:
        chosen: the ``--tables`` given (None: every model).
        targets: the tables the selected models write.
        full_refresh: rebuild from every raw file.
        gate: False: only the transform, writing to ``main``.

    Example:
        >>> [s.name for s in transform_stages(None, ["quotes"], full_refresh=False)]
        ['transform', 'quality', 'publish']
    """
    from dataflow.pipeline import default_stages

    found = {s.name: s for s in default_stages() if s.name in GATED_STAGES}
    changes: dict[str, dict[str, Any]] = {
        "transform": {"tables": chosen, "full_refresh": full_refresh},
        "quality": {"tables": list(targets)},
        "publish": {"tables": list(targets)},
    }
    if not gate:
        return [_replace(found["transform"], branch=None, **changes["transform"])]
    return [_replace(found[name], **changes[name]) for name in GATED_STAGES]


def _replace(stage: Any, **changes: Any) -> Stage:
    """A copy of a stage (a dataclass) with some fields changed."""
    copy: Stage = dataclasses.replace(stage, **changes)
    return copy
