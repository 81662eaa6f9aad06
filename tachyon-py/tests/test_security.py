"""Security and reliability from Python: bounded connects, close() that wakes waiters,
sockets only their owner can open, and a clean end told apart from a crash."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import tachyon
from helpers import connect_retry, connect_rpc_retry, run_python


def _pair(path: str) -> tuple[tachyon.Bus, tachyon.Bus]:
    result: dict = {}
    t = threading.Thread(target=lambda: result.setdefault("s", tachyon.Bus.listen(path, 1 << 16, timeout=20)))
    t.start()
    client = connect_retry(path)
    t.join()
    return result["s"], client


def _rpc_pair(path: str) -> tuple[tachyon.RpcBus, tachyon.RpcBus]:
    result: dict = {}
    t = threading.Thread(
        target=lambda: result.setdefault("s", tachyon.RpcBus.listen(path, 1 << 16, 1 << 16, timeout=20))
    )
    t.start()
    client = connect_rpc_retry(path)
    t.join()
    return result["s"], client


def _close_wakes(close, blocked_call) -> None:
    """Runs `blocked_call` (which waits without a timeout) on a thread, then `close`:
    close must return at once and the waiter must fail with BusClosedError."""
    errors: list = []

    def run() -> None:
        try:
            blocked_call()
        except BaseException as e:  # noqa: BLE001 - recorded for the assertion
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.3)
    close()
    t.join(timeout=30)
    assert not t.is_alive(), "the waiter is still blocked after close()"
    assert len(errors) == 1 and isinstance(errors[0], tachyon.BusClosedError), errors


def test_close_wakes_a_recv_without_timeout(sock_path):
    server, client = _pair(sock_path)
    _close_wakes(server.close, server.recv)
    client.close()


def test_close_wakes_an_rpc_wait_and_a_serve_without_timeout(sock_path):
    callee, caller = _rpc_pair(sock_path)
    cid = caller.call(b"never answered", msg_type=1)
    _close_wakes(caller.close, lambda: caller.wait(cid))
    callee.close()
    callee, caller = _rpc_pair(sock_path + "2")
    _close_wakes(callee.close, callee.serve)
    caller.close()


def test_connect_to_nothing_is_a_tachyon_connection_error(sock_path):
    with pytest.raises(tachyon.TachyonError) as info:
        tachyon.Bus.connect(sock_path)
    assert isinstance(info.value, ConnectionError)
    assert isinstance(info.value, tachyon.TachyonConnectionError)


def test_connect_to_a_silent_listener_times_out(sock_path):
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(sock_path)
    silent.listen(4)
    try:
        for connect in (tachyon.Bus.connect, tachyon.RpcBus.connect):
            start = time.monotonic()
            with pytest.raises(tachyon.TachyonTimeoutError):
                connect(sock_path, timeout=0.3)
            assert time.monotonic() - start >= 0.3, "timed out before the deadline"
    finally:
        silent.close()
        os.unlink(sock_path)


def test_ctrl_c_interrupts_a_connect(sock_path):
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(sock_path)
    silent.listen(4)
    try:
        child = run_python(textwrap.dedent(f"""
            import sys, tachyon
            print("connecting", flush=True)
            try:
                tachyon.RpcBus.connect({sock_path!r})
            except KeyboardInterrupt:
                print("interrupted", flush=True)
                sys.exit(0)
            sys.exit(3)
        """))
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "connecting"
        time.sleep(0.5)
        start = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
        print(f"Ctrl-C to KeyboardInterrupt in connect: {(time.monotonic() - start) * 1000:.0f} ms")
        # KeyboardInterrupt, not the connect's own 10 s timeout (exit 3).
        assert child.returncode == 0 and "interrupted" in out, err
    finally:
        silent.close()
        os.unlink(sock_path)


def test_server_socket_is_0600_under_umask_000(sock_path):
    old = os.umask(0)
    try:
        d = tachyon.RpcDispatcher()
        with tachyon.RpcServer(sock_path, d, max_clients=2):
            mode = stat.S_IMODE(os.stat(sock_path).st_mode)
    finally:
        os.umask(old)
    assert mode == 0o600


def test_iteration_ends_on_a_clean_close_and_raises_on_a_crash(sock_path):
    sender = textwrap.dedent("""
        import os, sys, time, tachyon
        path, how = sys.argv[1], sys.argv[2]
        deadline = time.monotonic() + 20
        while True:
            try:
                bus = tachyon.Bus.connect(path); break
            except OSError:
                assert time.monotonic() < deadline; time.sleep(0.005)
        for i in range(5):
            bus.send(b"x", type_id=i)
        if how == "kill":
            os.kill(os.getpid(), 9)
        bus.close()
    """)
    for how, expect_error in (("close", None), ("kill", tachyon.PeerDeadError)):
        child = subprocess.Popen([sys.executable, "-c", sender, sock_path, how])
        with tachyon.Bus.listen(sock_path, 1 << 16, timeout=20) as bus:
            seen = []
            try:
                for msg in bus:
                    seen.append(msg.type_id)
                error = None
            except tachyon.PeerDeadError as e:
                error = e
        child.wait(timeout=10)
        assert seen == list(range(5)), (how, seen)
        if expect_error is None:
            assert error is None, f"a clean close ends the loop, got {error!r}"
        else:
            assert isinstance(error, expect_error) and not isinstance(error, tachyon.PeerClosedError)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_serve_forever_and_removes_the_socket(sock_path, sig):
    child = run_python(textwrap.dedent(f"""
        import tachyon
        d = tachyon.RpcDispatcher()
        d.handler(1)(lambda req: req.tobytes())
        with tachyon.RpcServer({sock_path!r}, d) as server:
            print("serving", flush=True)
            server.serve_forever()
        print("stopped", flush=True)
    """))
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "serving"
    with connect_rpc_retry(sock_path) as bus:
        assert bus.invoke(b"hi", 1, 5) == b"hi"
    child.send_signal(sig)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0 and out.strip() == "stopped", err
    assert not os.path.exists(sock_path), "the socket was left behind"
