"""`/api/dashboards`: (being built)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["dashboards"])

__all__ = ["router"]
