"""The shapes of the counters that ``stats()`` returns: plain dicts of ints.

Each process counts its own side (nothing is read from shared memory), so the numbers
cannot be forged by a peer and reading them never blocks a bus in use.

>>> # bus.stats()["sent_messages"], server.stats()["errors"].get(code, 0)
"""

from __future__ import annotations

from typing import TypedDict

__all__ = ["BusStats", "ServerStats"]


class BusStats(TypedDict):
    """What ``Bus.stats()`` and ``RpcBus.stats()`` return: this side's counters."""

    sent_messages: int
    sent_bytes: int
    received_messages: int
    received_bytes: int
    full_waits: int
    sleeps: int
    watchdog_rescues: int
    """Sleeps no wake-up ended (the watchdog did, and a message was waiting): lost
    wake-ups. A healthy bus keeps this at 0."""
    wakes: int
    timeouts: int
    peer_deaths: int
    protocol_errors: int


class ServerStats(TypedDict):
    """What ``RpcServer.stats()`` and ``TcpRpcServer.stats()`` return."""

    accepted: int
    refused: int
    active: int
    requests: int
    protocol_errors: int
    paused: int
    errors: dict[int, int]
