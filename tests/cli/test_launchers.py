"""The `tachyon` command three ways: the Rust binary, `python -m tachyon` and
`npx tachyon` (the Node package's `bin`), each in its own process, doing the same work
with the same exit codes: doctor, inspect of a live bus, call with a reply and with an
error reply, and a usage error."""

from __future__ import annotations

import json
import os
import tempfile
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

import pytest

import tachyon

ROOT = Path(__file__).resolve().parents[2]
LAUNCHERS = ["rust", "python", "node"]


@pytest.fixture(scope="module")
def launch(require: Callable[[bool, str], None], node_env: dict[str, str]) -> Callable[..., Callable[..., subprocess.CompletedProcess[str]]]:
    rust = Path(os.environ.get("TACHYON_CLI", ROOT / "target" / "ci" / "tachyon"))
    require(rust.exists(), f"the tachyon command is not at {rust}; `make build` provides it")
    commands = {
        "rust": [str(rust)],
        "python": [sys.executable, "-m", "tachyon"],
        "node": ["node", str(ROOT / "tachyon-node" / "bin" / "tachyon.js")],
    }

    def launcher(name: str) -> Callable[..., subprocess.CompletedProcess[str]]:
        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*commands[name], *args], capture_output=True, text=True, timeout=60, env=node_env
            )

        return run

    return launcher


@pytest.mark.parametrize("name", LAUNCHERS)
def test_doctor_reports_every_check_and_exits_0(launch, name: str) -> None:
    out = launch(name)("doctor", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] is True
    names = {c["name"] for c in report["checks"]}
    assert {"memfd", "io_uring", "tcp_backend", "seccomp"} <= names, names


@pytest.mark.parametrize("name", LAUNCHERS)
def test_inspect_finds_a_live_rust_bus(launch, name: str, peer_bin: Path) -> None:
    path = f"{tempfile.gettempdir()}/tachyon-launch-{uuid.uuid4().hex[:10]}.sock"
    producer = subprocess.Popen(
        [str(peer_bin), "produce", "--path", path, "--listen", str(1 << 14), "--count", "100000000",
         "--max-size", "32"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                bus = tachyon.Bus.connect(path)
                break
            except tachyon.TachyonConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        with bus:
            bus.recv(timeout=10)
            out = launch(name)("inspect", str(producer.pid), "--json")
            assert out.returncode == 0, out.stderr
            arenas = [a for a in json.loads(out.stdout) if a["kind"] == "spsc"]
            assert len(arenas) == 1 and arenas[0]["capacity"] == 1 << 14, arenas
            assert os.getpid() in arenas[0]["peers"]
    finally:
        producer.kill()
        producer.wait()


@pytest.mark.parametrize("name", LAUNCHERS)
def test_call_prints_the_reply_and_exits_3_on_an_error_reply(launch, name: str, teapot_dispatcher) -> None:
    with tachyon.RpcServer("tcp://127.0.0.1:0", teapot_dispatcher, on_error=lambda mt, e: None) as server:
        ok = launch(name)("call", server.path, "1", "hello", "--out", "text")
        assert (ok.returncode, ok.stdout.strip()) == (0, "hello"), ok.stderr
        err = launch(name)("call", server.path, "3", "x")
        assert err.returncode == 3, err.stdout + err.stderr
        assert "418" in err.stderr and "short and stout" in err.stderr, err.stderr
        assert server.stats()["errors"] == {418: 1}


@pytest.mark.parametrize("name", LAUNCHERS)
def test_a_usage_error_exits_2_and_help_exits_0(launch, name: str) -> None:
    bad = launch(name)("no-such-command")
    assert bad.returncode == 2 and "no-such-command" in bad.stderr, bad.stderr
    help_ = launch(name)("call", "--help")
    assert help_.returncode == 0 and "msg_type" in help_.stdout, help_.stdout
