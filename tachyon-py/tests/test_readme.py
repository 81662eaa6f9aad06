"""Every Python snippet of the README runs as written: a snippet marked `# process A` /
`# process B` runs as two processes (B connecting once A listens), with its socket path
made unique; any other runs as one process."""

from __future__ import annotations

import tempfile

import re
import subprocess
import sys
import uuid

import pytest

from helpers import ROOT

BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def split(block: str) -> tuple[str, str]:
    """Process A is everything before the first line marked `# process B`."""
    lines = block.splitlines()
    cut = next(i for i, line in enumerate(lines) if "# process B" in line)
    header = [line for line in lines[: next(i for i, l in enumerate(lines) if "# process A" in l)]]
    return "\n".join(lines[:cut]), "\n".join(header + lines[cut:])


def with_retry(code: str) -> str:
    """B may start before A listens: retry its connects (tachyon's connect fails at once)."""
    return (
        "import time, tachyon\n"
        "for _cls in (tachyon.Bus, tachyon.RpcBus):\n"
        "    def _retry(path, _orig=_cls.connect):\n"
        "        deadline = time.monotonic() + 20\n"
        "        while True:\n"
        "            try:\n"
        "                return _orig(path)\n"
        "            except OSError:\n"
        "                if time.monotonic() > deadline: raise\n"
        "                time.sleep(0.01)\n"
        "    _cls.connect = staticmethod(_retry)\n"
    ) + code


@pytest.mark.parametrize("block", BLOCKS, ids=[f"snippet{i}" for i in range(len(BLOCKS))])
def test_readme_snippet(block):
    if "# process A" not in block:
        # A single-process snippet.
        r = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout, "a snippet prints what it did"
        return
    assert "# process B" in block
    for path in set(re.findall(r'"(/tmp/[\w.]+\.sock)"', block)):
        block = block.replace(path, f"{tempfile.gettempdir()}/readme-{uuid.uuid4().hex[:10]}.sock")
    a, b = split(block)
    pa = subprocess.Popen([sys.executable, "-c", a], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pb = subprocess.Popen([sys.executable, "-c", with_retry(b)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out_b, err_b = pb.communicate(timeout=60)
    out_a, err_a = pa.communicate(timeout=60)
    assert pb.returncode == 0, err_b
    assert pa.returncode == 0, err_a
    assert out_a or out_b, "a snippet prints what it did"
