"""The ``wslab`` command (also ``python -m wslab``).

    wslab doctor              check that this machine can run the workbook
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .doctor import diagnose

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wslab", description="The wslab workbook: real-time web programming with FastAPI WebSockets.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    doctor = commands.add_parser("doctor", help="check that this machine can run the workbook",
                                 description="Check Python, the packages, and that a server starts here, "
                                             "serves a page and answers a WebSocket client.")
    doctor.add_argument("--versions", action="store_true", help="also show the installed versions")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "doctor":
        diagnosis = diagnose(versions=args.versions)
        print(diagnosis)
        return 0 if diagnosis.ok else 1
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse refuses unknown commands
