"""asyncio: awaitable receive, call and serve, without blocking the loop or a thread per
pending call. Real processes where a peer is involved."""

from __future__ import annotations

import asyncio
import os
import subprocess
import textwrap
import threading
import time

import pytest

import tachyon
from helpers import INTEROP, connect_retry, connect_rpc_retry, run_python


def rpc_pair(path: str) -> tuple[tachyon.RpcBus, tachyon.RpcBus]:
    box: list = []
    t = threading.Thread(target=lambda: box.append(tachyon.RpcBus.listen(path, 1 << 16, 1 << 16, timeout=20)))
    t.start()
    caller = connect_rpc_retry(path)
    t.join()
    return box[0], caller


def test_recv_async_and_async_for_from_another_process(sock_path):
    child = run_python(textwrap.dedent(f"""
        import time, tachyon
        deadline = time.monotonic() + 20
        while True:
            try:
                bus = tachyon.Bus.connect({sock_path!r}); break
            except OSError:
                assert time.monotonic() < deadline; time.sleep(0.005)
        with bus:
            for i in range(200):
                bus.send(b"m%d" % i, type_id=i)
    """))

    async def main() -> list[int]:
        bus = await asyncio.to_thread(tachyon.Bus.listen, sock_path, 1 << 16, 20)
        with bus:
            first = await bus.recv_async(timeout=10)
            assert first.data == b"m0"
            seen = [first.type_id]
            async for msg in bus:  # ends when the sender is gone
                seen.append(msg.type_id)
            return seen

    assert asyncio.run(main()) == list(range(200))
    assert child.wait(10) == 0, child.stderr.read() if child.stderr else ""


def test_recv_async_leaves_the_loop_free_and_times_out(sock_path):
    async def main() -> int:
        t = threading.Thread(target=lambda: box.append(connect_retry(sock_path)))
        t.start()
        server = await asyncio.to_thread(tachyon.Bus.listen, sock_path, 1 << 16, 20)
        t.join()
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        tick = asyncio.create_task(ticker())
        with server, box[0]:
            with pytest.raises(tachyon.TachyonTimeoutError):
                await server.recv_async(timeout=0.3)
            # A cancelled receive loses nothing: the message goes to the next one.
            waiting = asyncio.create_task(server.recv_async())
            await asyncio.sleep(0.05)
            waiting.cancel()
            box[0].send(b"kept", 42)
            msg = await server.recv_async(timeout=5)
            assert (msg.type_id, msg.data) == (42, b"kept")
        tick.cancel()
        return ticks

    box: list = []
    assert asyncio.run(main()) >= 10, "the loop kept running while recv_async waited"


def test_many_pending_calls_share_one_thread_and_resolve_out_of_order(sock_path):
    callee, caller = rpc_pair(sock_path)

    def serve_reversed() -> None:
        pending = [callee.serve(timeout=10) for _ in range(32)]
        for req in reversed(pending):
            callee.reply(req.correlation_id, req.data.upper(), req.type_id)
        err = callee.serve(timeout=10)
        callee.reply_error(err.correlation_id, err.type_id, 2, "nope")

    async def main() -> None:
        threads_before = threading.active_count()
        echo = tachyon.RpcEndpoint(lambda mv: mv.tobytes(), msg_type=1)
        calls = [asyncio.create_task(echo.call_async(caller, b"call %d" % i, timeout=10)) for i in range(32)]
        await asyncio.sleep(0.05)
        # One reply pump thread for all 32 pending calls, not one each.
        assert threading.active_count() <= threads_before + 2
        assert await asyncio.gather(*calls) == [b"CALL %d" % i for i in range(32)]
        with pytest.raises(tachyon.TachyonRpcError) as e:
            await caller.call_async(b"x", 5, timeout=10)
        assert (e.value.msg_type, e.value.code, e.value.message) == (5, 2, "nope")

    server = threading.Thread(target=serve_reversed)
    server.start()
    with callee, caller:
        asyncio.run(main())
        server.join(10)


def test_call_async_timeout_abandons_the_call(sock_path):
    callee, caller = rpc_pair(sock_path)

    async def main() -> None:
        with pytest.raises(tachyon.TachyonTimeoutError):
            await caller.call_async(b"slow", 1, timeout=0.1)
        req = callee.serve(timeout=5)
        assert req.data == b"slow"
        callee.reply(req.correlation_id, b"late", 1)  # abandoned: dropped by the caller
        fresh = asyncio.create_task(caller.call_async(b"fresh", 1, timeout=5))
        req = await asyncio.to_thread(callee.serve, 5)
        callee.reply(req.correlation_id, req.data + b"!", 1)
        assert await fresh == b"fresh!"
        assert caller.in_flight == 0

    with callee, caller:
        asyncio.run(main())


def test_async_serve_loop_with_async_handlers_answers_a_rust_caller(peer_bin, sock_path):
    d = tachyon.RpcDispatcher()

    @d.handler(1)
    async def echo(req: memoryview) -> bytes:
        await asyncio.sleep(0)
        return req.tobytes()

    rust = subprocess.Popen(
        [str(peer_bin), "rpc-call", "--path", sock_path, "--count", "200", "--max-size", "1024"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )

    async def main() -> list[Exception]:
        errors: list[Exception] = []
        bus = await asyncio.to_thread(tachyon.RpcBus.listen, sock_path, 1 << 16, 1 << 16, 20)
        with bus:
            await asyncio.wait_for(d.serve_async(bus, on_error=errors.append), 60)
        return errors

    errors = asyncio.run(main())
    out, err = rust.communicate(timeout=60)
    assert rust.returncode == 0, err
    assert out.splitlines() == ["rpc-error msg_type=999 code=1", "ok 200 messages"]
    assert len(errors) == 1 and isinstance(errors[0], KeyError)


def test_a_server_and_a_client_in_one_event_loop(sock_path):
    d = tachyon.RpcDispatcher()

    @d.handler(2, typed=True)
    def add(req: dict) -> dict:
        return {"sum": req["a"] + req["b"]}

    add_ep = d._handlers[2]

    async def main() -> list[dict]:
        listen = asyncio.create_task(asyncio.to_thread(tachyon.RpcBus.listen, sock_path, 1 << 16, 1 << 16, 20))
        caller = await asyncio.to_thread(connect_rpc_retry, sock_path)
        callee = await listen
        with callee, caller:
            serving = asyncio.create_task(d.serve_async(callee))
            results = await asyncio.gather(
                *(add_ep.call_async(caller, {"a": i, "b": 1}, timeout=10) for i in range(20))
            )
            callee.close()
            caller.close()
            await asyncio.wait_for(serving, 10)
        return results

    assert asyncio.run(main()) == [{"sum": i + 1} for i in range(20)]


def test_connect_async_keeps_the_loop_running_and_can_be_cancelled(sock_path, teapot_dispatcher):
    async def main() -> None:
        with tachyon.RpcServer("tcp://127.0.0.1:0", teapot_dispatcher) as tcp, \
                tachyon.RpcServer(sock_path, teapot_dispatcher) as shm:
            client = await tachyon.connect_async(tcp.path, timeout=5)
            assert client.invoke(b"tcp", 1, 5) == b"tcp"
            bus = await tachyon.connect_async(shm.path, timeout=5)
            assert bus.invoke(b"shm", 1, 5) == b"shm"
            bus.close()
        # A listener that never answers: other tasks run while the connect waits, and
        # cancelling gives up at once.
        import socket
        import tempfile
        silent_path = f"{tempfile.gettempdir()}/silent-{threading.get_ident()}.sock"
        silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        silent.bind(silent_path)
        silent.listen(4)
        try:
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.005)

            ticker = asyncio.create_task(tick())
            connecting = asyncio.create_task(tachyon.connect_async(silent_path, timeout=0.5))
            await asyncio.sleep(0.1)
            connecting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await connecting
            assert ticks > 0, "the loop was blocked"
            with pytest.raises(tachyon.TachyonTimeoutError):
                await tachyon.connect_async(silent_path, timeout=0.1)
            ticker.cancel()
        finally:
            silent.close()
            os.unlink(silent_path)

    asyncio.run(main())
