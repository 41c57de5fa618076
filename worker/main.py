"""Run the carepath worker until interrupted."""

from __future__ import annotations

import asyncio
import logging
import signal

from store.db import migrate
from services.settings import Settings, get_settings
from services.temporal import connect
from worker.bootstrap import build_worker

log = logging.getLogger("carepath.worker")


async def run_worker(settings: Settings) -> None:
    await asyncio.to_thread(migrate, settings.DATABASE_URL)
    client = await connect(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with build_worker(client, settings) as worker:
        log.info("worker polling task queue %s at %s", settings.TASK_QUEUE, settings.TEMPORAL_ADDRESS)
        async with worker:
            await stop.wait()
    log.info("worker stopped")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(run_worker(get_settings()))


if __name__ == "__main__":
    main()
