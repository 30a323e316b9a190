"""The HTTP app of ``dataflow serve`` (the QuickSight stage): a FastAPI factory and its routers.

* :func:`create_app` — the app for one project: ``/api/queries`` (Athena-style SQL),
  ``/api/catalog``, ``/api/runs``, ``/api/metrics``, ``/api/alarms``, ``/metrics``
  (Prometheus), ``/healthz``, ``/docs`` and ``/openapi.json``.

Example:
    >>> from dataflow.dashboard import create_app
    >>> app = create_app(settings)  # doctest: +SKIP
"""

from dataflow.dashboard.app import create_app

__all__ = ["create_app"]
