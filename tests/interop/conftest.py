"""Fixtures for interop tests with upstream Tachyon (`tachyon-ipc==0.5.1` from PyPI).

`make test` installs upstream in `.venv-upstream` and builds `tachyon-peer`, then sets
`TACHYON_REQUIRE_PEERS=1`, so a missing piece fails the run. Run by hand without them,
these tests skip and say which `make` target provides what is missing.
"""

from __future__ import annotations

import os
import tempfile
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TIMEOUT_S = 60


@pytest.fixture
def sock_path() -> str:
    # Short path: UNIX socket paths must stay under 108 bytes.
    return f"{tempfile.gettempdir()}/tachyon-it-{uuid.uuid4().hex[:12]}.sock"


class Peers:
    """Starts the two sides and checks how each one ended."""

    def __init__(self, upstream_python: Path, peer_bin: Path) -> None:
        self.upstream_python = upstream_python
        self.peer_bin = peer_bin

    def upstream(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(self.upstream_python), str(HERE / "upstream_peer.py"), *args],
            cwd=HERE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ours(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(self.peer_bin), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    @staticmethod
    def result(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
        try:
            out, err = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"{proc.args} hung for {TIMEOUT_S}s; stderr: {err}")
        return proc.returncode, out.strip(), err.strip()


@pytest.fixture
def peers(upstream_python: Path, peer_bin: Path) -> Peers:
    return Peers(upstream_python, peer_bin)


def pytest_report_header() -> str:
    return f"interop python: {sys.executable}"
