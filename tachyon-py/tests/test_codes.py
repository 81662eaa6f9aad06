"""One error-code table: the core's (``tachyon::rpc::code::ALL``), exported as
``tachyon.RpcCode`` here and as ``RpcCode`` by the Node package, the same names and values."""

from __future__ import annotations

import json
import subprocess

import tachyon
from tachyon import _tachyon


def test_python_rpc_code_is_the_core_table() -> None:
    assert [(c.name, c.value) for c in tachyon.RpcCode] == list(_tachyon.RPC_CODES)
    assert tachyon.RpcCode.DEADLINE_EXCEEDED == 7 and tachyon.RpcCode.UNSUPPORTED == 9


def test_node_exports_the_same_codes(node_env: dict[str, str]) -> None:
    out = subprocess.run(
        ["node", "-e", "console.log(JSON.stringify(require('tachyon-rpc').RpcCode))"],
        env=node_env, capture_output=True, text=True, check=True,
    ).stdout
    assert json.loads(out) == {c.name: c.value for c in tachyon.RpcCode}


def test_every_error_of_the_package_is_a_tachyon_error() -> None:
    assert issubclass(tachyon.ServiceError, tachyon.TachyonError)
    assert issubclass(tachyon.TachyonRpcError, tachyon.TachyonError)


def test_main_as_a_library_leaves_the_sigint_handler_alone() -> None:
    import signal

    from tachyon.__main__ import main

    before = signal.getsignal(signal.SIGINT)
    assert main(["doctor", "--json"]) == 0
    assert signal.getsignal(signal.SIGINT) is before
