"""Fixtures of the schema tests: the Rust peer, Node with the package on its path, and
the generated modules on Python's path."""

from __future__ import annotations

import os
import tempfile
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


@pytest.fixture
def sock() -> Iterator[str]:
    path = f"{tempfile.gettempdir()}/tachyon-schema-{uuid.uuid4().hex[:10]}.sock"
    yield path
    if os.path.exists(path):
        os.unlink(path)
