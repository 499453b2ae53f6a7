"""The ``superion`` command line.

Each sub-module of :mod:`superion.cli` owns one group of commands and exposes
``register(subparsers)``; heavy libraries (torch, matgl, pymatgen) are imported inside the
command functions so that ``superion --help`` and input errors answer in well under a second.
Every command function takes the parsed ``argparse.Namespace`` and returns an exit code
(or ``None`` for 0). User errors are raised as :class:`superion.errors.SuperionError` and
printed as one line.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from superion import __version__
from superion.errors import SuperionError

# Command groups, in the order they appear in ``superion --help``.
_GROUPS = ("potential", "structure", "build", "md", "analyze", "workflow", "page")


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors (a missing option, ``--steps ten``) are one line, like every
    other user error, instead of the usage block; exit status 2 as argparse's."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        print(f"{self.prog}: error: {' '.join(message.split())} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="superion",
        description="M3GNet molecular dynamics of superionic conductors: structures, MD, analysis.",
    )
    parser.add_argument("--version", action="version", version=f"superion {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _GROUPS:
        try:
            module = importlib.import_module(f"superion.cli.{name}")
        except ModuleNotFoundError as exc:  # a group not written yet must not break the others
            if exc.name == f"superion.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        code = func(args)
    except SuperionError as exc:
        print(f"superion: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("superion: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # the file system said no (a folder that is a file, no space, no permission)
        if os.environ.get("SUPERION_DEBUG"):
            traceback.print_exc()
        where = f": {exc.filename}" if exc.filename else ""
        print(f"superion: error: {exc.strerror or exc}{where}; check the paths, permissions and free space",
              file=sys.stderr)
        return 2
    except Exception as exc:  # last resort: one line unless debugging
        if os.environ.get("SUPERION_DEBUG"):
            traceback.print_exc()
        else:
            print(
                f"superion: internal error: {type(exc).__name__}: {exc} "
                "(rerun with SUPERION_DEBUG=1 for the traceback and report it)",
                file=sys.stderr,
            )
        return 1
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
