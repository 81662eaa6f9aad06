"""Fixtures of the cross-host tests: two network namespaces joined by a veth pair (a
server in one, its clients in the other), a throwaway PKI whose server certificate
names the server's address, and Node with this repository's package on its path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER_IP = "10.78.0.1"


@pytest.fixture(scope="session")
def netns(require: Callable[[bool, str], None]) -> Iterator[tuple[str, str]]:
    """Namespaces (server side, client side); the server side has SERVER_IP."""
    can = os.geteuid() == 0 and shutil.which("ip") is not None
    require(can, "network namespaces need root and iproute2")
    tag = str(os.getpid() % 100000)
    a, b = f"tnsa{tag}", f"tnsb{tag}"
    va, vb = f"tva{tag}", f"tvb{tag}"
    steps = [
        ["netns", "add", a],
        ["netns", "add", b],
        ["link", "add", va, "type", "veth", "peer", "name", vb],
        ["link", "set", va, "netns", a],
        ["link", "set", vb, "netns", b],
        ["-n", a, "addr", "add", f"{SERVER_IP}/24", "dev", va],
        ["-n", b, "addr", "add", "10.78.0.2/24", "dev", vb],
        ["-n", a, "link", "set", va, "up"],
        ["-n", b, "link", "set", vb, "up"],
        ["-n", a, "link", "set", "lo", "up"],
        ["-n", b, "link", "set", "lo", "up"],
    ]
    try:
        for s in steps:
            r = subprocess.run(["ip", *s], capture_output=True, text=True)
            require(r.returncode == 0, f"ip {' '.join(s)} failed: {r.stderr.strip()}")
        yield a, b
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture(scope="session")
def pki(peer_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.pem, server.pem/key (naming SERVER_IP), client.pem/key, rogue.pem/key."""
    d = tmp_path_factory.mktemp("pki")
    subprocess.run([str(peer_bin), "gen-certs", "--path", str(d), "--addr", SERVER_IP], check=True, capture_output=True)
    return d


@pytest.fixture(scope="session")
def server_ip() -> str:
    """The server namespace's address (the server certificate names it)."""
    return SERVER_IP


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable
