"""Logs as one JSON object a line, for the API and the worker alike.

Temporal's loggers put the activity's or workflow's identity in a record's extras (`temporal_activity`,
`temporal_workflow`); `TemporalIds` lifts the ids out of them into top-level fields, the enrollment's
among them, so a log search finds everything that happened to an enrollment. What we log is ids,
statuses and kinds of error: never a name, a contact or an answer (tests/services/test_logs.py).
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any

from temporalio import activity, workflow

from workflows.contracts import workflow_id_for

ENROLLMENT_WORKFLOW_PREFIX = workflow_id_for("")


class TemporalIds(logging.Filter):
    """Adds `workflow_id`, `enrollment_id` and `activity_type` to records that come from Temporal code."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = getattr(record, "temporal_activity", None) or getattr(record, "temporal_workflow", None)
        if context:
            workflow_id = context.get("workflow_id")
            record.workflow_id = workflow_id
            if workflow_id and workflow_id.startswith(ENROLLMENT_WORKFLOW_PREFIX):
                record.enrollment_id = workflow_id.removeprefix(ENROLLMENT_WORKFLOW_PREFIX)
            if "activity_type" in context:
                record.activity_type = context["activity_type"]
        return True


LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"temporal_ids": {"()": TemporalIds}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "stdout": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["temporal_ids"],
                   "stream": "ext://sys.stdout"},
    },
    "root": {"level": "INFO", "handlers": ["stdout"]},
    "loggers": {
        # uvicorn's own loggers, which it would otherwise give handlers of their own (plain text).
        "uvicorn": {"handlers": [], "propagate": True},
        "uvicorn.error": {"handlers": [], "propagate": True},
        # Off: an access line has the raw path, and a patient's form link (/f/<token>) is a credential.
        # Requests by route template, status and latency are in /metrics instead.
        "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
    },
}


def configure_logging() -> None:
    logging.config.dictConfig(LOGGING)
    # The ids are fields of the JSON line already: not repeated as a dict at the end of every message.
    activity.logger.activity_info_on_message = False
    workflow.logger.workflow_info_on_message = False
