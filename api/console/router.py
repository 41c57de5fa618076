"""Every console page, under /console/, for api.main to include."""

from __future__ import annotations

from fastapi import APIRouter

from api.console import frame

router = APIRouter()
router.include_router(frame.router)
