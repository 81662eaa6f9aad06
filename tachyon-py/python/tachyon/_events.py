"""Logs the core's connection events on the ``tachyon`` logger.

The Rust core reports connects, accepts, handshakes, refusals and dead peers (see
``tachyon::events``). They are queued natively, on whatever thread they happen, and a
daemon thread started on import takes them and logs them, so no native thread ever
waits for the GIL. Each record carries ``tachyon_event`` (its name: ``connected``,
``accepted``, ``refused``, ``handshake_failed``, ``peer_dead``, ``connect_failed``, or a
span: ``connect``, ``accept``, ``handshake``), ``tachyon_kind`` and ``tachyon_fields``
as ``extra`` attributes.

>>> # logging.getLogger("tachyon").setLevel(logging.INFO)   # see connects and accepts
"""

from __future__ import annotations

import atexit
import logging
import threading

from . import _tachyon

logger = logging.getLogger("tachyon")

_started = False
_lock = threading.Lock()


def _pump() -> None:
    while True:
        got = _tachyon.next_events(0.5)
        if got is None:  # the interpreter is exiting
            return
        records, dropped = got
        if dropped:
            logger.warning("%d tachyon events were dropped (the log could not keep up)", dropped)
        for level, kind, name, message, fields in records:
            if not logger.isEnabledFor(level):
                continue
            if not message:
                detail = " ".join(f"{k}={v}" for k, v in fields.items())
                message = f"{name}: {detail}" if detail else name
            extra = {"tachyon_event": name, "tachyon_kind": kind, "tachyon_fields": fields}
            logger.log(level, "%s", message, extra=extra)


def start() -> bool:
    """Starts forwarding (idempotent). False when another ``tracing`` subscriber owns
    the process, so nothing can be forwarded."""
    global _started
    with _lock:
        if _started:
            return True
        if not _tachyon.forward_events():
            return False
        thread = threading.Thread(target=_pump, name="tachyon-events", daemon=True)
        thread.start()
        atexit.register(_stop, thread)
        _started = True
        return True


def _stop(thread: threading.Thread) -> None:
    """At exit: end the thread before finalization, which a daemon thread holding or
    retaking the GIL would not survive."""
    _tachyon.stop_events()
    thread.join(timeout=2.0)
