"""Every snippet of upstream's Python README (`tachyon-ipc` 0.5.1, `../shared/seeds/001_*`),
run as written against this package, the two sides in two processes. Only the socket
paths change (so tests do not collide); a connect that starts before its listener is
retried (upstream's connect fails at once, as ours does).
"""

from __future__ import annotations

import tempfile

import subprocess
import sys
import textwrap
import uuid

import pytest

import tachyon

RETRY = textwrap.dedent("""
    import time as _time, tachyon as _t
    def _retrying(connect):
        def attempt(path, *a, **k):
            deadline = _time.monotonic() + 20
            while True:
                try:
                    return connect(path, *a, **k)
                except _t.TachyonConnectionError:
                    if _time.monotonic() > deadline:
                        raise
                    _time.sleep(0.005)
        return staticmethod(attempt)
    _t.Bus.connect = _retrying(_t.Bus.connect)
    _t.RpcBus.connect = _retrying(_t.RpcBus.connect)
""")


def _run_pair(listener: str, connector: str, **paths: str) -> tuple[str, str]:
    """Runs the listener's code and the connector's code (with connect retries) as two
    processes; returns their outputs."""
    fresh = {name: f"{tempfile.gettempdir()}/seed-{uuid.uuid4().hex[:10]}.sock" for name in paths}
    for name, old in paths.items():
        listener = listener.replace(old, fresh[name])
        connector = connector.replace(old, fresh[name])
    a = subprocess.Popen([sys.executable, "-c", listener], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b = subprocess.Popen(
        [sys.executable, "-c", RETRY + connector], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out_b, err_b = b.communicate(timeout=60)
    out_a, err_a = a.communicate(timeout=60)
    assert a.returncode == 0, err_a
    assert b.returncode == 0, err_b
    return out_a, out_b


def test_quickstart():
    consumer = textwrap.dedent("""
        import tachyon

        with tachyon.Bus.listen("/tmp/demo.sock", 1 << 16) as bus:
        	for msg in bus:
        		print(f"received {msg.size} bytes type_id={msg.type_id}")
        		break
    """)
    producer = textwrap.dedent("""
        import tachyon

        with tachyon.Bus.connect("/tmp/demo.sock") as bus:
        	bus.send(b"hello tachyon", type_id=1)
    """)
    out, _ = _run_pair(consumer, producer, demo="/tmp/demo.sock")
    assert out.strip() == "received 13 bytes type_id=1"


def test_zero_copy_tx_and_rx():
    producer = textwrap.dedent("""
        import tachyon
        payload = b"zero copy payload"
        with tachyon.Bus.connect("/tmp/zc.sock") as bus:
        	with bus.send_zero_copy(size=64, type_id=7) as tx:
        		with memoryview(tx) as m:
        			m[:len(payload)] = payload
        		tx.actual_size = len(payload)
        	# auto-flushes on context exit
    """)
    consumer = textwrap.dedent("""
        import tachyon
        with tachyon.Bus.listen("/tmp/zc.sock", 1 << 16) as bus:
        	with bus.recv_zero_copy() as rx:
        		with memoryview(rx) as m:
        			snapshot = m.tobytes()  # copy before context exit
        	# slot committed on __exit__
        	print(rx.type_id, snapshot)
    """)
    out, _ = _run_pair(consumer, producer, zc="/tmp/zc.sock")
    assert out.strip() == "7 b'zero copy payload'"


def test_rpc_low_level():
    callee = textwrap.dedent("""
        import tachyon
        # callee
        with tachyon.RpcBus.listen("/tmp/rpc.sock", 1 << 16, 1 << 16) as callee:
        	with callee.serve() as rx:
        		cid = rx.correlation_id
        		with memoryview(rx) as m:
        			reply = m.tobytes()
        	callee.reply(cid, reply, msg_type=2)
        	print("served", cid)
    """)
    caller = textwrap.dedent("""
        import tachyon
        # caller
        with tachyon.RpcBus.connect("/tmp/rpc.sock") as caller:
        	cid = caller.call(b"ping", msg_type=1)
        	with caller.wait(cid) as rx:
        		with memoryview(rx) as m:
        			print(m.tobytes())
    """)
    out_callee, out_caller = _run_pair(callee, caller, rpc="/tmp/rpc.sock")
    assert out_caller.strip() == "b'ping'"
    assert out_callee.strip() == "served 1"


def test_decorator_api():
    common = textwrap.dedent("""
        import tachyon
        from tachyon import tachyon_rpc, RpcDispatcher


        @tachyon_rpc(msg_type=1)
        def echo(payload: memoryview) -> bytes:
        	return payload.tobytes()


        dispatcher = RpcDispatcher()
        dispatcher.register(echo)
    """)
    callee = common + textwrap.dedent("""
        # callee
        with tachyon.RpcBus.listen("/tmp/rpc.sock", 1 << 16, 1 << 16) as callee:
        	dispatcher.serve_forever(callee)
    """)
    caller = common + textwrap.dedent("""
        # caller
        with tachyon.RpcBus.connect("/tmp/rpc.sock") as caller:
        	response = echo.call(caller, b"hello")
        	print(response)
    """)
    _, out = _run_pair(callee, caller, rpc="/tmp/rpc.sock")
    assert out.strip() == "b'hello'"


def test_error_sentinel():
    from tachyon import MSG_TYPE_ERROR, _decode_error

    assert MSG_TYPE_ERROR == 0xFFFF
    # The bare upstream payload, and ours (which appends a MessagePack body).
    assert _decode_error(b"\x00\x2a") == 42
    assert _decode_error(tachyon._tachyon.encode_error(42, 2, "failed")) == 42


def test_batch_rx():
    consumer = textwrap.dedent("""
        import tachyon
        with tachyon.Bus.listen("/tmp/batch.sock", 1 << 16) as bus:
        	seen = 0
        	while seen < 5:
        		with bus.drain_batch(max_msgs=64) as batch:
        			for msg in batch:
        				print(msg.type_id, msg.actual_size)
        				seen += 1
        		# all slots committed on __exit__
    """)
    producer = textwrap.dedent("""
        import tachyon
        with tachyon.Bus.connect("/tmp/batch.sock") as bus:
        	for i in range(5):
        		bus.send(b"x" * i, type_id=i)
    """)
    out, _ = _run_pair(consumer, producer, batch="/tmp/batch.sock")
    assert out.split("\n")[:5] == [f"{i} {i}" for i in range(5)]


def test_type_id_encoding():
    from tachyon import make_type_id, route_id, msg_type

    type_id = make_type_id(0, 42)  # == 42
    assert type_id == 42
    assert route_id(type_id) == 0
    assert msg_type(type_id) == 42


def test_error_handling():
    code = textwrap.dedent("""
        import tachyon
        from tachyon import TachyonError, PeerDeadError

        try:
        	with tachyon.Bus.connect("/tmp/demo.sock") as bus:
        		bus.send(b"ping")
        except PeerDeadError:
        	# Bus entered FATAL_ERROR: corrupted header. Destroy immediately.
        	pass
        except TachyonError as e:
        	print(e)
    """).replace("/tmp/demo.sock", f"{tempfile.gettempdir()}/seed-{uuid.uuid4().hex[:10]}.sock")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "cannot connect" in p.stdout


def test_numa_binding():
    consumer = textwrap.dedent("""
        import tachyon
        path = "/tmp/numa.sock"
        with tachyon.Bus.listen(path, 1 << 20) as bus:
        	bus.set_numa_node(0)  # call before first message
        	print(next(iter(bus)).data)
    """)
    producer = textwrap.dedent("""
        import tachyon
        with tachyon.Bus.connect("/tmp/numa.sock") as bus:
        	bus.send(b"numa")
    """)
    out, _ = _run_pair(consumer, producer, numa="/tmp/numa.sock")
    assert out.strip() == "b'numa'"


def test_api_surface():
    for name in (
        "Bus", "RpcBus", "RpcDispatcher", "RpcEndpoint", "tachyon_rpc", "TxGuard", "RxGuard",
        "RxBatchGuard", "RxMsgView", "RpcTxGuard", "RpcRxGuard", "Message", "TachyonError",
        "PeerDeadError", "MSG_TYPE_ERROR", "TachyonBus", "TachyonRpcBus", "make_type_id",
        "msg_type", "route_id", "__version__",
    ):
        assert hasattr(tachyon, name), name
    assert isinstance(tachyon.__version__, str)


def test_low_level_classes_as_upstream_uses_them():
    listener = textwrap.dedent("""
        import tachyon
        bus = tachyon.TachyonRpcBus()
        bus.listen(socket_path="/tmp/low.sock", cap_fwd=1 << 16, cap_rev=1 << 16)
        with bus.serve() as rx:
        	cid = rx.correlation_id
        	with memoryview(rx) as m:
        		payload = m.tobytes()
        with bus.acquire_reply(correlation_id=cid, max_payload_size=64) as tx:
        	with memoryview(tx) as m:
        		m[:len(payload)] = payload.upper()
        	tx.actual_size = len(payload)
        	tx.msg_type = 3
        print("replied", cid)
        bus.destroy()
    """)
    connector = textwrap.dedent("""
        import tachyon, time
        bus = tachyon.TachyonRpcBus()
        while True:
        	try:
        		bus.connect(socket_path="/tmp/low.sock"); break
        	except ConnectionError:
        		time.sleep(0.005)
        with bus.acquire_call(max_payload_size=64) as tx:
        	with memoryview(tx) as m:
        		m[:5] = b"hello"
        	tx.actual_size = 5
        	tx.msg_type = 3
        cid = tx.out_cid
        with bus.wait(correlation_id=cid) as rx:
        	with memoryview(rx) as m:
        		print(cid, m.tobytes(), rx.type_id)
        bus.destroy()
    """)
    out_l, out_c = _run_pair(listener, connector, low="/tmp/low.sock")
    assert out_c.strip() == "1 b'HELLO' 3"
    assert out_l.strip() == "replied 1"


def test_batch_items_export_dlpack_without_a_copy(sock_path):
    import threading

    import numpy as np  # a dev requirement (requirements-dev.txt)

    got: dict = {}
    t = threading.Thread(target=lambda: got.setdefault("bus", tachyon.Bus.listen(sock_path, 1 << 16, timeout=20)))
    t.start()
    from helpers import connect_retry

    producer = connect_retry(sock_path)
    t.join()
    consumer = got["bus"]
    with consumer, producer:
        for i in range(4):
            producer.send(bytes([i]) * 16, type_id=i)
        with consumer.drain_batch(max_msgs=4, timeout=5) as batch:
            arrays = [np.from_dlpack(item) for item in batch]
            assert [a.tolist() for a in arrays] == [[i] * 16 for i in range(4)]
            assert all(a.dtype == np.uint8 and not a.flags.writeable for a in arrays)
            # Zero copy: the array's memory is the view's memory, in the shared ring.
            with memoryview(batch[0]) as m:
                view_addr = np.frombuffer(m, dtype=np.uint8).__array_interface__["data"][0]
            assert arrays[0].__array_interface__["data"][0] == view_addr
            # A tensor alive at release: BufferError, the slots stay held.
            with pytest.raises(BufferError):
                batch.commit()
            del arrays
        # Released on exit once the arrays are gone; the ring moves on.
        producer.send(b"next", type_id=9)
        assert consumer.recv(timeout=5).data == b"next"
