"""`tachyon.SharedBuffer`: each kind shared between processes (Python, Rust and Node),
wait/notify across processes, file contents outliving their processes, and sizes
checked against the existing object."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

import tachyon
from helpers import ROOT, run_python
from payloads import payload


def _unique() -> str:
    return f"tachyon-pybuf-{uuid.uuid4().hex[:10]}"


def _kinds(tmp_path: Path) -> list[tuple[dict[str, object], str]]:
    """(keyword arguments, the node-ipcbuffer spelling) of one buffer of each kind."""
    key = 0x5500_0000 | (os.getpid() & 0xFFFF)
    name = _unique()
    return [
        ({"name": name}, f"*{name}"),
        ({"path": str(tmp_path / "shared.bin")}, str(tmp_path / "shared.bin")),
        ({"key": key}, str(key)),
    ]


def test_each_kind_between_python_processes_with_wait_and_notify(tmp_path: Path) -> None:
    for kw, _spec in _kinds(tmp_path):
        with tachyon.SharedBuffer(65536, **kw) as mine:  # type: ignore[arg-type]
            waiter = run_python(textwrap.dedent(f"""
                import sys
                sys.path.insert(0, {str(ROOT / "tests" / "interop")!r})
                import tachyon
                from payloads import payload
                with tachyon.SharedBuffer(65536, create=False, **{kw!r}) as b:
                    print("attached", flush=True)
                    assert b.wait(0, 0, timeout=20), "no notify"
                    assert bytes(memoryview(b)[64:]) == payload(3, 65536 - 64)
                    print("ok")
            """))
            assert waiter.stdout is not None and waiter.stdout.readline().strip() == "attached"
            view = memoryview(mine)
            view[64:] = payload(3, 65536 - 64)
            del view
            mine.store_u32(0, 1)
            mine.notify(0)
            out, err = waiter.communicate(timeout=30)
            assert waiter.returncode == 0, err
            assert "ok" in out
            mine.unlink()


def test_numpy_sees_the_shared_bytes_and_counters_are_atomic(tmp_path: Path) -> None:
    name = _unique()
    with tachyon.SharedBuffer(4096, name=name) as a, tachyon.SharedBuffer(4096, name=name) as b:
        arr = np.frombuffer(a, dtype=np.uint32)
        arr[10] = 123456
        assert tachyon.SharedBuffer.load_u32(b, 40) == 123456
        with pytest.raises(BufferError, match="still alive"):
            a.close()
        del arr

        def add() -> None:
            for _ in range(10_000):
                b.fetch_add_u64(64, 1)

        threads = [threading.Thread(target=add) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert a.fetch_add_u64(64, 0) == 40_000
        a.unlink()


def test_sizes_are_checked_and_files_outlive_their_processes(tmp_path: Path) -> None:
    name = _unique()
    with tachyon.SharedBuffer(4096, name=name) as a:
        with pytest.raises(ValueError, match="4096 bytes"):
            tachyon.SharedBuffer(8192, name=name)
        with tachyon.SharedBuffer(name=name) as whole:
            assert len(whole) == 4096 and not whole.created
        a.unlink()
    with pytest.raises(OSError):
        tachyon.SharedBuffer(4096, name=name, create=False)
    with pytest.raises(ValueError, match="exactly one"):
        tachyon.SharedBuffer(64, name="a", key=7)
    path = tmp_path / "kept.bin"
    code = f"import tachyon\nwith tachyon.SharedBuffer(4096, path={str(path)!r}) as b:\n    memoryview(b)[:5] = b'kept!'\n    print('wrote')"
    p = run_python(code)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert path.read_bytes()[:5] == b"kept!"
    assert path.stat().st_mode & 0o777 == 0o600


def test_python_writer_node_and_rust_readers_on_one_posix_name(peer_bin: Path) -> None:
    name = _unique()
    with tachyon.SharedBuffer(8192, name=name) as mine:
        node = subprocess.Popen(["node", "-e", textwrap.dedent(f"""
            const {{ IPCBuffer }} = require({json.dumps(str(ROOT / "tachyon-node"))});
            const buf = IPCBuffer(8192, '*{name}', {{ create: false }});
            console.log('attached');
            IPCBuffer.waitAsync(buf, 0, 0, 20000).then((woke) => {{
              if (!woke) throw new Error('no notify');
              console.log('node read', buf.toString('hex', 64, 64 + 11));
            }});
        """)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert node.stdout is not None and node.stdout.readline().strip() == "attached"
        rust = subprocess.Popen(
            [str(peer_bin), "buffer", "--method", "wait", "--path", f"*{name}", "--count", "8192", "--seed", "9"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert rust.stdout is not None and rust.stdout.readline().strip() == "attached"
        body = bytearray(payload(9, 8192 - 64))
        view = memoryview(mine)
        view[64:] = body
        del view
        mine.store_u32(0, 1)
        mine.notify(0)
        out, err = node.communicate(timeout=30)
        assert node.returncode == 0, err
        assert out.strip() == f"node read {bytes(body[:11]).hex()}", out
        out, err = rust.communicate(timeout=30)
        assert rust.returncode == 0, err
        mine.unlink()
