"""RPC across two network namespaces (the cross-host path), in every language pair:
a server in one namespace (Rust, Python or Node), clients of the other two languages in
the other, with raw and typed payloads and an error reply, over plaintext and over
mutual TLS. Over mutual TLS the server's handler names the caller from its certificate,
and a client with a certificate from another CA, or with none, is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Optional

import pytest

HERE = Path(__file__).resolve().parent
PORTS = {"rust": 7301, "python": 7302, "node": 7303}


def _ns(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def _server_cmd(lang: str, address: str, tls: Optional[Path], peer_bin: Path, python: str) -> list[str]:
    if lang == "rust":
        extra = ["--tls-dir", str(tls)] if tls else ["--allow-remote"]
        return [str(peer_bin), "tcp-serve", "--addr", address, "--workers", "2", *extra]
    if lang == "python":
        return [python, str(HERE / "py_peer.py"), "serve", address, *([str(tls)] if tls else [])]
    return ["node", str(HERE / "node_peer.js"), "serve", address, *([str(tls)] if tls else [])]


def _client_cmd(lang: str, address: str, tls: Optional[Path], who: str, peer_bin: Path, python: str) -> list[str]:
    if lang == "rust":
        extra = ["--tls-dir", str(tls), "--tls-identity", who] if tls else []
        return [str(peer_bin), "tcp-call", "--addr", address, "--count", "500", "--pipeline", "8", "--typed", *extra]
    tail = [str(tls), who] if tls else []
    if lang == "python":
        return [python, str(HERE / "py_peer.py"), "call", address, *tail]
    return ["node", str(HERE / "node_peer.js"), "call", address, *tail]


@pytest.mark.parametrize("mode", ["plain", "mtls"])
@pytest.mark.parametrize("server", ["rust", "python", "node"])
def test_clients_in_another_namespace_call_a_server(
    server: str,
    mode: str,
    netns: tuple[str, str],
    pki: Path,
    peer_bin: Path,
    node_env: dict[str, str],
    python: str,
    server_ip: str,
) -> None:
    ns_server, ns_client = netns
    tls = pki if mode == "mtls" else None
    address = f"tcp://{server_ip}:{PORTS[server] + (10 if tls else 0)}"
    proc = subprocess.Popen(
        _ns(ns_server, *_server_cmd(server, address, tls, peer_bin, python)),
        stdout=subprocess.PIPE,
        text=True,
        env=node_env,
    )
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline().split()
        assert ready[:2] == ["ready", address], ready
        for client in [c for c in ("rust", "python", "node") if c != server]:
            r = subprocess.run(
                _ns(ns_client, *_client_cmd(client, address, tls, "client", peer_bin, python)),
                capture_output=True,
                text=True,
                env=node_env,
                timeout=120,
            )
            out = r.stdout + r.stderr
            assert r.returncode == 0, f"{client} -> {server} ({mode}): {out}"
            if client == "rust":
                assert "ok 500 messages" in out and "rpc-error msg_type=999 code=1" in out and "add=42" in out, out
            else:
                assert "ok caller=" in out, out
            if tls:
                assert "caller=client-a" in out, f"{client} -> {server}: {out}"
        if tls:
            for client in [c for c in ("rust", "python", "node") if c != server]:
                for who in ("rogue", "none"):
                    r = subprocess.run(
                        _ns(ns_client, *_client_cmd(client, address, tls, who, peer_bin, python)),
                        capture_output=True,
                        text=True,
                        env=node_env,
                        timeout=60,
                    )
                    out = r.stdout + r.stderr
                    assert r.returncode != 0 and ("tls-error" in out or "Tls:" in out), f"{client}/{who} -> {server}: {out}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
