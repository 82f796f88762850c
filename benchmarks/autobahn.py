"""Protocol conformance from outside: the Autobahn|Testsuite's fuzzing client against wslab's server.

    python3 run.py python benchmarks/autobahn.py [--cases 1.*,2.*] [--cache DIR] [--python2 PATH]

The same echo app (every text and binary message sent back as it came) is served three ways, each on a
free loopback port in this process: ``wslab.serve`` (uvicorn with
``wslab.reference.wsprotocol.WebSocketProtocol`` and ``ws_max_size`` at the reference service's frame limit),
stock uvicorn (``ws="websockets-sansio"``, its defaults), and a bare ``websockets`` server. The suite's
fuzzing client then runs cases 1 to 7 and 10 (247 cases: framing, pings, reserved bits, opcodes,
fragmentation, UTF-8, closing, auto-fragmentation) against each and this prints, per server, how many cases
ended OK, NON-STRICT, INFORMATIONAL, UNIMPLEMENTED or FAILED, and which did not end OK.

The suite is Python 2.7 code (PyPI ``autobahntestsuite``). It is installed once, with that Python's pip,
into ``--cache`` (default ``$WSLAB_AUTOBAHN_CACHE`` or ``~/.cache/wslab-autobahn``), outside the
repository; the reports of the last run are kept there too (``reports/index.html``). A Python 2.7 is
looked for as ``--python2``, then ``python2.7`` on PATH, then in pyenv's versions. This is a benchmark,
not a test: the suite does not run on the Pythons wslab supports.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from starlette.types import Receive, Scope, Send

CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*"]  # not 9 (speed), 12 and 13 (compression)
SUITE = "autobahntestsuite"  # the PyPI name of the Autobahn|Testsuite, whose last release runs on Python 2.7
RUN_WITHIN = 1800.0  # seconds the fuzzing client may take for all servers before it is stopped
START_WITHIN = 10.0  # seconds a server may take to listen
BEHAVIOURS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
WSTEST = "import sys; from autobahntestsuite.wstest import run; sys.argv[0] = 'wstest'; sys.exit(run())"


# -- the suite ---------------------------------------------------------------------------------------
def find_python2(wanted: str | None) -> str:
    """A Python 2.7 that runs: ``wanted``, else ``python2.7`` on PATH, else the newest in pyenv's versions.
    (A pyenv shim on PATH may be there and still refuse to run when 2.7 is not the selected version.)"""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    pyenv = [str(path) for path in sorted(root.glob("2.7*/bin/python2.7"), reverse=True)]
    candidates = [wanted] if wanted else [shutil.which("python2.7"), *pyenv]
    for candidate in filter(None, candidates):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            if subprocess.run([candidate, "-c", "import sys; assert sys.version_info[:2] == (2, 7)"],
                              capture_output=True, timeout=30).returncode == 0:
                return candidate
    sys.exit(f"autobahn: no Python 2.7 that runs was found ({wanted or 'python2.7 on PATH, pyenv'}); the "
             "suite needs one: install it (pyenv install 2.7.18) or pass --python2 PATH")


def install_suite(python2: str, cache: Path) -> Path:
    """The directory the suite is installed in (under ``cache``), installing it first if it is not there."""
    target = cache / "suite"
    if not (target / SUITE / "wstest.py").is_file():
        print(f"autobahn: installing {SUITE} into {target} with {python2} (once)", flush=True)
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([python2, "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
                        "--upgrade", "--target", str(target), SUITE], check=True)
    # zope.interface is installed as a namespace package through a .pth file, which --target directories
    # do not read: an empty zope/__init__.py makes "import zope.interface" work from PYTHONPATH.
    (target / "zope" / "__init__.py").touch()
    return target


def run_suite(python2: str, suite: Path, servers: dict[str, str], cases: list[str],
              reports: Path) -> dict[str, dict[str, Any]]:
    """Run the fuzzing client against ``servers`` (agent name → URL); return index.json's results by agent."""
    shutil.rmtree(reports, ignore_errors=True)
    reports.mkdir(parents=True)
    spec = {"outdir": str(reports), "cases": cases, "exclude-cases": [], "exclude-agent-cases": {},
            "servers": [{"agent": agent, "url": url} for agent, url in servers.items()]}
    spec_path = reports / "fuzzingclient.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    environment = {**os.environ, "PYTHONPATH": str(suite)}
    with open(reports / "wstest.log", "w") as log:
        subprocess.run([python2, "-c", WSTEST, "--mode", "fuzzingclient", "--spec", str(spec_path)],
                       cwd=reports, env=environment, stdout=log, stderr=subprocess.STDOUT, check=True,
                       timeout=RUN_WITHIN)
    results: dict[str, dict[str, Any]] = json.loads((reports / "index.json").read_text())
    return results


# -- the servers -------------------------------------------------------------------------------------
async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """A plain ASGI app: accept, then send back every message as it came, until the client leaves."""
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


@contextlib.contextmanager
def stock_uvicorn() -> Iterator[str]:
    """Stock uvicorn (websockets-sansio, its defaults) serving :func:`echo` on a free port; yields the URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(echo, ws="websockets-sansio", lifespan="off", log_config=None))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_WITHIN
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)  # polling uvicorn's own flag, bounded by the deadline
    if not server.started:
        raise RuntimeError("stock uvicorn did not start listening")
    try:
        yield f"ws://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


@contextlib.contextmanager
def bare_websockets() -> Iterator[str]:
    """A ``websockets`` server (its defaults) echoing every message, in a thread; yields the URL."""
    from websockets.sync.server import ServerConnection, serve

    def handler(connection: ServerConnection) -> None:
        for message in connection:
            connection.send(message)

    with serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
        finally:
            server.shutdown()
            thread.join(5)


@contextlib.contextmanager
def wslab_serve(errors: list[str]) -> Iterator[str]:
    """``wslab.serve`` serving :func:`echo`; yields the URL, then adds its ERROR lines to ``errors``."""
    import wslab

    with wslab.serve(echo, name="autobahn") as server:
        yield server.ws_url("/")
    errors += [line for line in server.log.lines("ERROR") if not line.startswith(" ")]


# -- the report --------------------------------------------------------------------------------------
def case_order(case: str) -> list[int]:
    return [int(part) for part in case.split(".")]


def report(agent: str, runs: list[dict[str, Any]]) -> list[str]:
    """One line of counts per run, then the cases of each verdict other than OK (with how many runs gave
    it, where that is not all of them), in the suite's order."""
    lines = []
    for number, results in enumerate(runs, 1):
        counts = Counter(result["behavior"] for result in results.values())
        lines.append(f"{agent if number == 1 else '':>26}  run {number}: {sum(counts.values())} cases, "
                     + ", ".join(f"{counts[b]} {b}" for b in BEHAVIOURS if counts[b]))
    for behaviour in BEHAVIOURS[1:]:
        seen = Counter(case for results in runs for case, result in results.items()
                       if result["behavior"] == behaviour)
        if seen:
            cases = [case if seen[case] == len(runs) else f"{case} ({seen[case]} of {len(runs)})"
                     for case in sorted(seen, key=case_order)]
            lines.append(f"{'':>28}{behaviour}: {', '.join(cases)}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="case patterns, with commas (%(default)s)")
    default_cache = os.environ.get("WSLAB_AUTOBAHN_CACHE") or str(Path.home() / ".cache" / "wslab-autobahn")
    parser.add_argument("--cache", type=Path, default=Path(default_cache),
                        help="where the suite is installed and the reports go (default: %(default)s)")
    parser.add_argument("--python2", help="a Python 2.7 (default: python2.7 on PATH, else pyenv's)")
    parser.add_argument("--runs", type=int, default=1,
                        help="run the cases this many times: a few NON-STRICT verdicts depend on timing")
    options = parser.parse_args()
    python2 = find_python2(options.python2)
    suite = install_suite(python2, options.cache)
    cases = [case.strip() for case in options.cases.split(",") if case.strip()]
    reports = options.cache / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    # The servers' own lines (tracebacks for the invalid input the suite sends) go to a file, not here.
    logging.basicConfig(filename=options.cache / "servers.log", filemode="w", level=logging.WARNING)
    errors: list[str] = []
    runs: list[dict[str, dict[str, Any]]] = []
    began = time.monotonic()
    with wslab_serve(errors) as wslab_url, stock_uvicorn() as uvicorn_url, bare_websockets() as bare_url:
        servers = {"wslab.serve": wslab_url, "uvicorn websockets-sansio": uvicorn_url, "websockets": bare_url}
        for _ in range(options.runs):
            runs.append(run_suite(python2, suite, servers, cases, reports))
    print(f"Autobahn fuzzingclient, cases {','.join(cases)}, {options.runs} run(s) in "
          f"{time.monotonic() - began:.0f} s; the last run's reports are in {reports}")
    for agent in servers:
        print("\n".join(report(agent, [results[agent] for results in runs])))
    print(f"wslab.serve logged {len(errors)} ERROR line(s)"
          + (f", most often {Counter(errors).most_common(1)[0][0]!r}" if errors else ""))


if __name__ == "__main__":
    main()
