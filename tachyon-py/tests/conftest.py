"""Fixtures for the `tachyon` Python package tests: real processes over real shared memory.

`make test` builds the extension into `.venv` and `tachyon-peer` (the Rust test peer), and
sets `TACHYON_REQUIRE_PEERS=1` so a missing piece fails instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from helpers import ROOT


def _need(path: Path, what: str, target: str) -> Path:
    """`path`, or a skip (a failure under TACHYON_REQUIRE_PEERS=1) naming the make target
    that provides it."""
    path = Path(os.path.abspath(path))  # abspath: a venv's python symlink must not be followed
    if not path.exists():
        msg = f"{what} not found at {path}; `make {target}` provides it"
        if os.environ.get("TACHYON_REQUIRE_PEERS") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def peer_bin() -> Path:
    return _need(Path(os.environ.get("TACHYON_PEER", ROOT / "target" / "ci" / "tachyon-peer")), "tachyon-peer", "build")


@pytest.fixture
def sock_path() -> str:
    return f"/tmp/tachyon-py-{uuid.uuid4().hex[:12]}.sock"


@pytest.fixture(scope="session")
def upstream_python() -> Path:
    """Upstream's `tachyon-ipc` lives in its own venv: both packages import as `tachyon`."""
    default = ROOT / ".venv-upstream" / "bin" / "python"
    return _need(Path(os.environ.get("UPSTREAM_PYTHON", default)), "upstream tachyon-ipc venv", "upstream")
