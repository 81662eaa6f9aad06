"""The core's connection events reach Python's ``tachyon`` logger: accepts and
refusals on a server, connects of a client, with the other side in another process."""

from __future__ import annotations

import logging
import subprocess
import time

import pytest

import tachyon


def wait_for(caplog, name: str, timeout: float = 10.0) -> list[logging.LogRecord]:
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in caplog.records if getattr(r, "tachyon_event", None) == name]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def test_accepts_refusals_and_connects_are_logged_on_the_tachyon_logger(peer_bin, sock_path, caplog):
    caplog.set_level(logging.DEBUG, logger="tachyon")
    d = tachyon.RpcDispatcher()

    @d.handler(1)
    def echo(req: memoryview) -> bytes:
        return req.tobytes()

    with tachyon.RpcServer(sock_path, d, max_clients=1) as server:
        mine = tachyon.connect(server.path, timeout=10)
        connected = wait_for(caplog, "connected")
        assert connected and connected[0].levelno == logging.INFO
        assert connected[0].name == "tachyon"
        assert connected[0].tachyon_fields["address"] == sock_path
        assert connected[0].tachyon_fields["transport"] == "shm"
        spans = {r.tachyon_event for r in caplog.records if r.tachyon_kind == "span"}
        assert {"connect", "accept", "handshake"} <= spans, spans

        # A Rust client in another process is accepted, then turned away: one slot.
        child = subprocess.run(
            [str(peer_bin), "rpc-call", "--path", sock_path, "--count", "1"],
            capture_output=True, text=True, timeout=60,
        )
        assert child.returncode != 0
        refused = wait_for(caplog, "refused")
        assert refused and refused[0].levelno == logging.WARNING
        assert "TooManyClients" in refused[0].getMessage()
        accepted = [
            r for r in wait_for(caplog, "accepted")
            if r.tachyon_fields.get("peer_pid") not in (None, str(__import__("os").getpid()))
        ]
        assert accepted, [r.tachyon_fields for r in caplog.records if r.tachyon_event == "accepted"]
        mine.close()


def test_a_dead_peer_is_logged(peer_bin, sock_path, caplog):
    caplog.set_level(logging.INFO, logger="tachyon")
    child = subprocess.Popen(
        [str(peer_bin), "produce", "--path", sock_path, "--listen", str(1 << 16), "--count", "100000000",
         "--max-size", "32"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    from helpers import connect_retry

    with connect_retry(sock_path) as bus:
        bus.recv(timeout=10)
        child.kill()
        child.wait()
        with pytest.raises(tachyon.PeerDeadError):
            while True:
                bus.recv(timeout=10)
        dead = wait_for(caplog, "peer_dead")
        assert dead and "peer dead" in dead[0].getMessage()
        assert bus.stats()["peer_deaths"] == 1

