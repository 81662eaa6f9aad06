"""Log channels: named, file-backed, bounded logs that many processes append to and any
number read, each reader keeping its own position (the Tiga channel model; the Rust
core's ``tachyon::channel``).

>>> # with tachyon.Channel("sample.events", "/tmp/tiga") as ch:
>>> #     ch.write(b"event payload", media_type="text/plain")
>>> #     batch = ch.read(last_id=0)          # .entries, .last_id, .lost, .abandoned
>>> #     for entry in ch.follow(batch.last_id, timeout=1.0): ...

``lost`` counts entries that were overwritten (the channel is bounded) before this reader
got to them; nothing is skipped silently.
"""

from __future__ import annotations

import asyncio
from typing import Iterator, Optional

from . import _tachyon
from ._errors import ChannelOverrunError

__all__ = ["Channel", "ChannelEntry", "ChannelOverrunError", "ChannelRead"]

ChannelEntry = _tachyon.ChannelEntry
ChannelRead = _tachyon.ChannelRead


class Channel(_tachyon.Channel):
    """A log channel ``<ipc_directory>/<name>``, created (mode 0600, ``capacity`` bytes of
    entries, 1 MiB by default) if it is missing. Use it as a context manager, or call
    :meth:`close` to end pending waits."""

    async def wait_async(self, last_id: int, timeout: Optional[float] = None) -> bool:
        """Awaitable :meth:`wait`: the event loop keeps running while a worker thread
        sleeps on the channel (``close()`` ends the sleep at once)."""
        return await asyncio.to_thread(self.wait, last_id, timeout)

    def follow(self, last_id: int = 0, *, timeout: Optional[float] = None) -> Iterator[ChannelEntry]:
        """Yields every entry after ``last_id`` as it is appended, until ``timeout``
        seconds pass with nothing new (``None``: until :meth:`close`).

        :raises ChannelOverrunError: entries were overwritten before this follower read
            them (its ``lost`` says how many), so a follower never misses one silently.
        """
        while True:
            batch = self.read(last_id)
            if batch.lost:
                raise ChannelOverrunError(batch.lost, last_id)
            yield from batch.entries
            last_id = batch.last_id
            if not batch.entries and not batch.abandoned and not self.wait(last_id, timeout):
                return
