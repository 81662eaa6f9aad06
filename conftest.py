"""Fixtures every Python suite shares (`tests/*` and `tachyon-py/tests`): the Rust test
peer, upstream's venv and Node with this repository's package on its path.

Each is a skip when its piece is missing, naming the `make` target that provides it,
and a failure under `TACHYON_REQUIRE_PEERS=1` (which `make test` sets), so a broken
setup cannot pass quietly. Shared as fixtures, never imported by name: every suite has
a conftest of its own, and importing one by module name picks the wrong one.

The whole session works in one scratch directory (`tempfile.gettempdir()`, also the
temp dir of every process it starts, through TMPDIR): sockets, PKIs and pytest's own `tmp_path`s
go there, and it is removed when the session ends, passed or failed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parent

Require = Callable[[bool, str], None]

_SCRATCH: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    # Short (UNIX socket paths must stay under 108 bytes) and private to this session.
    d = tempfile.mkdtemp(prefix="tachyon-py-")
    os.chmod(d, 0o755)  # peers run as other users (the permission tests) reach into it
    _SCRATCH.append(d)
    os.environ["TMPDIR"] = d
    tempfile.tempdir = d


def pytest_unconfigure(config: pytest.Config) -> None:
    for d in _SCRATCH:
        shutil.rmtree(d, ignore_errors=True)


def _require(ok: bool, msg: str) -> None:
    if ok:
        return
    if os.environ.get("TACHYON_REQUIRE_PEERS") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


def _existing(path: Path, what: str, target: str) -> Path:
    path = Path(os.path.abspath(path))  # abspath: a venv's python symlink must not be followed
    _require(path.exists(), f"{what} not found at {path}; `make {target}` provides it")
    return path


@pytest.fixture(scope="session")
def require() -> Require:
    """`require(ok, why)`: skips (or fails under TACHYON_REQUIRE_PEERS=1) unless `ok`."""
    return _require


@pytest.fixture(scope="session")
def peer_bin() -> Path:
    """The Rust test peer (`tachyon-peer`)."""
    default = ROOT / "target" / "ci" / "tachyon-peer"
    return _existing(Path(os.environ.get("TACHYON_PEER", default)), "tachyon-peer", "build")


@pytest.fixture(scope="session")
def upstream_python() -> Path:
    """Upstream's `tachyon-ipc` lives in its own venv: both packages import as `tachyon`."""
    default = ROOT / ".venv-upstream" / "bin" / "python"
    return _existing(Path(os.environ.get("UPSTREAM_PYTHON", default)), "upstream tachyon-ipc venv", "upstream")


@pytest.fixture(scope="session")
def node_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment in which `require('tachyon-rpc')` finds this repository's package,
    as it would after `npm install tachyon-rpc` (and msgpackr finds its own)."""
    addon = list((ROOT / "tachyon-node").glob("tachyon.*.node"))
    _require(shutil.which("node") is not None and bool(addon), "node or the addon is missing; `make node` provides it")
    modules = tmp_path_factory.mktemp("node_path")
    (modules / "tachyon-rpc").symlink_to(ROOT / "tachyon-node")
    path = os.pathsep.join([str(modules), str(ROOT / "tachyon-node" / "node_modules")])
    return {**os.environ, "NODE_PATH": path}


@pytest.fixture
def teapot_dispatcher():  # -> tachyon.RpcDispatcher (imported lazily: not every suite has it)
    """A dispatcher that echoes msg_type 1 and fails msg_type 3 with error code 418."""
    import tachyon

    d = tachyon.RpcDispatcher()

    @d.handler(1)
    def echo(req: memoryview) -> bytes:
        return req.tobytes()

    class Teapot(Exception):
        rpc_code = 418

    @d.handler(3)
    def fail(req: memoryview) -> bytes:
        raise Teapot("short and stout")

    return d
