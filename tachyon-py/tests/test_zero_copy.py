"""Zero-copy slots, batches and the buffer protocol, over real shared memory."""

from __future__ import annotations

import threading

import pytest

import tachyon
from helpers import connect_retry, connect_rpc_retry


def pair(path: str, capacity: int = 1 << 16) -> tuple[tachyon.Bus, tachyon.Bus]:
    box: list = []
    t = threading.Thread(target=lambda: box.append(tachyon.Bus.listen(path, capacity, timeout=20)))
    t.start()
    client = connect_retry(path)
    t.join()
    return box[0], client


def test_zero_copy_tx_snippet_as_written(sock_path):
    server, bus = pair(sock_path)
    with server, bus:
        payload = b"written in place"
        n = len(payload)
        with bus.send_zero_copy(size=64, type_id=7) as tx:
            with memoryview(tx) as m:
                m[:n] = payload
            tx.actual_size = n
        msg = server.recv(timeout=5)
        assert (msg.type_id, msg.size, msg.data) == (7, n, payload)


def test_zero_copy_rx_snippet_as_written(sock_path):
    bus, client = pair(sock_path)
    with bus, client:
        client.send(b"read in place", type_id=3)
        with bus.recv_zero_copy() as rx:
            with memoryview(rx) as m:
                assert m.readonly
                assert bytes(m) == b"read in place"
            assert (rx.type_id, rx.actual_size) == (3, 13)
        # Committed on exit: the next message follows.
        client.send(b"next", 4)
        assert bus.recv(timeout=5).data == b"next"


def test_an_exception_rolls_the_slot_back(sock_path):
    server, bus = pair(sock_path)
    with server, bus:
        with pytest.raises(ZeroDivisionError):
            with bus.send_zero_copy(size=8, type_id=1) as tx:
                with memoryview(tx) as m:
                    m[:4] = b"lost"
                1 / 0
        bus.send(b"after", 2)
        msg = server.recv(timeout=5)
        assert (msg.type_id, msg.data) == (2, b"after"), "the rolled-back slot was never sent"


def test_a_memoryview_kept_past_the_rx_guard_raises_buffer_error(sock_path):
    bus, client = pair(sock_path)
    with bus, client:
        client.send(b"first", 1)
        client.send(b"second", 2)
        with pytest.raises(BufferError, match="still alive"):
            with bus.recv_zero_copy(timeout=5) as rx:
                kept = memoryview(rx)
        # The slot is still held, so the view never shows reused memory, and the bus
        # refuses to read past it meanwhile.
        assert bytes(kept) == b"first"
        with pytest.raises(BufferError, match="still alive"):
            bus.recv(timeout=0)
        kept.release()
        rx.commit()
        assert bus.recv(timeout=5).data == b"second"
        with pytest.raises(BufferError, match="released"):
            memoryview(rx)


def test_an_unreleased_guard_is_copied_out_by_the_next_receive(sock_path):
    bus, client = pair(sock_path)
    with bus, client:
        for i in range(3):
            client.send(b"msg%d" % i, i)
        first = bus.recv_zero_copy(timeout=5)  # never released explicitly
        with memoryview(first) as m:
            assert bytes(m) == b"msg0"
        batch = bus.drain_batch(timeout=5)  # detaches `first`: copied out, slot released
        assert [bytes(item) for item in batch] == [b"msg1", b"msg2"]
        assert first.data == b"msg0" and bytes(memoryview(first)) == b"msg0"
        client.send(b"msg3", 3)
        assert bus.recv(timeout=5).data == b"msg3"  # detaches the batch the same way
        assert [item.data for item in batch] == [b"msg1", b"msg2"]


def test_a_memoryview_kept_past_the_tx_guard_raises_buffer_error(sock_path):
    server, bus = pair(sock_path)
    with server, bus:
        with pytest.raises(BufferError):
            with bus.send_zero_copy(size=8, type_id=1) as tx:
                kept = memoryview(tx)
                kept[:2] = b"hi"
                tx.actual_size = 2
        with pytest.raises(tachyon.TachyonError, match="already open"):
            bus.send(b"x", timeout=0)
        kept.release()
        del kept
        tx.commit()
        assert server.recv(timeout=5).data == b"hi"


def test_guard_dropped_without_exit_rolls_back_and_frees_the_bus(sock_path):
    server, bus = pair(sock_path)
    with server, bus:
        tx = bus.send_zero_copy(size=8)
        del tx  # garbage: rolled back
        bus.send(b"ok", 5)
        assert server.recv(timeout=5).type_id == 5


def test_zero_copy_size_errors(sock_path):
    server, bus = pair(sock_path, capacity=4096)
    with server, bus:
        with pytest.raises(ValueError):
            bus.send_zero_copy(size=1 << 20)
        with bus.send_zero_copy(size=16) as tx:
            with pytest.raises(ValueError, match="exceeds"):
                tx.actual_size = tx.max_size + 1
            tx.actual_size = 0
        assert server.recv(timeout=5).size == 0


def test_drain_batch_len_index_iteration_and_buffers(sock_path):
    bus, client = pair(sock_path)
    with bus, client:
        for i in range(10):
            client.send(bytes([i]) * (i + 1), type_id=100 + i)
        with bus.drain_batch(max_msgs=4, spin_threshold=1000) as batch:
            assert len(batch) == 4
            assert [m.type_id for m in batch] == [100, 101, 102, 103]
            assert batch[-1].actual_size == 4
            with memoryview(batch[2]) as m:
                assert bytes(m) == b"\x02\x02\x02"
            with pytest.raises(IndexError):
                batch[4]
        rest = bus.drain_batch(1024, 0, timeout=5)
        assert [m.data for m in rest] == [bytes([i]) * (i + 1) for i in range(4, 10)]
        with pytest.raises(tachyon.TachyonTimeoutError):
            bus.drain_batch(8, 0, timeout=0.05)


def test_rpc_zero_copy_call_and_reply(sock_path):
    box: list = []
    t = threading.Thread(target=lambda: box.append(tachyon.RpcBus.listen(sock_path, 1 << 16, 1 << 16, timeout=20)))
    t.start()
    caller = connect_rpc_retry(sock_path)
    t.join()
    callee = box[0]
    with callee, caller:
        with caller.call_zero_copy(size=32, msg_type=9) as tx:
            with memoryview(tx) as m:
                m[:5] = b"hello"
            tx.actual_size = 5
        cid = tx.correlation_id
        assert cid is not None and cid >= 1
        with callee.serve(timeout=5) as rx:
            assert (rx.correlation_id, rx.type_id, rx.data) == (cid, 9, b"hello")
        with callee.reply_zero_copy(cid, size=32, msg_type=9) as reply:
            with memoryview(reply) as m:
                m[:5] = b"HELLO"
            reply.actual_size = 5
        with caller.wait(cid, timeout=5) as r:
            assert r.data == b"HELLO"
