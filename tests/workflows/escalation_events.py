"""Waiting for an escalation the pathway decided on: an update returns once the answer is decided, and
the escalation's child workflow starts (and enters the timeline) a moment later, in real time."""

from __future__ import annotations

import asyncio

from temporalio.client import WorkflowHandle

from workflows.pathway import PathwayWorkflow


async def started_escalation(workflow: WorkflowHandle, number: int = 1) -> str:
    """The id of the pathway's `number`th escalation, once its child workflow has started."""
    for _ in range(100):
        timeline = await workflow.query(PathwayWorkflow.timeline)
        started = [event.escalation_id for event in timeline.events if event.kind == "escalation"]
        if len(started) >= number:
            return started[number - 1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"escalation {number} did not start within 5 seconds")
