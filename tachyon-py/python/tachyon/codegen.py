"""``python -m tachyon.codegen schemas/ -o pkg/``: typed Python modules from the schemas.

Writes one ``<package>.py`` per ``schemas/*.tachyon`` (plain modules, meant to be checked
in; they need ``msgspec``). ``--check`` writes nothing and fails when a checked-in module
differs from what the schemas generate. ``--lang typescript`` writes the TypeScript
modules instead (as ``npx tachyon-codegen`` does). A bad schema prints each error with
its file, line and column, and exits with status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence, Union

from . import _tachyon


def generate(
    schema_dir: Union[str, Path], out_dir: Union[str, Path], *, lang: str = "python", check: bool = False
) -> list[Path]:
    """Generates the modules of every schema in ``schema_dir`` into ``out_dir`` and returns
    the paths written (with ``check``: the paths that are out of date, writing nothing).

    :raises ValueError: a schema is invalid (the message locates each error).
    """
    out = Path(out_dir)
    changed: list[Path] = []
    for name, text in _tachyon.codegen(str(schema_dir), lang):
        path = out / name
        try:
            same = path.read_text(encoding="utf-8") == text
        except FileNotFoundError:
            same = False
        if same:
            continue
        changed.append(path)
        if not check:
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    return changed


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m tachyon.codegen", description="Typed Python (or TypeScript) modules from schemas/*.tachyon."
    )
    parser.add_argument("schemas", help="the schema directory (schemas/)")
    parser.add_argument("-o", "--out", required=True, help="where the generated modules go")
    parser.add_argument("--lang", default="python", choices=["python", "typescript"])
    parser.add_argument("--check", action="store_true", help="write nothing; fail if a module is out of date")
    args = parser.parse_args(argv)
    try:
        paths = generate(args.schemas, args.out, lang=args.lang, check=args.check)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 1
    if args.check:
        for p in paths:
            print(f"out of date: {p}", file=sys.stderr)
        return 1 if paths else 0
    for p in paths:
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
