"""`tachyon.RpcServer`: many callers (Rust and Python processes) on one socket path,
served by Python handlers on the core's multi-client server."""

from __future__ import annotations

import subprocess
import textwrap

import pytest

import tachyon
from helpers import connect_rpc_retry, run_python


def dispatcher() -> tachyon.RpcDispatcher:
    d = tachyon.RpcDispatcher()

    @d.handler(1)
    def echo(req: memoryview) -> bytes:
        return req.tobytes()

    @d.handler(2, typed=True)
    def add(req: dict) -> dict:
        return {"sum": req["a"] + req["b"]}

    class Teapot(Exception):
        rpc_code = 418

    @d.handler(3)
    def fail(req: memoryview) -> bytes:
        raise Teapot("short and stout")

    return d


def test_rust_and_python_clients_at_once(peer_bin, sock_path):
    with tachyon.RpcServer(sock_path, dispatcher(), max_clients=8) as server:
        assert server.running and server.path == sock_path
        rust = [
            subprocess.Popen(
                [str(peer_bin), "rpc-call", "--path", sock_path, "--count", "300", "--seed", str(s)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for s in range(3)
        ]
        py = [
            run_python(textwrap.dedent(f"""
                import tachyon
                add = tachyon.RpcEndpoint(lambda r: r, msg_type=2, typed=True)
                with tachyon.RpcBus.connect({sock_path!r}) as bus:
                    for i in range(200):
                        assert add.call(bus, {{"a": i, "b": {k}}}, timeout=10) == {{"sum": i + {k}}}
                print("py ok")
            """))
            for k in range(2)
        ]
        for p in rust:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            assert out.splitlines() == ["rpc-error msg_type=999 code=1", "ok 300 messages"]
        for p in py:
            out, err = p.communicate(timeout=60)
            assert (p.returncode, out.strip()) == (0, "py ok"), err
        with connect_rpc_retry(sock_path) as c:
            with pytest.raises(tachyon.TachyonRpcError) as e:
                c.invoke(b"", 3, timeout=5)
            assert (e.value.msg_type, e.value.code, e.value.message) == (3, 418, "Teapot: short and stout")
            with pytest.raises(tachyon.TachyonRpcError) as e:
                c.invoke(b"\xc1", 2, timeout=5)  # not MessagePack
            assert e.value.code == tachyon.RpcCode.BAD_REQUEST
    assert not server.running


def test_client_over_the_limit_is_refused(sock_path):
    with tachyon.RpcServer(sock_path, dispatcher(), max_clients=1):
        with connect_rpc_retry(sock_path) as first:
            assert first.invoke(b"one", 1, timeout=5) == b"one"
            with pytest.raises(tachyon.TachyonError, match="refused"):
                tachyon.RpcBus.connect(sock_path)


def test_stop_ends_client_sessions_and_bad_arguments(sock_path):
    server = tachyon.RpcServer(sock_path, dispatcher())
    c = connect_rpc_retry(sock_path)
    assert c.invoke(b"x", 1, timeout=5) == b"x"
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(tachyon.PeerDeadError):
        c.invoke(b"y", 1, timeout=5)
    c.close()
    with pytest.raises(ValueError):
        tachyon.RpcServer(sock_path + "2", dispatcher(), max_clients=0)
    with pytest.raises(ValueError):
        tachyon.RpcServer(sock_path + "3", dispatcher(), cap_fwd=1000)
