"""`tachyon.Bus` between real processes: Python to Python, Python to Rust, and back."""

from __future__ import annotations

import signal
import subprocess
import textwrap
import threading
import time

import pytest

import tachyon
from helpers import INTEROP, connect_retry, run_python
from payloads import checksum, message, payload_size

MILLION = 1_000_000


def listen_in_thread(path: str, capacity: int) -> tuple[threading.Thread, list]:
    """Listens on a thread (the GIL is released while waiting); the bus lands in box[0]."""
    box: list = []
    t = threading.Thread(target=lambda: box.append(tachyon.Bus.listen(path, capacity, timeout=20)))
    t.start()
    return t, box


def pair(path: str, capacity: int = 1 << 16) -> tuple[tachyon.Bus, tachyon.Bus]:
    t, box = listen_in_thread(path, capacity)
    client = connect_retry(path)
    t.join()
    return box[0], client


def test_type_id_helpers():
    t = tachyon.make_type_id(3, 7)
    assert (tachyon.route_id(t), tachyon.msg_type(t)) == (3, 7)
    assert t == (3 << 16) | 7


def test_send_recv_and_iterate_in_order(sock_path):
    server, client = pair(sock_path)
    with server, client:
        for i in range(100):
            client.send(f"msg {i}".encode(), type_id=i)
        client.send(b"", type_id=999)  # zero-length messages work
        for i, msg in zip(range(100), server):
            assert isinstance(msg, tachyon.Message)
            assert (msg.type_id, msg.size, msg.data) == (i, len(f"msg {i}"), f"msg {i}".encode())
        last = server.recv(timeout=5)
        assert (last.type_id, last.size, last.data) == (999, 0, b"")
        client.send(bytearray(b"bytes-like"), 1)
        assert server.recv(timeout=5).data == b"bytes-like"


def test_python_to_python_across_processes_then_peer_dead(sock_path):
    child = run_python(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(INTEROP)!r})
        import tachyon
        from payloads import message
        with tachyon.Bus.listen({sock_path!r}, 1 << 16, timeout=20) as bus:
            for i in range(5000):
                data, tid = message(5, i, 200)
                bus.send(data, tid)
        print("sent")
    """))
    with connect_retry(sock_path) as bus:
        for i in range(5000):
            data, tid = message(5, i, 200)
            msg = bus.recv(timeout=20)
            assert (msg.data, msg.type_id) == (data, tid), f"message {i}"
        # The child closed its bus: after the last message, the peer is reported gone.
        with pytest.raises(tachyon.PeerDeadError):
            bus.recv(timeout=20)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert out.strip() == "sent"


def test_rust_to_python_a_million_messages_none_lost(peer_bin, sock_path):
    child = subprocess.Popen(
        [str(peer_bin), "produce", "--path", sock_path, "--listen", str(1 << 20), "--count", str(MILLION),
         "--seed", "21", "--max-size", "64", "--batch", "32"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        with connect_retry(sock_path) as bus:
            for i in range(MILLION):
                msg = bus.recv(timeout=20)
                assert msg.size == payload_size(21, i, 64), f"message {i}: lost or reordered"
                assert msg.type_id == checksum(msg.data), f"message {i}: checksum"
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        assert out.strip() == f"ok {MILLION} messages"
    finally:
        child.kill()


def test_python_to_rust_a_million_messages_none_lost(peer_bin, sock_path):
    child = subprocess.Popen(
        [str(peer_bin), "consume", "--path", sock_path, "--connect", "--count", str(MILLION),
         "--seed", "22", "--max-size", "64", "--timeout-ms", "60000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        with tachyon.Bus.listen(sock_path, 1 << 20, timeout=20) as bus:
            blocks = [bytes((i + 31 * j) % 251 for j in range(251)) * 2 for i in range(251)]
            for i in range(MILLION):
                n = payload_size(22, i, 64)
                data = blocks[i % 251][:n]
                bus.send(data, checksum(data))
            out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        assert out.strip() == f"ok {MILLION} messages"
    finally:
        child.kill()


def test_recv_timeout_is_a_timeout_error(sock_path):
    server, client = pair(sock_path)
    with server, client:
        t0 = time.monotonic()
        with pytest.raises(tachyon.TachyonTimeoutError) as e:
            server.recv(timeout=0.1)
        assert isinstance(e.value, TimeoutError) and isinstance(e.value, tachyon.TachyonError)
        assert time.monotonic() - t0 >= 0.1, "timed out before the deadline"


def test_full_ring_with_timeout_zero_raises_buffer_full(sock_path):
    server, client = pair(sock_path, capacity=256)
    with server, client:
        for _ in range(4):  # four 64-byte slots fill a 256-byte ring
            client.send(b"", timeout=0)
        with pytest.raises(tachyon.BufferFullError):
            client.send(b"", timeout=0)
        with pytest.raises(tachyon.TachyonTimeoutError):
            client.send(b"", timeout=0.05)
        server.recv(timeout=1)
        client.send(b"", timeout=1)


def test_killed_producer_gives_peer_dead_quickly(peer_bin, sock_path):
    child = subprocess.Popen(
        [str(peer_bin), "produce", "--path", sock_path, "--listen", str(1 << 16), "--count", "100000000",
         "--max-size", "32"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    with connect_retry(sock_path) as bus:
        for _ in range(1000):
            bus.recv(timeout=10)
        child.kill()
        child.wait()
        with pytest.raises(tachyon.PeerDeadError):
            while True:
                bus.recv(timeout=30)  # dead-peer detection ends this, not a TimeoutError


def test_ctrl_c_interrupts_a_blocking_recv_promptly(sock_path):
    child = run_python(textwrap.dedent(f"""
        import threading, time, tachyon
        box = []
        t = threading.Thread(target=lambda: box.append(tachyon.Bus.listen({sock_path!r}, 4096, timeout=20)))
        t.start()
        while True:
            try:
                client = tachyon.Bus.connect({sock_path!r}); break
            except OSError:
                time.sleep(0.005)
        t.join()
        print("waiting", flush=True)
        try:
            box[0].recv()
        except KeyboardInterrupt:
            print("interrupted", time.monotonic(), flush=True)
    """))
    assert child.stdout.readline().strip() == "waiting"
    time.sleep(0.3)
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    line = child.stdout.readline().split()
    child.wait(timeout=10)
    assert line[0] == "interrupted"
    latency = float(line[1]) - sent
    print(f"Ctrl-C to KeyboardInterrupt: {latency * 1000:.0f} ms")


def test_closed_bus_and_context_manager(sock_path):
    server, client = pair(sock_path)
    with client:
        assert not client.closed and client.has_peer_link and client.capacity == 1 << 16
    assert client.closed
    client.close()  # idempotent
    with pytest.raises(tachyon.TachyonError, match="closed"):
        client.send(b"x")
    server.close()


def test_abi_mismatch_against_an_rpc_listener(peer_bin, sock_path):
    srv = subprocess.Popen([str(peer_bin), "rpc-serve", "--path", sock_path], stdout=subprocess.PIPE, text=True)
    try:
        assert srv.stdout.readline().strip() == "ready"
        with pytest.raises(tachyon.AbiMismatchError, match="Rpc"):
            tachyon.Bus.connect(sock_path)
    finally:
        srv.kill()
        srv.wait()


def test_bad_arguments_are_value_errors(sock_path):
    with pytest.raises(ValueError, match="capacity"):
        tachyon.Bus.listen(sock_path, 1000)
    with pytest.raises(ValueError, match="socket path"):
        tachyon.Bus.listen("x" * 200, 4096)
    with pytest.raises(ValueError, match="timeout"):
        tachyon.Bus.listen(sock_path, 4096, timeout=-1)
    with pytest.raises(OSError):
        tachyon.Bus.connect(sock_path)  # nobody listens


def test_close_while_another_thread_is_blocked_does_not_deadlock(sock_path):
    # The blocked thread holds the bus and re-takes the GIL for its Ctrl-C checks; close()
    # must not wait for it with the GIL held (this deadlocked once), and wakes it at once.
    server, client = pair(sock_path)
    errors: list = []

    def blocked() -> None:
        try:
            server.recv(timeout=1.0)
        except tachyon.BusClosedError as e:
            errors.append(e)

    t = threading.Thread(target=blocked)
    t.start()
    time.sleep(0.2)
    server.close()
    t.join(timeout=30)
    assert not t.is_alive() and len(errors) == 1
    assert server.closed
    client.close()
