"""`tachyon inspect` against a live Python bus and a live Node bus, each in its own
process: it finds the arena, reports what that process knows (capacity, the fast mode,
the fill it produced, who the peer is), and leaves every byte of the arena as it was.
(The Rust peer's buses are inspected in tachyon-cli/tests/inspect.rs.)"""

from __future__ import annotations

import json
import os
import tempfile
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Callable

import pytest

import tachyon

ROOT = Path(__file__).resolve().parents[2]

PY_PRODUCER = r"""
import sys, time, tachyon
path = sys.argv[1]
deadline = time.monotonic() + 10
while True:
    try:
        bus = tachyon.Bus.connect(path)
        break
    except Exception:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.01)
for i in range(10):
    bus.send(b"x" * 100, type_id=i)
bus.flush()
print("sent", bus.capacity, flush=True)
time.sleep(60)
"""

NODE_PRODUCER = r"""
const { Bus } = require('tachyon-rpc');
const path = process.argv[1];
const deadline = Date.now() + 10000;
let bus;
for (;;) {
  try { bus = Bus.connect(path); break; } catch (e) {
    if (Date.now() > deadline) throw e;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
}
for (let i = 0; i < 10; i++) bus.send(Buffer.alloc(100, 120), i);
bus.flush();
console.log('sent', bus.capacity);
setTimeout(() => {}, 60000);
"""


@pytest.fixture(scope="session")
def tachyon_bin(require: Callable[[bool, str], None]) -> Path:
    path = Path(os.environ.get("TACHYON_CLI", ROOT / "target" / "ci" / "tachyon"))
    require(path.exists(), f"the tachyon command is not at {path}; `make build` provides it")
    return path


def inspect(tachyon_bin: Path, pid: int) -> list[dict]:
    out = subprocess.run([str(tachyon_bin), "inspect", str(pid), "--json"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def check_producer(tachyon_bin: Path, cmd: list[str], env: dict[str, str] | None = None) -> None:
    path = f"{tempfile.gettempdir()}/tachyon-inspect-{uuid.uuid4().hex[:10]}.sock"
    child = subprocess.Popen([*cmd, path], stdout=subprocess.PIPE, text=True, env=env)
    try:
        with tachyon.Bus.listen(path, 1 << 16, timeout=10) as bus:
            line = child.stdout.readline().split() if child.stdout else []
            assert line and line[0] == "sent", line
            capacity = int(line[1])
            arenas = [a for a in inspect(tachyon_bin, child.pid) if a["kind"] == "spsc"]
            assert len(arenas) == 1, arenas
            a = arenas[0]
            # What the processes know about themselves.
            assert a["capacity"] == capacity == bus.capacity == 1 << 16
            assert a["state"] == "ready"
            assert a["mode"] == "fast"  # both peers are ours
            assert a["fill"] == a["head"] - a["tail"] and a["head"] >= 10 * 100, a
            assert a["pid"] == child.pid and os.getpid() in a["peers"], a
            # The producer's own count of what it sent, kept beside its head (fast mode).
            assert a["published_messages"] == 10, a
            # Read-only: the same bytes before and after.
            arena = f"/proc/{child.pid}/fd/{a['fd']}"
            before = Path(arena).read_bytes()
            for _ in range(3):
                inspect(tachyon_bin, child.pid)
            assert Path(arena).read_bytes() == before, "inspect changed the arena"
            # The consumer then reads exactly what was sent.
            got = [bus.recv(timeout=5) for _ in range(10)]
            assert [m.type_id for m in got] == list(range(10))
    finally:
        child.kill()
        child.wait()


def test_inspect_a_python_bus_in_another_process(tachyon_bin: Path) -> None:
    check_producer(tachyon_bin, [sys.executable, "-c", PY_PRODUCER])


def test_inspect_a_node_bus_in_another_process(tachyon_bin: Path, node_env: dict[str, str]) -> None:
    check_producer(tachyon_bin, ["node", "-e", NODE_PRODUCER], env=node_env)
