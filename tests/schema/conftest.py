"""Fixtures of the schema tests: the Rust peer, Node with the package on its path, and
the generated modules on Python's path."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def _need(ok: bool, msg: str) -> None:
    if ok:
        return
    if os.environ.get("TACHYON_REQUIRE_PEERS") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def peer_bin() -> Path:
    path = Path(os.environ.get("TACHYON_PEER", ROOT / "target" / "ci" / "tachyon-peer"))
    _need(path.exists(), f"tachyon-peer not found at {path}; `make build` provides it")
    return path


@pytest.fixture(scope="session")
def node_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment in which `require('tachyon-rpc')` finds this repository's package,
    as it would after `npm install tachyon-rpc`."""
    node = shutil.which("node")
    addon = list((ROOT / "tachyon-node").glob("tachyon.*.node"))
    _need(node is not None and bool(addon), "node or the addon is missing; `make node` provides it")
    modules = tmp_path_factory.mktemp("node_path")
    (modules / "tachyon-rpc").symlink_to(ROOT / "tachyon-node")
    return {**os.environ, "NODE_PATH": str(modules)}


@pytest.fixture
def sock() -> Iterator[str]:
    path = f"/tmp/tachyon-schema-{uuid.uuid4().hex[:10]}.sock"
    yield path
    if os.path.exists(path):
        os.unlink(path)
