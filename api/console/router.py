"""Every console page, under /console/, for api.main to include."""

from __future__ import annotations

from fastapi import APIRouter

from api.console import frame, pathways, patients, reports, summary, worklist

router = APIRouter()
router.include_router(frame.router)
router.include_router(worklist.router)
router.include_router(patients.router)
router.include_router(pathways.router)
router.include_router(reports.router)
router.include_router(summary.router)
