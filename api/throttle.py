"""Rate limits per client address: sign-in (against password guessing across accounts; each account
also locks itself after five failures) and the patient's form link (against token guessing).

In-process memory: each API process counts alone, so N processes admit N times the rate; a shared
store (`limits` speaks Redis and Memcached) would make it one count when carepath runs several.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from fastapi import HTTPException, Request, status
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from api.deps import SettingsDep
from services.settings import Settings

_limiter = MovingWindowRateLimiter(MemoryStorage())


class Throttle:
    """A FastAPI dependency: 429 with Retry-After once an address has used up its rate (e.g. "20/minute",
    read from the settings by `rate_of`)."""

    def __init__(self, name: str, rate_of: Callable[[Settings], str]):
        self._name, self._rate_of = name, rate_of

    async def __call__(self, request: Request, settings: SettingsDep) -> None:
        rate = parse(self._rate_of(settings))
        address = request.client.host if request.client else "unknown"
        if not _limiter.hit(rate, self._name, address):
            reset = _limiter.get_window_stats(rate, self._name, address).reset_time
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many attempts from this address; try again "
                                                                   "in a minute",
                                headers={"Retry-After": str(max(1, math.ceil(reset - time.time())))})


sign_in_throttle = Throttle("sign-in", lambda settings: settings.SIGN_IN_RATE_LIMIT)
form_throttle = Throttle("form", lambda settings: settings.FORM_RATE_LIMIT)
