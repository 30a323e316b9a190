"""`dataflow dq`: Glue Data Quality (DQDL) rulesets: parse, check, results, history, recommend."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dataflow.cli.common import (
    FormatOption,
    OutputFormat,
    ProjectOption,
    console,
    handle_errors,
    print_json,
    print_table,
    settings_for,
)

if TYPE_CHECKING:
    from dataflow.quality.dqdl import RuleNode, Ruleset
    from dataflow.quality.outcomes import EvaluationResult

dq_app = typer.Typer(
    name="dq",
    help="Data quality: AWS Glue DQDL rulesets, run locally.",
    no_args_is_help=True,
)

RulesetArgument = Annotated[
    Path, typer.Argument(help="A DQDL ruleset file (.dqdl).", show_default=False)
]


def register(app: typer.Typer) -> None:
    """Add the ``dq`` command group."""
    app.add_typer(dq_app)


@dq_app.command("parse")
@handle_errors
def parse(file: RulesetArgument, output: FormatOption = OutputFormat.TABLE) -> None:
    """Check that a DQDL ruleset parses: exit 0 with a summary, 2 with the parsing error."""
    from dataflow.quality.dqdl import load_ruleset, to_data

    ruleset = load_ruleset(file)
    if output is OutputFormat.JSON:
        print_json(to_data(ruleset))
        return
    counts = summarize(ruleset)
    rows = [[name, n_rules, n_analyzers] for name, (n_rules, n_analyzers) in counts.items()]
    # The summary is its own line: a table title would wrap at the table's width.
    console().print(
        f"{file.name}: {len(ruleset.rules)} rules, {len(ruleset.analyzers)} analyzers, "
        f"{len(counts)} rule types",
        markup=False,
    )
    print_table(None, ["rule type", "rules", "analyzers"], rows)


def summarize(ruleset: Ruleset) -> dict[str, tuple[int, int]]:
    """Rule type -> (rules using it, counting inside composites; analyzers using it), sorted."""
    from dataflow.quality.dqdl import CompositeRule

    counts: dict[str, list[int]] = {}

    def visit(node: RuleNode) -> None:
        if isinstance(node, CompositeRule):
            for child in node.children:
                visit(child)
        else:
            counts.setdefault(node.rule_type, [0, 0])[0] += 1

    for rule in ruleset.rules:
        visit(rule)
    for analyzer in ruleset.analyzers:
        counts.setdefault(analyzer.analyzer_type, [0, 0])[1] += 1
    return {name: (c[0], c[1]) for name, c in sorted(counts.items())}


# --- check, results, history ---------------------------------------------------------------------

TableOption = Annotated[
    str | None,
    typer.Option("--table", help="The catalog table to check, as DB.TABLE.", show_default=False),
]
DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="A CSV, Parquet or JSON file to check (no project needed).",
        show_default=False,
    ),
]
ReferenceOption = Annotated[
    list[str] | None,
    typer.Option(
        "--reference",
        "-r",
        help="A reference dataset for the *Match rules: ALIAS=DB.TABLE or ALIAS=PATH.",
        show_default=False,
    ),
]
RowLevelOption = Annotated[
    Path | None,
    typer.Option(
        "--row-level",
        help="Write the rows with Glue's row-level outcome columns to this Parquet file.",
        show_default=False,
    ),
]
ContextOption = Annotated[
    str,
    typer.Option("--context", help="Evaluation context: history is kept per context."),
]


@dq_app.command("check")
@handle_errors
def check(
    file: RulesetArgument,
    table: TableOption = None,
    data: DataOption = None,
    reference: ReferenceOption = None,
    output: FormatOption = OutputFormat.TABLE,
    row_level: RowLevelOption = None,
    context: ContextOption = "default_context",
    project: ProjectOption = None,
) -> None:
    """Evaluate a ruleset on a table or a data file: exit 0 if every rule passed, 1 if not.

    With a project (always for --table, with --project for --data) the evaluation is recorded
    in its metadata database and dynamic rules (last(k)) read that history.
    """
    from dataflow.errors import ConfigError
    from dataflow.quality.check import check_ruleset, is_table_name, write_row_level

    references: dict[str, str] = {}
    for item in reference or []:
        alias, sep, source = item.partition("=")
        if not sep or not alias.strip() or not source.strip():
            raise ConfigError(f"--reference {item!r}: write ALIAS=DB.TABLE or ALIAS=PATH")
        references[alias.strip()] = source.strip()
    settings = db = None
    needs_project = table is not None or project is not None
    needs_project = needs_project or any(is_table_name(s) for s in references.values())
    if needs_project:
        from dataflow.metadata import open_metadata

        settings = settings_for(project)
        db = open_metadata(settings.metadata_url)
    try:
        outcome = check_ruleset(
            file,
            table=table,
            data=data,
            references=references,
            settings=settings,
            db=db,
            evaluation_context=context,
        )
        if row_level is not None:
            written = write_row_level(outcome.evaluator, row_level)
            console(stderr=True).print(f"{written} rows written to {row_level}", markup=False)
    finally:
        if db is not None:
            db.dispose()
    result = outcome.result
    if output is OutputFormat.JSON:
        print_json(check_json(result))
    else:
        print_result(result)
    if not result.passed:
        raise typer.Exit(1)


def check_json(result: EvaluationResult) -> dict[str, object]:
    """The JSON of ``dq check``: Score, RuleResults (Glue's field names), AggregatedMetrics."""
    data = result.to_glue()
    return {
        "Score": data["Score"],
        "RuleResults": data["RuleResults"],
        "AnalyzerResults": data["AnalyzerResults"],
        "AggregatedMetrics": data["AggregatedMetrics"],
        "ResultId": data["ResultId"],
        "DataSource": data["DataSource"],
        "RulesetName": data["RulesetName"],
        "EvaluationContext": data["EvaluationContext"],
    }


def print_result(result: EvaluationResult) -> None:
    """One evaluation as a table of rule outcomes with its score."""
    rows = [
        [
            r.name,
            r.result,
            r.description,
            r.message or "",
            ", ".join(f"{k}={v:g}" for k, v in r.metrics.items()),
        ]
        for r in result.rule_results
    ]
    print_table(None, ["rule", "result", "description", "message", "metrics"], rows)
    console().print(
        f"{result.dataset}: score {result.score:.2f} ({result.count('PASS')} passed, "
        f"{result.count('FAIL')} failed, {result.count('ERROR')} errors of "
        f"{len(result.rule_results)} rules; {result.rows} rows)",
        markup=False,
    )


@dq_app.command("results")
@handle_errors
def results(
    table: Annotated[str | None, typer.Option("--table", help="Only this dataset.")] = None,
    run: Annotated[str | None, typer.Option("--run", help="Only this run id.")] = None,
    output: FormatOption = OutputFormat.TABLE,
    project: ProjectOption = None,
) -> None:
    """Show recorded evaluations with their rule outcomes, newest first."""
    evaluations = _evaluations(project, table=table, run_id=run, limit=20)
    if output is OutputFormat.JSON:
        print_json([e.to_glue() for e in evaluations])
        return
    if not evaluations:
        console().print("no evaluations recorded", markup=False)
        return
    for evaluation in evaluations:
        console().print(
            f"{evaluation.result_id} {evaluation.ruleset_name} on {evaluation.dataset} at "
            f"{evaluation.completed_on:%Y-%m-%d %H:%M:%S} (run {evaluation.run_id or '-'})",
            markup=False,
        )
        print_result(evaluation)


@dq_app.command("history")
@handle_errors
def history(
    table: Annotated[str, typer.Argument(help="The dataset, as DB.TABLE.", show_default=False)],
    limit: Annotated[int, typer.Option("--limit", help="How many evaluations.")] = 50,
    output: FormatOption = OutputFormat.TABLE,
    project: ProjectOption = None,
) -> None:
    """Show the score and rule counts of a table's evaluations over time, newest first."""
    evaluations = _evaluations(project, table=table, run_id=None, limit=limit)
    rows = [
        {**e.summary(), "CompletedOn": e.completed_on.isoformat() if e.completed_on else None}
        for e in evaluations
    ]
    if output is OutputFormat.JSON:
        print_json(rows)
        return
    columns = ["CompletedOn", "RulesetName", "Score", "RulesPassed", "RulesFailed", "Rows", "RunId"]
    print_table(table, columns, [[r[c] for c in columns] for r in rows])


def _evaluations(
    project: Path | None, *, table: str | None, run_id: str | None, limit: int
) -> list[EvaluationResult]:
    from dataflow.metadata import open_metadata
    from dataflow.quality.datasets import split_table_name
    from dataflow.quality.history import HistoryStore

    settings = settings_for(project)
    db = open_metadata(settings.metadata_url)
    try:
        dataset = None
        if table is not None:
            dataset = ".".join(split_table_name(table, settings.catalog.namespace))
        return HistoryStore(db).evaluations(dataset=dataset, run_id=run_id, limit=limit)
    finally:
        db.dispose()


# --- recommend -----------------------------------------------------------------------------------


@dq_app.command("recommend")
@handle_errors
def recommend(
    table: TableOption = None,
    data: DataOption = None,
    output_file: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the ruleset to this file.", show_default=False),
    ] = None,
    statistics: Annotated[
        bool, typer.Option("--statistics", help="Also recommend Mean and StandardDeviation.")
    ] = False,
    project: ProjectOption = None,
) -> None:
    """Profile a table or a data file and print a starter DQDL ruleset that passes on it.

    Like Glue's recommendation runs: row count, completeness, keys, value sets, ranges and
    lengths from one scan. Review the bounds before gating publication on them.
    """
    from dataflow.quality.recommend import recommend_dataset

    settings = db = None
    if table is not None or project is not None:
        from dataflow.metadata import open_metadata

        settings = settings_for(project)
        db = open_metadata(settings.metadata_url)
    try:
        found = recommend_dataset(
            table=table, data=data, settings=settings, db=db, statistics=statistics
        )
    finally:
        if db is not None:
            db.dispose()
    for rule in found.dropped:
        console(stderr=True).print(f"left out (does not pass on this data): {rule}", markup=False)
    text = found.text + "\n"
    if output_file is not None:
        output_file.parent.mkdir(parents=True, exist_ok=True)
        output_file.write_text(text, encoding="utf-8")
        rules = len(found.ruleset.rules)
        console(stderr=True).print(f"{rules} rules written to {output_file}", markup=False)
    else:
        typer.echo(text, nl=False)
