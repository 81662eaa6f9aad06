"""Typed example, checked with ``mypy --strict`` in ``make test``: calls a typed handler.

Usage: python typed_client.py SOCKET_PATH   (against `tachyon-peer rpc-serve`)
"""

from __future__ import annotations

import dataclasses
import sys

import tachyon


@dataclasses.dataclass
class AddReq:
    a: int
    b: int


@dataclasses.dataclass
class AddResp:
    sum: int


def main(path: str) -> int:
    add = tachyon.RpcEndpoint(lambda req: None, msg_type=2, typed=True, response_type=AddResp)
    with tachyon.RpcBus.connect(path) as bus:
        resp = add.call(bus, AddReq(a=40, b=2), timeout=5.0)
        assert isinstance(resp, AddResp)
        print(f"40 + 2 = {resp.sum}")
        try:
            bus.invoke(b"?", 999, timeout=5.0)
        except tachyon.TachyonRpcError as e:
            print(f"msg_type {e.msg_type} failed with code {e.code}: {e.message}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
