"""Run the carepath worker until interrupted."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from temporalio.runtime import Runtime

from services.logs import configure_logging
from services.settings import Settings, get_settings
from services.temporal import connect
from store.db import create_engine
from store.schema import SchemaNotCurrent, require_current_schema
from worker.bootstrap import build_worker
from worker.metrics import serving_metrics, temporal_runtime

log = logging.getLogger("carepath.worker")


async def run_worker(settings: Settings) -> None:
    engine = create_engine(settings.DATABASE_URL)
    try:
        await require_current_schema(engine)
    finally:
        await engine.dispose()
    runtime = temporal_runtime(settings.METRICS_HOST, settings.TEMPORAL_METRICS_PORT)
    if runtime is not None:
        # Before the client exists: the client and the worker use the default runtime.
        Runtime.set_default(runtime)
    client = await connect(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with serving_metrics(settings), build_worker(client, settings) as worker:
        log.info("worker polling task queue %s at %s", settings.TASK_QUEUE, settings.TEMPORAL_ADDRESS)
        async with worker:
            await stop.wait()
    log.info("worker stopped")


def main() -> None:
    configure_logging()
    try:
        asyncio.run(run_worker(get_settings()))
    except SchemaNotCurrent as refused:
        sys.exit(f"carepath worker: {refused}")


if __name__ == "__main__":
    main()
