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


@pytest.fixture(scope="session")
def peer_bin() -> Path:
    path = Path(os.path.abspath(os.environ.get("TACHYON_PEER", ROOT / "target" / "ci" / "tachyon-peer")))
    if not path.exists():
        msg = f"tachyon-peer not found at {path}; `make build` provides it"
        if os.environ.get("TACHYON_REQUIRE_PEERS") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture
def sock_path() -> str:
    return f"/tmp/tachyon-py-{uuid.uuid4().hex[:12]}.sock"



@pytest.fixture(scope="session")
def upstream_python() -> Path:
    """Upstream's `tachyon-ipc` lives in its own venv: both packages import as `tachyon`."""
    path = Path(os.path.abspath(os.environ.get("UPSTREAM_PYTHON", ROOT / ".venv-upstream" / "bin" / "python")))
    if not path.exists():
        msg = f"upstream tachyon-ipc venv not found at {path}; `make upstream` provides it"
        if os.environ.get("TACHYON_REQUIRE_PEERS") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return path
