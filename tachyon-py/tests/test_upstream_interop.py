"""Our Python package against upstream's own (`tachyon-ipc==0.5.1`), each in its own
venv and process: both import as `tachyon`."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import tachyon
from helpers import INTEROP, connect_retry, connect_rpc_retry
from payloads import message

COUNT = 20_000
MAX = 2048


def upstream(python: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(python), str(INTEROP / "upstream_peer.py"), *args],
        cwd=INTEROP, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out.strip()


def test_upstream_python_producer_to_our_python_consumer(upstream_python, sock_path):
    peer = upstream(upstream_python, "produce", "--path", sock_path, "--connect",
                    "--count", str(COUNT), "--seed", "11", "--max-size", str(MAX))
    with tachyon.Bus.listen(sock_path, 1 << 16, timeout=30) as bus:
        n = 0
        while n < COUNT:
            with bus.drain_batch(256, 10000, timeout=30) as batch:
                for msg in batch:
                    data, type_id = message(11, n, MAX)
                    assert (msg.data, msg.type_id) == (data, type_id), f"message {n}"
                    n += 1
    assert finish(peer) == f"ok {COUNT} messages"


def test_our_python_producer_to_upstream_python_consumer(upstream_python, sock_path):
    peer = upstream(upstream_python, "consume", "--path", sock_path, "--listen", str(1 << 17),
                    "--count", str(COUNT), "--seed", "12", "--max-size", str(MAX))
    with connect_retry(sock_path) as bus:
        assert not bus.has_peer_link  # upstream: liveness falls back to a pidfd
        for i in range(COUNT):
            data, type_id = message(12, i, MAX)
            if i % 2:
                bus.send(data, type_id)
            else:  # half of them written in place
                with bus.send_zero_copy(size=len(data), type_id=type_id) as tx:
                    with memoryview(tx) as m:
                        m[: len(data)] = data
                    tx.actual_size = len(data)
        assert finish(peer) == f"ok {COUNT} messages"


def test_our_python_caller_to_upstream_python_dispatcher(upstream_python, sock_path):
    peer = upstream(upstream_python, "rpc-serve", "--path", sock_path, "--count", "201")
    echo = tachyon.RpcEndpoint(lambda mv: mv.tobytes(), msg_type=1)
    with connect_rpc_retry(sock_path, timeout=30) as bus:
        for i in range(200):
            data = message(13, i, 1024)[0] or b"\x00"
            assert echo.call(bus, data, timeout=10) == data
        # Upstream's dispatcher sends a bare 0xFFFF sentinel: still a TachyonRpcError here.
        try:
            bus.invoke(b"?", 999, timeout=10)
            raise AssertionError("an error reply must raise")
        except tachyon.TachyonRpcError as e:
            assert e.msg_type == 999
    assert finish(peer) == "ok 201 messages"


def test_our_python_dispatcher_serves_the_upstream_python_caller(upstream_python, sock_path):
    peer = upstream(upstream_python, "rpc-call", "--path", sock_path, "--count", "200",
                    "--seed", "14", "--max-size", "1024")
    d = tachyon.RpcDispatcher()

    @d.handler(1)
    def echo(req: memoryview) -> bytes:
        return req.tobytes()

    with tachyon.RpcBus.listen(sock_path, 1 << 16, 1 << 16, timeout=30) as bus:
        done = threading.Event()
        threading.Thread(target=lambda: (d.serve_forever(bus), done.set()), daemon=True).start()
        out = finish(peer)
        assert done.wait(10)
    first, last = out.splitlines()
    assert first.startswith("error-reply type_id=0xffff failed_msg_type=999")
    assert last == "ok 200 messages"
