"""Upstream's low-level classes, ``TachyonBus`` and ``TachyonRpcBus``: an empty object
that ``listen()`` or ``connect()`` opens in place, and ``acquire_*`` guards. They run on
the same native buses as :class:`tachyon.Bus` and :class:`tachyon.RpcBus`; code written
against upstream's extension types keeps working unchanged.
"""

from __future__ import annotations

from typing import Optional, Union

from . import _tachyon

__all__ = ["TachyonBus", "TachyonRpcBus"]


def _opened(bus: Optional[object], what: str) -> None:
    if bus is not None:
        raise RuntimeError(f"this {what} is already initialized")


class TachyonBus:
    """The SPSC bus as upstream's extension type: ``TachyonBus()``, then ``listen`` or
    ``connect``; ``destroy`` unmaps it."""

    __slots__ = ("_bus",)

    def __init__(self) -> None:
        self._bus: Optional[_tachyon.Bus] = None

    @property
    def _open(self) -> _tachyon.Bus:
        if self._bus is None:
            raise RuntimeError("the bus is not initialized: call listen() or connect() first")
        return self._bus

    def listen(self, socket_path: str, capacity: int) -> None:
        """Creates the ring and blocks until one producer connects."""
        _opened(self._bus, "bus")
        self._bus = _tachyon.Bus.listen(socket_path, capacity)

    def connect(self, socket_path: str) -> None:
        """Attaches to the ring of a listener."""
        _opened(self._bus, "bus")
        self._bus = _tachyon.Bus.connect(socket_path)

    def destroy(self) -> None:
        """Unmaps the shared memory and closes the fds. Idempotent."""
        if self._bus is not None:
            self._bus.close()

    def flush(self) -> None:
        """Publishes messages committed without flushing."""
        self._open.flush()

    def acquire_tx(self, max_payload_size: int) -> _tachyon.TxGuard:
        """A zero-copy slot: write it through ``memoryview(tx)``, set ``actual_size`` and
        ``type_id``, leave the ``with`` block to commit."""
        return self._open.send_zero_copy(max_payload_size, 0)

    def acquire_rx(self, spin_threshold: int = 10000) -> _tachyon.RxGuard:
        """Blocks until a message is there; returns it read in place."""
        del spin_threshold  # the native wait spins, then sleeps on the futex
        return self._open.recv_zero_copy()

    def drain_batch(self, max_msgs: int = 1024, spin_threshold: int = 10000) -> _tachyon.RxBatchGuard:
        """Blocks until at least one message is there, then takes up to ``max_msgs``."""
        return self._open.drain_batch(max_msgs, spin_threshold)

    def set_numa_node(self, node_id: int) -> None:
        """Binds the ring's memory to NUMA node ``node_id``."""
        self._open.set_numa_node(node_id)

    def set_polling_mode(self, pure_spin: Union[bool, int]) -> None:
        """1: the consumer spins and never sleeps; 0: spin then sleep."""
        self._open.set_polling_mode(pure_spin)


class TachyonRpcBus:
    """The RPC bus as upstream's extension type: ``TachyonRpcBus()``, then ``listen``
    (callee) or ``connect`` (caller); ``destroy`` unmaps both rings."""

    __slots__ = ("_bus",)

    def __init__(self) -> None:
        self._bus: Optional[_tachyon.RpcBus] = None

    @property
    def _open(self) -> _tachyon.RpcBus:
        if self._bus is None:
            raise RuntimeError("the bus is not initialized: call listen() or connect() first")
        return self._bus

    def listen(self, socket_path: str, cap_fwd: int, cap_rev: int) -> None:
        """Creates both rings and blocks until one caller connects."""
        _opened(self._bus, "RPC bus")
        self._bus = _tachyon.RpcBus.listen(socket_path, cap_fwd, cap_rev)

    def connect(self, socket_path: str) -> None:
        """Attaches to a callee's rings as the caller."""
        _opened(self._bus, "RPC bus")
        self._bus = _tachyon.RpcBus.connect(socket_path)

    def destroy(self) -> None:
        """Unmaps both rings and closes the fds. Idempotent."""
        if self._bus is not None:
            self._bus.close()

    def acquire_call(self, max_payload_size: int) -> _tachyon.TxGuard:
        """A request slot: fill ``memoryview(tx)``, set ``actual_size`` and
        ``msg_type``; ``out_cid`` holds the correlation id after the ``with`` block."""
        return self._open.call_zero_copy(max_payload_size, 0)

    def acquire_reply(self, correlation_id: int, max_payload_size: int) -> _tachyon.TxGuard:
        """The reply slot for ``correlation_id``."""
        if correlation_id == 0:
            raise ValueError("correlation_id must be non-zero")
        return self._open.reply_zero_copy(correlation_id, max_payload_size, 0)

    def wait(self, correlation_id: int, spin_threshold: int = 10000) -> _tachyon.RpcRxGuard:
        """Blocks until the reply to ``correlation_id`` arrives; returns it in place."""
        return self._open.wait(correlation_id, spin_threshold)

    def serve(self, spin_threshold: int = 10000) -> _tachyon.RpcRxGuard:
        """Blocks until a request arrives; returns it in place."""
        return self._open.serve(spin_threshold)

    def set_polling_mode(self, pure_spin: Union[bool, int]) -> None:
        """1: both consumers spin and never sleep; 0: spin then sleep."""
        self._open.set_polling_mode(pure_spin)
