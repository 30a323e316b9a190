"""`dataflow dq`: Glue Data Quality (DQDL) rulesets. For now: `dataflow dq parse FILE`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dataflow.cli.common import (
    FormatOption,
    OutputFormat,
    console,
    handle_errors,
    print_json,
    print_table,
)

if TYPE_CHECKING:
    from dataflow.quality.dqdl import RuleNode, Ruleset

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
