"""Headless Chromium for tests that look at rendered pages.

`make test` installs Debian's chromium first where it may (root, CI=true: see the Makefile's
`browser` target); elsewhere these tests skip and say how to get it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class Chromium:
    def __init__(self, binary: Path, profiles: Path):
        self.binary, self.profiles, self.runs = binary, profiles, 0

    def _run(self, page: Path, *arguments: str) -> subprocess.CompletedProcess:
        self.runs += 1
        profile = self.profiles / f"profile-{self.runs}"  # a fresh profile: no state between pages
        return subprocess.run([str(self.binary), *FLAGS, f"--user-data-dir={profile}", *arguments, page.as_uri()],
                              capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)

    def dump_dom(self, page: Path) -> str:
        """The document as the browser parsed and laid it out."""
        run = self._run(page, "--dump-dom")
        assert run.returncode == 0 and run.stdout.strip(), run.stderr[-2000:]
        return run.stdout

    def screenshot(self, page: Path, png: Path, width: int = 1200, height: int = 1400) -> Path:
        run = self._run(page, f"--window-size={width},{height}", "--hide-scrollbars", f"--screenshot={png}")
        assert run.returncode == 0 and png.exists(), run.stderr[-2000:]
        return png


@pytest.fixture(scope="session")
def chromium(tmp_path_factory) -> Chromium:
    binary = CHROMIUM if CHROMIUM.exists() else (Path(found) if (found := shutil.which("chromium")) else None)
    if binary is None:
        pytest.skip("headless Chromium is not installed (/usr/bin/chromium): `apt-get install -y chromium` as root, "
                    "or run `make test` with CI=true, which installs it")
    return Chromium(binary, tmp_path_factory.mktemp("chromium"))
