"""The packages install by their ecosystems' own tools, and work from somewhere else.

- Python: the manylinux wheel maturin builds (zig for the portable glibc tag; `make py`
  builds it once and installs it for every suite, `TACHYON_WHEEL` names it), checked by
  `auditwheel show`, installed into a fresh venv, and used across two processes; the
  sdist carries README, LICENSE and the metadata.
- Node: `npm pack` of the package as `make node` built it (the addon is packed, not built
  again: `--ignore-scripts` skips `prepare`), the tarball installed into an empty
  project, then `require` and `import` of it there, each with a real round trip.
- Both: the `tachyon` command from the installed package (`python -m tachyon`, the
  `tachyon` script, `npx tachyon`).
"""

from __future__ import annotations

import json
import os
import tempfile
import shutil
import subprocess
import sys
import tarfile
import textwrap
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
NODE_DIR = ROOT / "tachyon-node"


def _run(cmd: list[str], cwd: Path | None = None, timeout: float = 900, env: dict | None = None) -> str:
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert p.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{p.stdout}\n{p.stderr}"
    return p.stdout + p.stderr


def _need(tool: str) -> str:
    found = shutil.which(tool, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        msg = f"{tool} not found; `make venv` installs it (requirements-dev.txt)"
        if os.environ.get("TACHYON_REQUIRE_PEERS") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    built = os.environ.get("TACHYON_WHEEL")
    if built:
        return Path(built)
    maturin = _need("maturin")
    _need("python-zig")
    out = tmp_path_factory.mktemp("wheels")
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", CARGO_BUILD_JOBS="2")
    env.pop("VIRTUAL_ENV", None)
    _run(
        [maturin, "build", "--release", "--zig", "--compatibility", "manylinux_2_28",
         "-m", str(ROOT / "tachyon-py" / "Cargo.toml"), "-o", str(out)],
        env=env,
    )
    (built,) = out.glob("*.whl")
    return built


def test_the_wheel_has_a_portable_manylinux_tag(wheel: Path) -> None:
    assert wheel.name.startswith("tachyon_rpc-") and "manylinux_2_28_x86_64" in wheel.name
    report = _run([_need("auditwheel"), "show", str(wheel)])
    assert 'consistent\nwith the following platform tag: "manylinux_2_28_x86_64"' in report, report


def test_the_wheel_installs_into_a_fresh_venv_and_works_across_processes(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)])
    # Ten times: a process exiting right after its bus connected once crashed (its
    # event-logging thread met the interpreter's finalization) in 15 of 40 runs.
    for _ in range(10):
        sock = f"{tempfile.gettempdir()}/pkg-{uuid.uuid4().hex[:10]}.sock"
        consumer = subprocess.Popen(
            [str(py), "-c", textwrap.dedent(f"""
                import tachyon
                with tachyon.Bus.listen({sock!r}, 1 << 16, timeout=30) as bus:
                    print([(m.type_id, m.data) for m in bus])
            """)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        )
        producer = _run([str(py), "-c", textwrap.dedent(f"""
            import time, tachyon
            assert "site-packages" in tachyon.__file__, tachyon.__file__
            deadline = time.monotonic() + 30
            while True:
                try:
                    bus = tachyon.Bus.connect({sock!r}); break
                except tachyon.TachyonConnectionError:
                    assert time.monotonic() < deadline; time.sleep(0.01)
            with bus:
                for i in range(3):
                    bus.send(b"pkg%d" % i, type_id=i)
            print(tachyon.__version__)
        """)], cwd=tmp_path)
        out, err = consumer.communicate(timeout=60)
        assert consumer.returncode == 0, err
        assert out.strip() == "[(0, b'pkg0'), (1, b'pkg1'), (2, b'pkg2')]"
        assert producer.strip() == "0.1.0"
    # The `tachyon` command ships in the wheel: `python -m tachyon` and the script.
    for cmd in ([str(py), "-m", "tachyon"], [str(venv / "bin" / "tachyon")]):
        report = json.loads(_run([*cmd, "doctor", "--json"], cwd=tmp_path))
        assert report["ok"] is True and any(c["name"] == "io_uring" for c in report["checks"])


def test_the_sdist_carries_readme_license_and_metadata(tmp_path: Path) -> None:
    maturin = _need("maturin")
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    _run([maturin, "sdist", "-m", str(ROOT / "tachyon-py" / "Cargo.toml"), "-o", str(tmp_path)], env=env)
    (sdist,) = tmp_path.glob("tachyon_rpc-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
        pkg_info = next(n for n in names if n.endswith("/PKG-INFO"))
        meta = tar.extractfile(pkg_info).read().decode()  # type: ignore[union-attr]
    assert any(n.endswith("/README.md") for n in names), names
    assert any(n.endswith("/LICENSE") for n in names), names
    for field in ("Name: tachyon-rpc", "Summary: ", "License-Expression: Apache-2.0", "Project-URL: Repository",
                  "Classifier: Operating System :: POSIX :: Linux", "Requires-Python: >=3.11"):
        assert field in meta, f"{field!r} missing from PKG-INFO:\n{meta}"


def test_license_copies_match_the_root() -> None:
    root = (ROOT / "LICENSE").read_bytes()
    assert (ROOT / "tachyon-py" / "LICENSE").read_bytes() == root
    assert (ROOT / "tachyon-node" / "LICENSE").read_bytes() == root


@pytest.fixture(scope="module")
def npm_tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    npm = _need("npm")
    out = tmp_path_factory.mktemp("npm")
    env = dict(os.environ, CARGO_BUILD_JOBS="2")
    # The addon `make node` built is packed as it is (`prepare` would build it again).
    assert list(NODE_DIR.glob("tachyon.*.node")), "no addon: `make node` builds it"
    _run([npm, "pack", "--ignore-scripts", "--pack-destination", str(out), "--loglevel=error"], cwd=NODE_DIR, env=env)
    (tgz,) = out.glob("tachyon-rpc-*.tgz")
    return tgz


def test_npm_pack_ships_the_addon(npm_tarball: Path) -> None:
    with tarfile.open(npm_tarball) as tar:
        names = set(tar.getnames())
    for f in ("tachyon.linux-x64-gnu.node", "native.js", "index.js", "index.mjs", "index.d.ts",
              "lib/bus.js", "README.md", "LICENSE", "package.json"):
        assert f"package/{f}" in names, f"{f} missing from the tarball: {sorted(names)}"
    assert not any("/test/" in n or "/src/" in n for n in names), "tests and sources stay out"


def test_the_npm_tarball_installs_and_works_with_require_and_import(npm_tarball: Path, tmp_path: Path) -> None:
    npm = _need("npm")
    node = _need("node")
    project = tmp_path / "app"
    project.mkdir()
    (project / "package.json").write_text(json.dumps({"name": "app", "private": True}))
    _run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error", str(npm_tarball)], cwd=project)
    sock = f"{tempfile.gettempdir()}/pkg-{uuid.uuid4().hex[:10]}.sock"
    round_trip = textwrap.dedent(f"""
        const server = createRpcServer({{ socketPath: {json.dumps(sock)}, handlers: {{ 1: (d) => `pong:${{d}}` }} }});
        const rpc = RpcBus.connect(server.socketPath);
        console.log((await rpc.callAsync('ping', 1, {{ timeoutMs: 5000 }})).toString());
        rpc.close();
        await server.close();
    """)
    cjs = "const { createRpcServer, RpcBus } = require('tachyon-rpc');\n(async () => {" + round_trip + "})();"
    assert _run([node, "-e", cjs], cwd=project).strip() == "pong:ping"
    esm = "import { createRpcServer, RpcBus } from 'tachyon-rpc';\n" + round_trip
    assert _run([node, "--input-type=module", "-e", esm], cwd=project).strip() == "pong:ping"
    resolved = _run([node, "-p", "require.resolve('tachyon-rpc')"], cwd=project).strip()
    assert resolved.startswith(str(project)), resolved
    # `npx tachyon` runs the command from the installed package's bin.
    npx = _need("npx")
    report = json.loads(_run([npx, "--no-install", "tachyon", "doctor", "--json"], cwd=project))
    assert report["ok"] is True and any(c["name"] == "io_uring" for c in report["checks"])
