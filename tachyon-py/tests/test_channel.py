"""`tachyon.Channel`: log channels from Python, against Python, Rust and Node processes.

Every entry a test writes is checksummed (``payloads.channel_entry``), and every reader
accounts for every id: read, lost to an overrun, or abandoned by a dead writer."""

from __future__ import annotations

import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

import tachyon
from helpers import ROOT, run_python
from payloads import channel_entry, check_channel_entry


def test_write_read_ids_media_types_and_persistence(tmp_path: Path) -> None:
    with tachyon.Channel("events", tmp_path) as ch:
        assert ch.last_id() == 0 and ch.read().entries == []
        assert ch.write(b"one", media_type="text/plain") == 1
        assert ch.write(b"two") == 2
        r = ch.read(0)
        assert [(e.id, e.media_type, e.data) for e in r.entries] == [(1, "text/plain", b"one"), (2, "", b"two")]
        assert (r.last_id, r.lost, r.abandoned) == (2, 0, 0)
        assert [e.id for e in ch.read(1).entries] == [2]
    assert (tmp_path / "events").stat().st_mode & 0o777 == 0o600
    # A reader started later reads what is still there.
    with tachyon.Channel("events", tmp_path, create=False) as again:
        assert [e.data for e in again.read().entries] == [b"one", b"two"]


def test_bad_input_gets_typed_errors(tmp_path: Path) -> None:
    for bad in ["", ".", "..", "a/b"]:
        with pytest.raises(ValueError, match="channel name"):
            tachyon.Channel(bad, tmp_path)
    with pytest.raises(ValueError, match="capacity"):
        tachyon.Channel("small", tmp_path, capacity=100)
    with pytest.raises(OSError):
        tachyon.Channel("missing", tmp_path, create=False)
    ch = tachyon.Channel("c", tmp_path, capacity=4096)
    with pytest.raises(ValueError, match="exceeds"):
        ch.write(b"x" * 5000)
    with pytest.raises(ValueError, match="media type"):
        ch.write(b"", media_type="m" * 256)
    (tmp_path / "garbage").write_bytes(b"not a channel" * 1000)
    with pytest.raises(tachyon.CorruptChannelError, match="bad magic"):
        tachyon.Channel("garbage", tmp_path)


def test_an_overrun_reader_learns_exactly_how_many_it_lost(tmp_path: Path) -> None:
    ch = tachyon.Channel("small", tmp_path, capacity=4096)
    for i in range(1000):
        ch.write(i.to_bytes(4, "little"))
    r = ch.read(0, max_entries=10**6)
    first = r.entries[0].id
    assert r.lost == first - 1 and r.last_id == 1000
    assert all(int.from_bytes(e.data, "little") + 1 == e.id for e in r.entries)
    with pytest.raises(tachyon.ChannelOverrunError) as e:
        next(ch.follow(0, timeout=0))
    assert e.value.lost == first - 1


def test_wait_releases_the_gil_and_close_ends_it(tmp_path: Path) -> None:
    ch = tachyon.Channel("wake", tmp_path)
    threading.Timer(0.05, lambda: ch.write(b"late")).start()
    assert ch.wait(0, timeout=30), "the write did not wake the wait"
    t = time.monotonic()
    assert not ch.wait(1, timeout=0.05)
    assert time.monotonic() - t >= 0.05
    threading.Timer(0.05, ch.close).start()
    assert not ch.wait(1, timeout=10)
    assert ch.closed


def _python_writer(path: Path, writer: int, count: int) -> subprocess.Popen[str]:
    return run_python(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / "tests" / "interop")!r})
        import tachyon
        from payloads import channel_entry
        ch = tachyon.Channel({path.name!r}, {str(path.parent)!r})
        for seq in range({count}):
            ch.write(channel_entry({writer}, seq, 64), media_type="application/x-tachyon-test")
        print("wrote", {count})
    """))


def _read_all(ch: tachyon.Channel, total: int) -> tuple[int, int]:
    """Reads until ``total`` ids are accounted for; checks each entry."""
    last, read, lost, next_seq = 0, 0, 0, {}
    while last < total:
        assert ch.wait(last, timeout=20), f"nothing after {last}"
        b = ch.read(last)
        assert b.last_id - last == len(b.entries) + b.lost + b.abandoned
        for e in b.entries:
            writer, seq = check_channel_entry(e.data, 64)
            assert seq >= next_seq.get(writer, 0)
            next_seq[writer] = seq + 1
        read += len(b.entries)
        lost += b.lost
        last = b.last_id
    return read, lost


def test_python_and_rust_writers_one_python_reader(tmp_path: Path, peer_bin: Path) -> None:
    path = tmp_path / "mixed"
    ch = tachyon.Channel("mixed", tmp_path)
    procs = [_python_writer(path, w, 20_000) for w in (1, 2)]
    rust = subprocess.Popen(
        [str(peer_bin), "channel-write", "--path", str(path), "--count", "20000", "--seed", "3", "--max-size", "64"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    read, lost = _read_all(ch, 60_000)
    for p in procs + [rust]:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    assert read + lost == 60_000
    assert ch.read(0, max_entries=10**6).last_id == 60_000


def test_a_rust_reader_checks_what_python_wrote(tmp_path: Path, peer_bin: Path) -> None:
    path = tmp_path / "to-rust"
    reader = subprocess.Popen(
        [str(peer_bin), "channel-read", "--path", str(path), "--count", "30000", "--max-size", "64", "--timeout-ms", "20000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
    ch = tachyon.Channel("to-rust", tmp_path)
    for seq in range(30_000):
        ch.write(channel_entry(9, seq, 64))
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, out + err
    assert "abandoned 0" in out, out


def test_a_killed_rust_writer_leaves_an_abandoned_entry_not_a_wedge(tmp_path: Path, peer_bin: Path) -> None:
    path = tmp_path / "killed"
    stuck = subprocess.Popen([str(peer_bin), "channel-hang", "--path", str(path), "--count", "3"], stdout=subprocess.PIPE, text=True)
    assert stuck.stdout is not None and stuck.stdout.readline().startswith("stuck")
    stuck.kill()
    stuck.wait()
    ch = tachyon.Channel("killed", tmp_path)
    assert ch.write(b"after") == 5
    r = ch.read(0)
    assert [e.data for e in r.entries] == [b"before 0", b"before 1", b"before 2", b"after"]
    assert (r.abandoned, r.lost, r.last_id) == (1, 0, 5)
