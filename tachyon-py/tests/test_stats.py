"""`stats()` of buses and servers: the counts match what the test sent and received, with
the other side in another process."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

import tachyon
from helpers import connect_retry, connect_rpc_retry
from payloads import payload_size


def wait_until(check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_bus_stats_count_messages_from_a_rust_process_and_its_death(peer_bin, sock_path):
    n = 5000
    child = subprocess.Popen(
        # --timeout-ms: how long it stays once done (it cannot tell that the ring drained).
        [str(peer_bin), "produce", "--path", sock_path, "--listen", str(1 << 16), "--count", str(n),
         "--seed", "5", "--max-size", "64", "--timeout-ms", "2000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        with connect_retry(sock_path) as bus:
            assert bus.stats() == {k: 0 for k in tachyon.BusStats.__annotations__}
            for _ in range(n):
                bus.recv(timeout=20)
            s = bus.stats()
            assert s["received_messages"] == n
            assert s["received_bytes"] == sum(payload_size(5, i, 64) for i in range(n))
            assert (s["sent_messages"], s["timeouts"], s["protocol_errors"]) == (0, 0, 0)
            child.wait(timeout=30)
            # The producer has exited: the next receive reports it, and it is counted.
            with pytest.raises((tachyon.PeerDeadError, tachyon.BusClosedError)):
                bus.recv(timeout=5)
    finally:
        child.kill()


def test_bus_stats_count_full_ring_waits_and_timeouts(sock_path):
    box: list = []
    t = threading.Thread(target=lambda: box.append(tachyon.Bus.listen(sock_path, 256, timeout=20)))
    t.start()
    sender = connect_retry(sock_path)
    t.join()
    with box[0] as receiver, sender:
        sent = 0
        with pytest.raises(tachyon.BufferFullError):
            while True:  # until the ring is full
                sender.send(b"abc", timeout=0)
                sent += 1
        assert sent >= 1
        with pytest.raises(tachyon.TachyonTimeoutError):
            sender.send(b"abc", timeout=0.05)
        s = sender.stats()
        assert (s["sent_messages"], s["sent_bytes"]) == (sent, 3 * sent)
        assert s["full_waits"] == 1  # one full ring, however many sends found it full
        assert s["timeouts"] == 1
        assert receiver.recv(timeout=1).data == b"abc"
        r = receiver.stats()
        assert (r["received_messages"], r["received_bytes"], r["sent_messages"]) == (1, 3, 0)


@pytest.mark.parametrize("address", ["shm", "tcp://127.0.0.1:0"])
def test_server_stats_count_clients_requests_and_errors_by_code(peer_bin, sock_path, address, teapot_dispatcher):
    where = sock_path if address == "shm" else address
    with tachyon.RpcServer(where, teapot_dispatcher, on_error=lambda mt, e: None) as server:
        # A Rust client process: 7 echo calls and one to an unknown msg_type (code 1).
        if address == "shm":
            rust = [str(peer_bin), "rpc-call", "--path", server.path, "--count", "7"]
        else:
            rust = [str(peer_bin), "tcp-call", "--addr", server.path, "--count", "7"]
        out = subprocess.run(rust, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        # And a Python client in this process: two failing calls (code 418).
        client = connect_rpc_retry(server.path) if address == "shm" else tachyon.connect(server.path)
        for _ in range(2):
            with pytest.raises(tachyon.TachyonRpcError):
                client.invoke(b"x", 3, timeout=10)
        if address == "shm":
            bus = client.stats()
            assert (bus["sent_messages"], bus["received_messages"]) == (2, 2)
        if address == "shm":
            client.close()
        else:
            del client
        wait_until(lambda: server.stats()["active"] == 0 and server.stats()["requests"] >= 10)
        s = server.stats()
        assert (s["accepted"], s["refused"], s["active"]) == (2, 0, 0), s
        assert s["requests"] == 7 + 1 + 2, s
        assert s["errors"] == {1: 1, 418: 2}, s
    # Still readable once stopped.
    assert server.stats()["errors"] == {1: 1, 418: 2}
