"""A dashboard as one self-contained HTML file: its data, charts and scripts inline.

``dataflow dashboard export NAME --html OUT.html`` runs the dashboard once and writes a page
that draws it without a server: the styles, ECharts, the page helpers and ``dashboard.js`` are
inlined, and the spec with every visual's rows sits in a ``<script type="application/json">``
block that ``dashboard.js`` reads instead of fetching. A Content-Security-Policy meta tag
forbids every request (``default-src 'none'``), so opening the file from disk, offline, shows
exactly what was exported — and nothing in the data can reach the network or become markup:
``<`` in the JSON is written ``\\u003c``, so a value cannot close the script block.

Example:
    >>> html = export_html(settings, "market", {"symbol": "MSFT"})  # doctest: +SKIP
    >>> Path("market.html").write_text(html, encoding="utf-8")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dataflow.config import Settings
    from dataflow.dashboard.spec import Dashboard
    from dataflow.dashboard.visuals import DashboardResult, DashboardRunner

STATIC = Path(__file__).parent / "static"
SCRIPTS = ("vendor/echarts.min.js", "app.js", "dashboard.js")
"""Inlined in this order: the chart library, the page helpers (``window.df``), the dashboard."""
STYLES = ("app.css", "dashboard.css")
EXPORT_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; base-uri 'none'; form-action 'none'"
)
"""No request of any kind: the snapshot is all there is."""


def export_html(
    settings: Settings,
    dashboard: Dashboard | str,
    params: Mapping[str, Any] | None = None,
    *,
    runner: DashboardRunner | None = None,
    now: dt.datetime | None = None,
) -> str:
    """Run ``dashboard`` (a name or a loaded one) and return its self-contained HTML snapshot.

    Raises:
        ConfigError: no such dashboard, a broken file, or a bad parameter value.

    Example:
        >>> page = export_html(settings, "market")  # doctest: +SKIP
        >>> 'id="dashboard-snapshot"' in page  # doctest: +SKIP
        True
    """
    from dataflow.dashboard.spec import load_dashboard
    from dataflow.dashboard.visuals import DashboardRunner

    board = load_dashboard(settings, dashboard) if isinstance(dashboard, str) else dashboard
    if runner is None:
        with DashboardRunner(settings) as own:
            return export_html(settings, board, params, runner=own, now=now)
    spec = runner.describe(board)
    result = runner.run(board, params)
    return render_snapshot(settings, spec, result, now=now)


def render_snapshot(
    settings: Settings,
    spec: dict[str, Any],
    result: DashboardResult,
    *,
    now: dt.datetime | None = None,
) -> str:
    """The HTML page of a described dashboard (:meth:`DashboardRunner.describe`) and its data."""
    from dataflow import __version__

    exported = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    snapshot = {
        "spec": spec,
        "data": result.to_json(),
        "exported_at": exported.isoformat(),
        "project": settings.project_dir.name,
        "version": __version__,
    }
    title = html.escape(str(spec.get("title") or spec["name"]))
    styles = "\n".join(
        _inline((STATIC / name).read_text(encoding="utf-8"), "style") for name in STYLES
    )
    scripts = "\n".join(
        f"<script>{_inline((STATIC / name).read_text(encoding='utf-8'), 'script')}</script>"
        for name in SCRIPTS
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{EXPORT_CSP}">
<meta name="generator" content="Dataflow {html.escape(__version__)}">
<title>{title} · Dataflow snapshot</title>
<link rel="icon" href="data:,">
<style>
{styles}
</style>
</head>
<body data-page="export">
<header class="topbar">
  <span class="brand">Dataflow</span>
  <span class="project" title="project">{html.escape(settings.project_dir.name)}</span>
</header>
<main id="main">
  <h1>{title}</h1>
  <div id="messages" role="status" aria-live="polite"></div>
  <div id="dashboard" class="dashboard" data-name="{html.escape(str(spec["name"]))}" \
data-state="loading" data-generation="0"></div>
</main>
<script type="application/json" id="dashboard-snapshot">{script_json(snapshot)}</script>
{scripts}
</body>
</html>
"""


def script_json(data: Any) -> str:
    """``data`` as JSON that is safe inside a ``<script>`` block (``<``, ``>``, ``&`` escaped).

    Example:
        >>> script_json({"x": "</script><b>"})
        '{"x": "\\\\u003c/script\\\\u003e\\\\u003cb\\\\u003e"}'
    """
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _inline(text: str, tag: str) -> str:
    """Source text that cannot end its ``<script>`` / ``<style>`` element early."""
    text = re.sub(rf"</(?={tag})", r"<\\/", text, flags=re.IGNORECASE)
    return text.replace("<!--", "<\\!--")


def write_export(
    settings: Settings,
    name: str,
    out: Path,
    params: Mapping[str, Any] | None = None,
) -> DashboardResult:
    """Write the snapshot of dashboard ``name`` to ``out`` and return the data it holds.

    Raises:
        ConfigError: as :func:`export_html`; StorageError: ``out`` cannot be written.
    """
    from dataflow.dashboard.spec import load_dashboard
    from dataflow.dashboard.visuals import DashboardRunner
    from dataflow.errors import StorageError

    board = load_dashboard(settings, name)
    with DashboardRunner(settings) as runner:
        spec = runner.describe(board)
        result = runner.run(board, params)
    page = render_snapshot(settings, spec, result)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        raise StorageError(f"cannot write {out}: {exc.strerror or exc}") from exc
    return result


__all__ = ["EXPORT_CSP", "export_html", "render_snapshot", "script_json", "write_export"]
