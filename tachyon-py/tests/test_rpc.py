"""`tachyon.RpcBus` and the decorator API against the Rust core's RPC, in real processes."""

from __future__ import annotations

import dataclasses
import subprocess
import threading

import pytest

import tachyon
from helpers import connect_rpc_retry


def rpc_pair(path: str) -> tuple[tachyon.RpcBus, tachyon.RpcBus]:
    box: list = []
    t = threading.Thread(target=lambda: box.append(tachyon.RpcBus.listen(path, 1 << 16, 1 << 16, timeout=20)))
    t.start()
    caller = connect_rpc_retry(path)
    t.join()
    return box[0], caller


def test_decorator_rules():
    with pytest.raises(ValueError):
        tachyon.tachyon_rpc(msg_type=0xFFFF)
    with pytest.raises(ValueError):
        tachyon.tachyon_rpc(msg_type=-1)

    @tachyon.tachyon_rpc(msg_type=1)
    def upper(req: memoryview) -> bytes:
        return req.tobytes().upper()

    assert isinstance(upper, tachyon.RpcEndpoint) and upper(b"local call") == b"LOCAL CALL"
    d = tachyon.RpcDispatcher()
    assert d.register(upper) is d
    with pytest.raises(ValueError, match="already registered"):
        d.register(upper)
    sentinel = tachyon.RpcEndpoint(lambda mv: b"", msg_type=2)
    sentinel.msg_type = tachyon.MSG_TYPE_ERROR  # as if built around the check
    with pytest.raises(ValueError, match="reserved"):
        d.register(sentinel)


def test_our_python_dispatcher_serves_the_rust_caller(peer_bin, sock_path):
    d = tachyon.RpcDispatcher()

    @d.handler(1)
    def echo(req: memoryview) -> bytes:
        return req.tobytes()

    rust = subprocess.Popen(
        [str(peer_bin), "rpc-call", "--path", sock_path, "--count", "300", "--max-size", "2048"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    with tachyon.RpcBus.listen(sock_path, 1 << 16, 1 << 16, timeout=20) as bus:
        done = threading.Event()

        def serve() -> None:
            d.serve_forever(bus)
            done.set()

        threading.Thread(target=serve, daemon=True).start()
        out, err = rust.communicate(timeout=60)
        assert rust.returncode == 0, err
        # Our Python dispatcher's error reply decodes in Rust as a structured error.
        assert out.splitlines() == ["rpc-error msg_type=999 code=1", "ok 300 messages"]
        assert done.wait(5), "serve_forever returns once the caller is gone"


def test_python_caller_against_the_rust_tachyon_rpc_server(peer_bin, sock_path):
    srv = subprocess.Popen([str(peer_bin), "rpc-serve", "--path", sock_path], stdout=subprocess.PIPE, text=True)
    try:
        assert srv.stdout.readline().strip() == "ready"
        with connect_rpc_retry(sock_path) as c:
            echo = tachyon.RpcEndpoint(lambda mv: mv.tobytes(), msg_type=1)
            assert echo.call(c, b"hello from python") == b"hello from python"
            assert echo.call(c, b"abc", on_response=lambda mv: mv.tobytes()[::-1]) == b"cba"
            assert c.invoke(b"raw", 1, timeout=5) == b"raw"
            # Low level: several calls in flight, waited for in reverse.
            cids = [c.call(bytes([i]), 1) for i in range(10)]
            assert c.in_flight == 10
            for i, cid in reversed(list(enumerate(cids))):
                with c.wait(cid, timeout=5) as rx:
                    assert (rx.correlation_id, rx.type_id, rx.data) == (cid, 1, bytes([i]))
            with pytest.raises(tachyon.TachyonRpcError) as e:
                c.invoke(b"?", 999, timeout=5)
            assert (e.value.msg_type, e.value.code) == (999, 1)
            # msg_type 3 is a typed Rust handler taking a MessagePack string and failing.
            with pytest.raises(tachyon.TachyonRpcError) as e:
                c.invoke(b"\xa3why", 3, timeout=5)
            assert (e.value.code, e.value.message) == (2, "failing on purpose: why")
            with pytest.raises(tachyon.TachyonTimeoutError):
                c.invoke(b"\xcd\x01\xf4", 5, timeout=0.1)  # sleep_ms(500) with a 100 ms deadline
    finally:
        srv.kill()
        srv.wait()


def test_python_to_python_error_replies_and_dead_callee(sock_path):
    callee, caller = rpc_pair(sock_path)
    d = tachyon.RpcDispatcher()

    @d.handler(7)
    def boom(req: memoryview) -> bytes:
        raise ValueError("bad input")

    with callee, caller:
        cid = caller.call(b"x", 7)
        with pytest.raises(RuntimeError):
            d.serve_once(callee, timeout=5)
        with pytest.raises(tachyon.TachyonRpcError) as e:
            caller.wait(cid, timeout=5)
        assert (e.value.msg_type, e.value.code, e.value.message) == (7, 2, "ValueError: bad input")
        assert tachyon._decode_error(tachyon._tachyon.encode_error(7, 2, "x")) == 7
        cid = caller.call(b"y", 8)
        with pytest.raises(KeyError):
            d.serve_once(callee, timeout=5)
        with pytest.raises(tachyon.TachyonRpcError) as e:
            caller.wait(cid, timeout=5)
        assert e.value.code == 1
        cid = caller.call(b"never answered", 7)
        callee.close()
        with pytest.raises(tachyon.PeerDeadError):
            caller.wait(cid, timeout=30)  # the closed callee is noticed: not a TimeoutError


def test_typed_python_handler_serves_the_rust_typed_caller(peer_bin, sock_path):
    d = tachyon.RpcDispatcher()

    @d.handler(2, typed=True)
    def add(req: dict) -> dict:
        return {"sum": req["a"] + req["b"]}

    assert add({"a": 1, "b": 2}) == {"sum": 3}  # local call, no encoding
    rust = subprocess.Popen(
        [str(peer_bin), "rpc-add", "--path", sock_path, "--count", "500"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    with tachyon.RpcBus.listen(sock_path, 1 << 16, 1 << 16, timeout=20) as bus:
        threading.Thread(target=d.serve_forever, args=(bus,), daemon=True).start()
        out, err = rust.communicate(timeout=60)
    assert rust.returncode == 0, err
    assert out.strip() == "ok 500 messages"


def test_typed_python_caller_against_the_rust_typed_handler(peer_bin, sock_path):
    @dataclasses.dataclass
    class AddReq:
        a: int
        b: int

    @dataclasses.dataclass
    class AddResp:
        sum: int

    srv = subprocess.Popen([str(peer_bin), "rpc-serve", "--path", sock_path], stdout=subprocess.PIPE, text=True)
    try:
        assert srv.stdout.readline().strip() == "ready"
        with connect_rpc_retry(sock_path) as c:
            add = tachyon.RpcEndpoint(lambda req: None, msg_type=2, typed=True)
            assert add.call(c, {"a": 40, "b": 2}, timeout=5) == {"sum": 42}
            add_dc = tachyon.RpcEndpoint(lambda req: None, msg_type=2, typed=True, response_type=AddResp)
            assert add_dc.call(c, AddReq(a=-5, b=7), timeout=5) == AddResp(sum=2)
            # A request the Rust typed handler cannot decode is a structured BAD_REQUEST.
            with pytest.raises(tachyon.TachyonRpcError) as e:
                add.call(c, [1, 2, 3, 4], timeout=5)
            assert e.value.code == 4
    finally:
        srv.kill()
        srv.wait()


@dataclasses.dataclass
class Point:
    x: float
    y: float


def test_typed_python_to_python_with_dataclasses(sock_path):
    callee, caller = rpc_pair(sock_path)
    d = tachyon.RpcDispatcher()

    @d.handler(9, typed=True)
    def norm2(p: Point) -> dict:
        assert isinstance(p, Point)
        return {"n": p.x * p.x + p.y * p.y, "tags": ["ok", b"bin"]}

    with callee, caller:
        ep = tachyon.RpcEndpoint(lambda p: None, msg_type=9, typed=True)
        cid = caller.call(tachyon.rpc.encode(Point(3.0, 4.0)), 9)
        d.serve_once(callee, timeout=5)
        with caller.wait(cid, timeout=5) as rx:
            assert tachyon.rpc.decode(rx.data) == {"n": 25.0, "tags": ["ok", b"bin"]}
        cid = caller.call(b"\xc1", 9)  # 0xc1 is never valid MessagePack
        with pytest.raises(RuntimeError):
            d.serve_once(callee, timeout=5)
        with pytest.raises(tachyon.TachyonRpcError) as e:
            caller.wait(cid, timeout=5)
        assert e.value.code == 4
        del ep


def test_handler_failures_are_logged_by_default_and_go_to_a_hook(sock_path, caplog):
    import logging
    import threading

    d = tachyon.RpcDispatcher()

    @d.handler(1)
    def broken(payload: memoryview) -> bytes:
        raise ValueError("broken on purpose")

    def serve(hook):
        callee = tachyon.RpcBus.listen(sock_path, 1 << 16, 1 << 16, timeout=20)
        with callee:
            d.serve_forever(callee, on_error=hook)

    # Default: the tachyon logger gets the handler's exception.
    t = threading.Thread(target=serve, args=(None,))
    t.start()
    with caplog.at_level(logging.ERROR, logger="tachyon"):
        with connect_rpc_retry(sock_path) as caller:
            with pytest.raises(tachyon.TachyonRpcError):
                broken.call(caller, b"x", timeout=10)
        t.join(10)
    assert any(r.name == "tachyon" and r.exc_info and isinstance(r.exc_info[1], ValueError) for r in caplog.records)

    # A hook instead of the log.
    seen: list = []
    t = threading.Thread(target=serve, args=(seen.append,))
    t.start()
    with connect_rpc_retry(sock_path) as caller:
        with pytest.raises(tachyon.TachyonRpcError):
            broken.call(caller, b"x", timeout=10)
    t.join(10)
    assert len(seen) == 1 and isinstance(seen[0].__cause__, ValueError)


def test_rpc_server_handler_failures_reach_the_hook(sock_path):
    d = tachyon.RpcDispatcher()

    @d.handler(1)
    def broken(payload: memoryview) -> bytes:
        raise KeyError("nope")

    seen: list = []
    with tachyon.RpcServer(sock_path, d, max_clients=2, on_error=lambda mt, e: seen.append((mt, e))):
        with connect_rpc_retry(sock_path) as caller:
            with pytest.raises(tachyon.TachyonRpcError):
                broken.call(caller, b"x", timeout=10)
    assert len(seen) == 1 and seen[0][0] == 1 and isinstance(seen[0][1], KeyError)


def test_typed_decode_ignores_keys_the_dataclass_lacks():
    import dataclasses

    @dataclasses.dataclass
    class Quote:
        bid: float
        ask: float

    data = tachyon.rpc.encode({"bid": 1.0, "ask": 2.0, "venue": "added later"})
    assert tachyon.rpc.decode(data, into=Quote) == Quote(1.0, 2.0)
