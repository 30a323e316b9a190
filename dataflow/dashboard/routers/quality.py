"""`/api/quality`: (being built)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["quality"])

__all__ = ["router"]
