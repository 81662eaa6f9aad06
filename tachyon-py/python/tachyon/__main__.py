"""``python -m tachyon``: the ``tachyon`` command, run in this process.

``doctor`` (what this machine supports), ``inspect [PID]`` and ``top [PID]`` (the rings a
process holds), ``bench [--plot FILE.svg]`` and ``call ADDR MSG_TYPE [PAYLOAD]``; ``--help``
on each. The same as the Rust ``tachyon`` binary and ``npx tachyon``.
"""

from __future__ import annotations

import signal
import sys
from typing import Optional, Sequence

from . import _tachyon


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs ``tachyon`` with ``argv`` (default: this program's arguments) in this process
    and returns its exit code. Signal handling stays the caller's: a command that runs
    until interrupted (``top``) ends when the caller's own handling ends the process."""
    args = ["tachyon", *(sys.argv[1:] if argv is None else argv)]
    sys.stdout.flush()
    return _tachyon.cli_main(args)


def _script() -> int:
    """The ``tachyon`` script and ``python -m tachyon``: Ctrl-C ends the command at once,
    as it ends the Rust binary (``top`` runs until then). Only here, never when
    :func:`main` is called as a library, is the SIGINT handler replaced."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    return main()


if __name__ == "__main__":
    sys.exit(_script())
