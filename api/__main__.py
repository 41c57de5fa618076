"""Serve the API as the image does, with JSON logs: `python -m api`.

WEB_CONCURRENCY (uvicorn's own variable) runs that many API processes on the one port, each with its
own connection pool and request limit: one process answers about 44 enrollments/s."""

from __future__ import annotations

import os
import tempfile

import uvicorn

from api.metrics import MULTIPROCESS_DIR
from services.logs import LOGGING


def main() -> None:
    if int(os.environ.get("WEB_CONCURRENCY", "1")) > 1 and MULTIPROCESS_DIR not in os.environ:
        # Each process counts its own requests; /metrics, answered by any one of them, sums every
        # process's from files here (prometheus-client's multiprocess mode), fresh for each start.
        os.environ[MULTIPROCESS_DIR] = tempfile.mkdtemp(prefix="carepath-api-metrics-")
    # Client addresses (sign-in throttling, the audit) come from X-Forwarded-For only when the proxy is
    # listed in FORWARDED_ALLOW_IPS, uvicorn's own variable (default 127.0.0.1).
    uvicorn.run("api.main:create_app", factory=True, host="0.0.0.0", port=8000, log_config=LOGGING)


if __name__ == "__main__":
    main()
