"""Fixtures for the `tachyon` Python package tests: real processes over real shared memory.

`make test` builds the extension into `.venv` and `tachyon-peer` (the Rust test peer), and
sets `TACHYON_REQUIRE_PEERS=1` so a missing piece fails instead of skipping.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import pytest

from helpers import ROOT


@pytest.fixture
def sock_path() -> str:
    return f"{tempfile.gettempdir()}/tachyon-py-{uuid.uuid4().hex[:12]}.sock"
