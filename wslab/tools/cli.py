"""The ``wslab`` command (also ``python -m wslab``).

    wslab serve [--host H] [--port P] [--passcode X]   serve the complete chat app to a room of learners
                [--broker redis://HOST:PORT/DB]        ... as one of several processes sharing rooms
                [--class]                              ... with the live classroom at /class
    wslab doctor                                       check that this machine can run the workbook
    wslab student [--check]                            make the student copies of the chapters
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import ipaddress
import os
import socket
import sys
import threading
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "share_url"]

PASSCODE_ENV = "WSLAB_PASSCODE"
SECRET_ENV = "WSLAB_SECRET"
BROKER_ENV = "WSLAB_BROKER"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wslab", description="The wslab workbook: real-time web programming with FastAPI WebSockets.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve", help="serve the complete chat app (for a room of learners: --host 0.0.0.0)",
        description="Serve the complete chat app: the chat page at /, POST /token, WS /ws/chat/{room}. "
                    "By default only this machine can reach it; to let a room of learners join, listen "
                    "on every interface with --host 0.0.0.0 and set a passcode.",
        epilog=f"The passcode can also come from ${PASSCODE_ENV}, the token secret (at least 32 "
               f"bytes; random if unset) from ${SECRET_ENV}, and the broker from ${BROKER_ENV}. A line typed "
               "into this terminal is announced to everyone. Stop the server with Ctrl+C.")
    serve.add_argument("--host", default="127.0.0.1",
                       help="the address to listen on (default 127.0.0.1, this machine only; "
                            "0.0.0.0 for everyone on the network)")
    serve.add_argument("--port", type=_port, default=8000,
                       help="the port to listen on (default 8000; 0 picks a free one)")
    serve.add_argument("--passcode", type=_passcode, default=os.environ.get(PASSCODE_ENV) or None,
                       help="a word every learner must give to log in (default: none)")
    serve.add_argument("--broker", metavar="URL", default=os.environ.get(BROKER_ENV) or None,
                       help="share rooms with every other server using this Redis, for example "
                            f"redis://127.0.0.1:6379/0 (give them all the same ${SECRET_ENV}); "
                            "default: rooms in this process only")
    serve.add_argument("--class", dest="classroom", action="store_true",
                       help="also run the live classroom: learners join from chapter 00, and the page it "
                            "prints (/class) shows everyone's progress live")
    doctor = commands.add_parser("doctor", help="check that this machine can run the workbook",
                                 description="Check Python, the packages, and that a server starts here, "
                                             "serves a page and answers a WebSocket client.")
    doctor.add_argument("--versions", action="store_true", help="also show the installed versions")
    student = commands.add_parser(
        "student", help="make the student copies of the chapters (answers left out)",
        description="Write the student copy of every chapter: each exercise answer becomes a stub, cells "
                    "tagged 'instructor' are left out, outputs are cleared.")
    student.add_argument("--chapters", type=Path, default=Path("notebooks"),
                         help="the folder of chapter notebooks (default: notebooks)")
    student.add_argument("--out", type=Path, help="where the copies go (default: CHAPTERS/student)")
    student.add_argument("--check", action="store_true",
                         help="write nothing; exit 1 if a copy is missing or differs from its chapter")
    return parser


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number: use 1 to 65535") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number: use 1 to 65535")
    return port


def _passcode(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("it is empty: give a word, or leave the option out for no passcode")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve_room(args.host, args.port, args.passcode, args.broker, classroom=args.classroom)
    if args.command == "doctor":
        from .doctor import diagnose

        diagnosis = diagnose(versions=args.versions)
        print(diagnosis)
        return 0 if diagnosis.ok else 1
    if args.command == "student":
        return make_student_copies(args.chapters, args.out or args.chapters / "student", check=args.check)
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse refuses unknown commands


def serve_room(host: str, port: int, passcode: str | None, broker: str | None = None, *,
               classroom: bool = False) -> int:
    """Serve the complete app on ``host``:``port`` until Ctrl+C; return the exit status. ``broker``: a
    Redis URL to share rooms with other servers (:func:`wslab.reference.broker.base.broker_from_url`).
    ``classroom``: add the live classroom (:mod:`wslab.reference.classroom`). Each line typed on stdin is
    announced to everyone (every chat room and, with the classroom, every learner's notebook)."""
    import uvicorn

    from wslab.reference.app import create_app  # imported here: `wslab doctor` need not load the app
    from wslab.reference.broker import broker_from_url, log_to_stderr, redacted
    from wslab.reference.classroom import class_app
    from wslab.reference.manager import MAX_FRAME
    from wslab.reference.wsprotocol import WebSocketProtocol

    try:
        sock = _listen(host, port)
    except OSError as exc:
        print(f"wslab serve: cannot listen on {host} port {port}: {_why(exc, port)}", file=sys.stderr)
        return 1
    try:
        shared = broker_from_url(broker)
    except ValueError as exc:
        sock.close()
        print(f"wslab serve: --broker: {exc}", file=sys.stderr)
        return 1
    try:
        make = class_app if classroom else create_app
        app = make(passcode=passcode, secret=os.environ.get(SECRET_ENV) or None, broker=shared)
    except ValueError as exc:  # a secret that is too short
        sock.close()
        print(f"wslab serve: ${SECRET_ENV}: {exc}", file=sys.stderr)
        return 1
    log_to_stderr()  # who was closed or refused and why, and the broker's lines
    # ws_max_size: a frame over the reference service's limit is refused (1009) before it is buffered.
    config = uvicorn.Config(app, ws=WebSocketProtocol, ws_max_size=MAX_FRAME, log_level="info",
                            timeout_graceful_shutdown=2)
    url = share_url(host, sock.getsockname()[1])
    print(f"wslab: the chat app is at {url}", flush=True)
    if not _loopback(host):
        print("       share that address with the room; everyone must be on this network.", flush=True)
        if passcode is None:
            print("       No passcode: anyone who can reach this machine can join. Add --passcode WORD.",
                  flush=True)
    else:
        print("       only this machine can reach it; for a room of learners use --host 0.0.0.0", flush=True)
    if passcode is not None:
        print("       learners log in with the passcode you chose.", flush=True)
    if shared.shared and broker is not None:
        print(f"       rooms are shared with every server using Redis at {redacted(broker)}", flush=True)
        if not os.environ.get(SECRET_ENV):
            print(f"       give them all the same ${SECRET_ENV}: a token from one is refused by the others",
                  flush=True)
    if classroom:
        key = app.state.classroom.instructor_token()
        print(f"wslab: the class's page is at {url}class#key={key}", flush=True)
        print("       keep that address to yourself: it lets its holder speak to the room. Learners join "
              "from chapter 00 with the address above.", flush=True)
        if not os.environ.get(SECRET_ENV):
            print(f"       set ${SECRET_ENV} to keep that address valid when you restart the server.",
                  flush=True)
        say = app.state.classroom.say
    else:
        say = app.state.rooms.announce
    print("       type a line here and press Enter to announce it to everyone; stop with Ctrl+C.", flush=True)

    async def run() -> None:
        threading.Thread(target=_announce_lines, args=(asyncio.get_running_loop(), say), daemon=True,
                         name="wslab-announce").start()
        await uvicorn.Server(config).serve(sockets=[sock])

    with contextlib.suppress(KeyboardInterrupt):  # uvicorn shuts down cleanly, then passes Ctrl+C on
        asyncio.run(run())
    print("wslab: stopped.", flush=True)
    return 0


def _announce_lines(loop: asyncio.AbstractEventLoop, say: Callable[[str], Coroutine[Any, Any, int]]) -> None:
    """Announce each line typed on stdin (on the server's loop), until stdin ends."""
    for line in sys.stdin:
        text = line.strip()
        if not text:
            continue
        try:
            count = asyncio.run_coroutine_threadsafe(say(text[:2000]), loop).result(timeout=5)
        except (RuntimeError, TimeoutError, ValueError) as exc:  # the server is stopping
            print(f"wslab: not announced: {exc}", file=sys.stderr, flush=True)
            return
        print(f"wslab: announced to {count} connection{'s' if count != 1 else ''}.", flush=True)


def make_student_copies(chapters: Path, out: Path, *, check: bool) -> int:
    """Write (or with ``check``, compare) the student copies; return the exit status."""
    from .student import student_copies  # imported here: nbformat is only needed for this command

    try:
        found = student_copies(chapters, out, write=not check)
    except (FileNotFoundError, ValueError) as exc:
        print(f"wslab student: {exc}", file=sys.stderr)
        return 1
    if check:
        for path in found.changed:
            print(f"wslab student: {path} is missing or differs from its chapter")
        for path in found.stray:
            print(f"wslab student: {path} matches no chapter")
        if not found.up_to_date:
            print(f"wslab student: run `wslab student` to make them again, then commit {out}")
            return 1
        print(f"wslab student: the student copies in {out} match their chapters")
        return 0
    for path in found.changed:
        print(f"wslab student: wrote {path}")
    for path in found.stray:
        print(f"wslab student: removed {path} (no such chapter)")
    if found.up_to_date:
        print(f"wslab student: the student copies in {out} were already up to date")
    return 0


def share_url(host: str, port: int) -> str:
    """The address to give learners: this machine's network address when listening on every interface."""
    if host in ("0.0.0.0", "::", ""):
        host = _network_address() or "THIS-MACHINES-ADDRESS"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def _listen(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def _why(exc: OSError, port: int) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"another program is using that port. Stop it, or pick another port: --port {port + 1}"
    if exc.errno == errno.EACCES:
        return "not allowed (ports below 1024 need root): use a port such as 8000"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "this machine has no such address: use 127.0.0.1, or 0.0.0.0 for every interface"
    if isinstance(exc, socket.gaierror):
        return f"the host name does not resolve ({exc.strerror})"
    return str(exc)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _network_address() -> str | None:
    """This machine's first non-loopback IPv4 address, from its own name (sends nothing)."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return None
    addresses = [str(info[4][0]) for info in infos]
    return next((a for a in addresses if not ipaddress.ip_address(a).is_loopback), None)
