"""The yardstick: the least a Temporal workflow can do for the same schedule.

One durable timer and one no-op activity per touchpoint, nothing else: plain pydantic payloads, not
encrypted (carepath's own payloads are; the comparison includes that cost). `bench/throughput.py`
runs it beside the carepath engine; `python bench/raw_workflow.py --address ... --task-queue ...`
is its worker, a process of its own as the carepath worker is.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

TOUCH = "touch"


@dataclass(frozen=True)
class Schedule:
    """Touchpoint k (0-based) is due at anchor + first + k * every, as in a pathway's `repeat`."""

    anchor: datetime
    first_seconds: int
    every_seconds: int
    touchpoints: int

    def due(self, k: int) -> datetime:
        return self.anchor + timedelta(seconds=self.first_seconds + k * self.every_seconds)


@activity.defn(name=TOUCH)
async def touch(occurrence: int) -> None:
    """Stands in for a delivery: does nothing."""


@workflow.defn(name="RawTouchpoints")
class RawTouchpoints:
    @workflow.run
    async def run(self, schedule: Schedule) -> int:
        for k in range(schedule.touchpoints):
            delay = schedule.due(k) - workflow.now()
            if delay > timedelta(0):
                await workflow.sleep(delay)
            await workflow.execute_activity(TOUCH, k + 1, start_to_close_timeout=timedelta(seconds=30))
        return schedule.touchpoints


async def serve(address: str, task_queue: str) -> None:
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    async with Worker(client, task_queue=task_queue, workflows=[RawTouchpoints], activities=[touch]):
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    options = parser.parse_args()
    asyncio.run(serve(options.address, options.task_queue))
