"""Serve the API as the image does, with JSON logs: `python -m api`."""

from __future__ import annotations

import uvicorn

from services.logs import LOGGING


def main() -> None:
    # Client addresses (sign-in throttling, the audit) come from X-Forwarded-For only when the proxy is
    # listed in FORWARDED_ALLOW_IPS, uvicorn's own variable (default 127.0.0.1).
    uvicorn.run("api.main:create_app", factory=True, host="0.0.0.0", port=8000, log_config=LOGGING)


if __name__ == "__main__":
    main()
