"""`/api/pipeline`: (being built)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["pipeline"])

__all__ = ["router"]
