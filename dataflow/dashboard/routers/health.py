"""``GET /healthz``: the server answers and its metadata database can be read."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter

from dataflow.dashboard.deps import DbDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness and metadata database check")
def healthz(db: DbDep) -> dict[str, Any]:
    """``{"status": "ok", "version": ...}`` when the metadata database answers.

    Needs no token, so load balancers and ``curl`` can probe it; it tells nothing about data.
    """
    from dataflow import __version__

    with db.read() as conn:
        conn.execute(sa.text("SELECT 1"))
    return {"status": "ok", "version": __version__}
