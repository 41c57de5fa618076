"""The messages a PathwayWorkflow is delivering. One can wait out a mail outage for up to a day
(effects.send), so it goes on beside the agenda: no escalation, questionnaire or call waits on it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine



class Deliveries:
    """Deliveries under way, by their entry's key: `key in deliveries`, `bool(deliveries)`."""

    def __init__(self) -> None:
        # One key per delivery: an invitation and a reminder of one questionnaire may both be waiting.
        self._keys: list[str] = []
        # Held until done: the event loop keeps only weak references to its tasks.
        self._tasks: set[asyncio.Task] = set()

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def __bool__(self) -> bool:
        return bool(self._keys)

    def cancel_all(self) -> None:
        """Stop every delivery still waiting or retrying (the patient has died); an attempt already talking to
        the server finishes, for the activity cannot be interrupted mid-send."""
        for task in self._tasks:
            task.cancel()

    async def start(self, key: str, delivery: Coroutine) -> None:
        """Returns at once."""
        self._keys.append(key)

        async def tracked() -> None:
            try:
                await delivery
            finally:
                self._keys.remove(key)

        task = asyncio.create_task(tracked())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
