import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from rawclient import refusal_of_an_oversized_frame

import wslab
from wslab import Transcript
from wslab.reference.manager import MAX_FRAME
from wslab.tools.cli import main, share_url


def test_doctor_prints_one_line_per_check_and_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "✔ an in-kernel server starts and a client connects" in out


def test_an_unknown_command_is_a_clear_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve-the-moon"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'serve-the-moon'" in capsys.readouterr().err


def test_python_dash_m_wslab_runs_the_command() -> None:
    result = subprocess.run([sys.executable, "-m", "wslab", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "doctor" in result.stdout


def _serve(*options: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "wslab", "serve", *options], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_wslab_serve_prints_the_address_serves_the_app_and_stops_on_ctrl_c() -> None:
    process = _serve("--port", "0", "--passcode", "owl")
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # printed before the server starts listening
        assert first.startswith("wslab: the chat app is at http://127.0.0.1:"), first
        url = first.split(" at ")[1].strip()
        rest = [process.stdout.readline() for _ in range(3)]
        assert "only this machine can reach it" in rest[0]
        assert "learners log in with the passcode you chose." in rest[1]
        for _ in range(100):  # bounded: the socket is bound, uvicorn starts answering within moments
            try:
                status = httpx.get(url + "status", timeout=1).json()
                break
            except httpx.TransportError:
                time.sleep(0.05)  # polling a process we started, not synchronising two threads
        assert status == {"passcode_required": True, "rooms": []}
        token = httpx.post(url + "token", json={"username": "ada", "passcode": "owl"}).json()["access_token"]

        async def chat() -> object:
            async with wslab.connect(url.replace("http", "ws") + "ws/chat/lobby",
                                     transcript=Transcript(live=False)) as ada:
                await ada.send({"type": "auth", "token": token})
                return await ada.recv_json()

        assert wslab.run_sync(chat()) == {"type": "join", "user": "ada", "users": ["ada"], "version": 1}
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "Finished server process" in err and token not in err


def test_wslab_serve_refuses_a_frame_announced_over_the_frame_limit_from_its_header() -> None:
    process = _serve("--port", "0")
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline().split("http://127.0.0.1:")[1].split("/")[0])
        for _ in range(100):  # bounded: the socket is bound, uvicorn starts answering within moments
            with contextlib.suppress(ConnectionError):
                refusal = refusal_of_an_oversized_frame(port, "/ws/chat/lobby")
                break
            time.sleep(0.05)  # polling a process we started, not synchronising two threads
        assert refusal is not None, "no close frame: the server is still buffering the frame"
        assert refusal[0] == 1009 and f"limit of {MAX_FRAME} bytes" in refusal[1], refusal
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)


def test_wslab_serve_on_a_taken_port_says_what_to_do() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "wslab", "serve", "--port", str(port)],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"wslab serve: cannot listen on 127.0.0.1 port {port}: another "
                                     f"program is using that port. Stop it, or pick another port: "
                                     f"--port {port + 1}")


@pytest.mark.parametrize(("options", "message"), [
    (["--port", "http"], "argument --port: 'http' is not a port number: use 1 to 65535"),
    (["--port", "70000"], "argument --port: 70000 is not a port number: use 1 to 65535"),
    (["--passcode", " "], "argument --passcode: it is empty: give a word, or leave the option out"),
    (["--colour", "red"], "unrecognized arguments: --colour red"),
])
def test_bad_serve_options_are_clear_usage_errors(options: list[str], message: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", *options])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_short_secret_from_the_environment_is_a_clear_error() -> None:
    env = {**os.environ, "WSLAB_SECRET": "short"}
    result = subprocess.run([sys.executable, "-m", "wslab", "serve", "--port", "0"], capture_output=True,
                            text=True, timeout=60, env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("wslab serve: $WSLAB_SECRET: the secret is 5 bytes; HS256 needs at "
                                    "least 32.")


def test_serve_help_explains_host_port_and_passcode(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for words in ("--host HOST", "0.0.0.0 for everyone on the network", "--port PORT", "--passcode",
                  "$WSLAB_PASSCODE", "Ctrl+C"):
        assert words in out


@pytest.mark.parametrize(("host", "expected"), [
    ("127.0.0.1", "http://127.0.0.1:8000/"),
    ("::1", "http://[::1]:8000/"),
])
def test_share_url(host: str, expected: str) -> None:
    assert share_url(host, 8000) == expected


def test_share_url_on_every_interface_names_this_machine() -> None:
    url = share_url("0.0.0.0", 8000)
    assert url.startswith("http://") and url.endswith(":8000/") and "0.0.0.0" not in url
