"""``GET /docs``: the API's endpoints as one self-contained HTML page.

FastAPI's own ``/docs`` loads Swagger UI from a CDN, which breaks "works offline, nothing
downloaded". This page is rendered from the same OpenAPI schema (served at ``/openapi.json``
for tools) with no script, stylesheet or font from anywhere; every text is escaped.

Example:
    >>> schema = {"info": {"title": "T", "version": "1"},
    ...           "paths": {"/healthz": {"get": {"summary": "<ok>"}}}}
    >>> "&lt;ok&gt;" in docs_html(schema)
    True
"""

from __future__ import annotations

from html import escape
from typing import Any

_METHODS = ("get", "post", "put", "patch", "delete")

_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #ddd; }
td { vertical-align: top; }
code { font-family: ui-monospace, monospace; }
.m { font-weight: 600; font-family: ui-monospace, monospace; }
.desc { color: #555; white-space: pre-line; }
"""

CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'"
"""The page needs nothing but its own inline style."""


def docs_html(schema: dict[str, Any]) -> str:
    """The endpoints of an OpenAPI schema as an HTML page: method, path, parameters, summary."""
    info = schema.get("info", {})
    title = escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
    rows = []
    for path, operations in schema.get("paths", {}).items():
        for method in _METHODS:
            operation = operations.get(method)
            if operation is None:
                continue
            params = ", ".join(
                f"{p['name']} ({p.get('in', '')})" for p in operation.get("parameters", [])
            )
            if "requestBody" in operation:
                params = ", ".join(filter(None, [params, "JSON body"]))
            rows.append(
                "<tr>"
                f'<td class="m">{escape(method.upper())}</td>'
                f"<td><code>{escape(path)}</code></td>"
                f"<td>{escape(params)}</td>"
                f"<td>{escape(operation.get('summary', ''))}"
                f'<div class="desc">{escape(operation.get("description", ""))}</div></td>'
                "</tr>"
            )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{title}</h1>"
        '<p>The machine-readable schema is at <a href="/openapi.json"><code>/openapi.json</code>'
        "</a>. With a token, send <code>Authorization: Bearer &lt;token&gt;</code> to every "
        "<code>/api</code> route and <code>/metrics</code>; POST bodies must be JSON.</p>"
        "<table><thead><tr><th>method</th><th>path</th><th>parameters</th><th>what</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table></body></html>\n"
    )


__all__ = ["CONTENT_SECURITY_POLICY", "docs_html"]
