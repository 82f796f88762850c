#!/usr/bin/env python3
"""The workbook's entry points, each setting up what it needs first (Linux, macOS and Windows):

  python3 run.py lab                  set up, then open the workbook in JupyterLab
  python3 run.py test                 set up, then run the whole test suite (ruff, mypy, pytest, notebooks)
  python3 run.py wslab ARGS...        the wslab command in the environment (wslab doctor, wslab serve...)
  python3 run.py python ARGS...       the environment's Python (a script)
  python3 run.py bench NAME ARGS...   benchmarks/NAME.py, with the benchmarks' own packages (python-socketio)
  python3 run.py lock                 maintainers: after changing the dependencies, lock them again
  python3 run.py upgrade              maintainers: move uv.lock to the newest releases, then run the tests
  python3 run.py floors               maintainers: run the tests on the lowest versions pyproject.toml allows

On Windows, type `py run.py lab` (or `python run.py lab`). After the command, `--python 3.13` picks another
Python (found on PATH, through the py launcher or pyenv; a path to an interpreter works too); each Python
gets its own environment, .venv-3.13. Extra arguments go to JupyterLab (lab) or pytest (test), e.g.
`python3 run.py test -k server`.

What gets installed is exactly what uv.lock says, installed by uv, which this script first installs into
the environment with pip at the version the lock gives. Nothing is recorded as done: every run checks the
environment against the lock, repairs what an interrupted or failed install left behind, and needs no
network when nothing is missing.
"""

# This file runs on whatever Python the learner typed, so it keeps to the standard library and to what
# Python 3.8 can run (annotations are never evaluated), in order to say clearly when that Python is too old.
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parent
OLDEST = (3, 11)  # the oldest Python wslab supports (pyproject.toml's requires-python); no upper cap
WINDOWS = os.name == "nt"
# Most tests wait on timers, sockets and kernels rather than compute: four workers per core keep the cores
# busy (on 2 cores: 2 min 17 s to 2 min 33 s, 82 to 88 % busy; with 4 workers, 4 min). At most 16, for memory.
# conftest.py hands them whole units (a notebook's cells stay in order in one kernel), longest first.
PYTEST_WORKERS = ["-n", str(min(4 * (os.cpu_count() or 1), 16))]
BINDER_REQUIREMENTS = "binder/requirements.txt"
BINDER_EXPORT = ["export", "--frozen", "--quiet", "--no-dev", "--no-hashes", "--no-emit-project",
                 "--format", "requirements-txt", "--output-file", BINDER_REQUIREMENTS]
NETWORK_HINT = ("check the network connection (behind a proxy, set HTTPS_PROXY), then run the same command "
                "again: it picks up where this one stopped")


def say(message: str) -> None:
    print(f"run: {message}", file=sys.stderr, flush=True)


def fail(message: str, code: int = 1) -> NoReturn:
    say(message)
    sys.exit(code)


# -- which Python ---------------------------------------------------------------------------------------
DESCRIBE = "import sys; v = sys.version_info; sys.stdout.write('%d %d %s' % (v[0], v[1], sys.executable))"


def describe(python: str) -> tuple[int, int, str] | None:
    """(major, minor, executable) of the interpreter ``python``, or None if it does not run."""
    try:
        out = subprocess.run([python, "-c", DESCRIBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    major, minor, executable = out.stdout.strip().split(" ", 2)
    return int(major), int(minor), executable


def find_python(wanted: str | None) -> str:
    """The interpreter to build the environment from: this one, or the one ``--python`` names."""
    if not wanted:
        return sys.executable
    if os.sep in wanted or "/" in wanted or Path(wanted).is_file():
        found = describe(wanted)
        if found is None:
            fail(f"--python {wanted}: that is not a Python interpreter that runs here.")
        return found[2]
    if not re.fullmatch(r"3\.\d+", wanted):
        fail(f"--python needs a version such as 3.13, or the path of an interpreter; got {wanted!r}.", 2)
    candidates: list[list[str]] = []
    if WINDOWS:
        candidates.append(["py", f"-{wanted}"])
    candidates.append([f"python{wanted}"])
    pyenv = shutil.which("pyenv")
    if pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip()
        for folder in sorted(Path(root, "versions").glob(f"{wanted}*"), reverse=True):
            candidates.append([str(folder / ("python.exe" if WINDOWS else f"bin/python{wanted}"))])
    for command in candidates:
        if command[0] != "py" and shutil.which(command[0]) is None and not Path(command[0]).is_file():
            continue
        try:
            out = subprocess.run([*command, "-c", "import sys; print(sys.executable)"],
                                 capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0:
            found = describe(out.stdout.strip())
            if found and f"{found[0]}.{found[1]}" == wanted:
                return found[2]
    where = "on PATH, through the py launcher or pyenv" if WINDOWS else "on PATH or through pyenv"
    fail(f"Python {wanted} was not found {where}; install it (python.org, your package manager, or "
         f"'pyenv install {wanted}'), or give the path of an interpreter: --python /path/to/python{wanted}.")


# -- the environment --------------------------------------------------------------------------------------
def venv_program(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if WINDOWS else "bin") / (name + (".exe" if WINDOWS else ""))


def locked_version(package: str) -> str:
    """The version uv.lock gives ``package``."""
    lock = (ROOT / "uv.lock").read_text(encoding="utf-8")
    found = re.search(rf'^\[\[package\]\]\nname = "{re.escape(package)}"\nversion = "([^"]+)"', lock, re.M)
    if found is None:
        fail(f"uv.lock has no {package}: restore uv.lock from git (git checkout uv.lock).")
    return found.group(1)


def make_venv(python: str, venv: Path) -> Path:
    """Create ``venv`` from ``python`` unless it already works; return its Python."""
    found = describe(python)
    if found is None:
        fail(f"{python} does not run.")
    version = found[:2]
    if version < OLDEST:
        fail(f"wslab needs Python {OLDEST[0]}.{OLDEST[1]} or newer, and {python} is "
             f"{version[0]}.{version[1]}: install a newer one and pass --python 3.13 (for example).")
    venv_python = venv_program(venv, "python")
    if venv_python.exists() and describe(str(venv_python)) is not None:
        return venv_python
    if venv.exists():
        say(f"{venv.name} is broken (its Python does not run): making it again")
        shutil.rmtree(venv)
    say(f"creating {venv.name} (Python {version[0]}.{version[1]})")
    made = subprocess.run([python, "-m", "venv", str(venv)])
    if made.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        debian = f" On Debian or Ubuntu: sudo apt-get install python{version[0]}.{version[1]}-venv." \
            if not WINDOWS and sys.platform != "darwin" else ""
        fail(f"Python {version[0]}.{version[1]} could not create a virtual environment.{debian}")
    return venv_python


def install_uv(venv: Path, venv_python: Path) -> Path:
    """The locked uv, in the environment: installed with the environment's pip when missing or another
    version (a half-finished earlier install included)."""
    uv = venv_program(venv, "uv")
    wanted = locked_version("uv")
    if uv.exists():
        out = subprocess.run([str(uv), "--version"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.split()[1:2] == [wanted]:
            return uv
    say(f"installing uv {wanted} into {venv.name}")
    pip = subprocess.run([str(venv_python), "-m", "pip", "--version"], capture_output=True)
    ensurepip = [str(venv_python), "-m", "ensurepip", "--upgrade"]
    if pip.returncode != 0 and subprocess.run(ensurepip).returncode != 0:
        fail(f"{venv.name} has no pip and ensurepip failed: delete {venv.name} and run this again.")
    installed = subprocess.run([str(venv_python), "-m", "pip", "install", "--quiet",
                                "--disable-pip-version-check", f"uv=={wanted}"])
    if installed.returncode != 0:
        fail(f"installing uv {wanted} failed (pip's message is above): {NETWORK_HINT}.")
    return uv


def uv_env(venv: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["UV_PROJECT_ENVIRONMENT"] = str(venv)  # our per-Python environment instead of .venv
    env["VIRTUAL_ENV"] = str(venv)  # for `uv pip`; not some other environment a shell has activated
    env["UV_PYTHON_DOWNLOADS"] = "never"  # the interpreter is the one the environment was made from
    return env


def environment(wanted: str | None, prefix: str = ".venv") -> tuple[Path, Path]:
    """The environment for the Python ``wanted`` (made if missing or broken) and its locked uv."""
    python = find_python(wanted)
    found = describe(python)
    if found is None:
        fail(f"{python} does not run.")
    venv = ROOT / f"{prefix}-{found[0]}.{found[1]}"
    venv_python = make_venv(python, venv)
    return venv, install_uv(venv, venv_python)


def run_uv(uv: Path, venv: Path, args: Sequence[str]) -> tuple[int, str]:
    """Run uv, showing what it prints as it prints it; return its status and what it wrote to stderr."""
    process = subprocess.Popen([str(uv), *args], cwd=ROOT, env=uv_env(venv), stderr=subprocess.PIPE,
                               text=True, encoding="utf-8", errors="replace")
    assert process.stderr is not None
    said = []
    for line in process.stderr:
        sys.stderr.write(line)
        said.append(line)
    return process.wait(), "".join(said)


def setup(wanted: str | None, *, test: bool, bench: bool = False) -> Path:
    """Make the environment match uv.lock and return its directory."""
    venv, uv = environment(wanted)
    # --locked: uv.lock must agree with pyproject.toml. The test command syncs exactly (what is not in the
    # lock goes, the bench group included); lab only adds, keeping what a learner installed; bench adds
    # its group the same way, so that a benchmark never changes what the tests run on.
    command = ["sync", "--locked", "--python", str(venv_program(venv, "python"))]
    command += ["--extra", "test"] if test else ["--inexact"]
    command += ["--group", "bench"] if bench else []
    status, said = run_uv(uv, venv, command)
    if status != 0 and "needs to be updated" in said:
        fail("uv.lock does not match pyproject.toml. If you changed the dependencies, run "
             "`python3 run.py lock` and commit uv.lock; otherwise `git checkout pyproject.toml uv.lock` "
             "brings back the committed pair.")
    if status != 0:
        fail(f"installing the locked packages into {venv.name} failed (uv's message is above). Nothing "
             f"was recorded as done: {NETWORK_HINT}.")
    return venv


# -- programs the tests need from outside PyPI --------------------------------------------------------------
def root_with_apt() -> bool:
    return not WINDOWS and hasattr(os, "geteuid") and os.geteuid() == 0 and bool(shutil.which("apt-get"))


def apt_install(debian: Sequence[str], why: str) -> bool:
    """Install Debian packages (as root): True if it worked."""
    say(f"installing Debian's {' '.join(debian)} for {why} (a minute or two, once)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *debian]
    return subprocess.run(["apt-get", "update", "-qq"], env=env).returncode == 0 \
        and subprocess.run(install, env=env).returncode == 0


def need_program(name: str, why: str, debian: Sequence[str], elsewhere: str,
                 found: str | None = None) -> None:
    """Install a Debian package for ``name`` when it is missing and this is a root Debian machine;
    otherwise stop, saying how to get it."""
    if found or shutil.which(name) or Path("/usr/bin", name).exists():
        return
    if root_with_apt() and apt_install(debian, why):
        return
    if shutil.which("apt-get"):
        elsewhere = f"sudo apt-get install {' '.join(debian)}"
    fail(f"{why} need {name}, which is not on this machine: {elsewhere}; then run this again.")


def apt_knows(package: str) -> bool:
    policy = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True).stdout
    return "Candidate:" in policy and "Candidate: (none)" not in policy


FIND_CHROMIUM = """
import os
from wslab.lab.browser import chromium_path
path = chromium_path()
if path is None:  # then Playwright's own download, if there is one
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        path = playwright.chromium.executable_path
print(path if path and os.path.exists(path) else "")
"""


HEADLESS_SHELL = "/usr/bin/chromium-headless-shell"


def want_headless_shell(found: str) -> bool:
    """Debian's chromium-headless-shell runs the same pages as chromium for less than half the CPU: on a
    root Debian machine, install it for the tests (once). True if it is now there. Where apt has no such
    package (Ubuntu) or it fails, the tests run chromium."""
    if not root_with_apt() or Path(HEADLESS_SHELL).exists() or os.environ.get("WSLAB_CHROMIUM"):
        return False  # (with $WSLAB_CHROMIUM, that browser runs)
    if found and not apt_knows("chromium-headless-shell"):
        return False
    if apt_install(["chromium-headless-shell", "fonts-liberation"], "the browser tests"):
        return True
    say("chromium-headless-shell could not be installed: the browser tests run chromium instead")
    return False


def need_test_programs(venv: Path) -> None:
    playwright_browser = subprocess.run([str(venv_program(venv, "python")), "-c", FIND_CHROMIUM],
                                        capture_output=True, text=True).stdout.strip()
    if want_headless_shell(playwright_browser):
        playwright_browser = HEADLESS_SHELL
    need_program("chromium", "the browser tests", ["chromium", "fonts-liberation"],
                 f"{venv_program(venv, 'python')} -m playwright install chromium", playwright_browser)
    need_program("redis-server", "the Redis tests", ["redis-server"],
                 "brew install redis (macOS); on Windows, a Redis-compatible server such as Memurai")


# -- the commands -------------------------------------------------------------------------------------------
def run_in(venv: Path, program: str, args: Sequence[str]) -> NoReturn:
    """Run a program of the environment in place of this script, as if the environment were activated:
    what it starts (JupyterLab's terminals, a notebook's subprocesses) finds `wslab` and `python` there."""
    path = venv_program(venv, program)
    command = [str(path), *args]
    search = str(path.parent) + os.pathsep + os.environ.get("PATH", "")
    env = dict(os.environ, VIRTUAL_ENV=str(venv), PATH=search)
    env.pop("PYTHONHOME", None)
    if env.pop("PYTHONDONTWRITEBYTECODE", None):  # no bytecode beside the sources, as this machine asks, but
        # in the environment: else every process (test worker, kernel, server) compiles all it imports again
        env["PYTHONPYCACHEPREFIX"] = env.get("PYTHONPYCACHEPREFIX") or str(venv / "pycache")
    if WINDOWS:  # no real exec on Windows: wait, and pass the exit status on
        sys.exit(subprocess.run(command, env=env).returncode)
    os.execve(str(path), command, env)


def test(venv: Path, args: Sequence[str]) -> NoReturn:
    need_test_programs(venv)
    python = str(venv_program(venv, "python"))
    say("ruff and mypy")
    linted = ["run.py", "conftest.py", "wslab", "tests", "benchmarks"]
    if subprocess.run([python, "-m", "ruff", "check", *linted], cwd=ROOT).returncode != 0:
        sys.exit(1)
    if subprocess.run([python, "-m", "mypy"], cwd=ROOT).returncode != 0:
        sys.exit(1)
    say("pytest (tests/ and every notebook)")
    temporary = Path(tempfile.gettempdir()).resolve()  # the last run's temporary files' bytecode (run_in)
    shutil.rmtree(venv / "pycache" / temporary.relative_to(temporary.anchor), ignore_errors=True)
    run_in(venv, "python", ["-m", "pytest", *PYTEST_WORKERS, *args])


def floors(wanted: str | None, args: Sequence[str]) -> NoReturn:
    """The suite on the lowest versions pyproject.toml allows for wslab's own requirements (the packages
    they pull in at their newest), in an environment of its own: do the lower bounds tell the truth?"""
    venv, uv = environment(wanted, prefix=".venv-floors")
    python = str(venv_program(venv, "python"))
    pinned = venv / "floors.txt"
    steps = [
        ["pip", "compile", "--quiet", "pyproject.toml", "--extra", "test", "--resolution", "lowest-direct",
         "--python", python, "--output-file", str(pinned)],
        ["pip", "sync", "--python", python, str(pinned)],
        ["pip", "install", "--quiet", "--no-deps", "--python", python, "--editable", "."],
        ["pip", "install", "--quiet", "--python", python, f"uv=={locked_version('uv')}"],
    ]
    for step in steps:
        if run_uv(uv, venv, step)[0] != 0:
            fail(f"setting up {venv.name} failed (uv's message is above).")
    say(f"the lowest allowed versions are in {pinned.relative_to(ROOT)}; running pytest on them")
    need_test_programs(venv)
    run_in(venv, "python", ["-m", "pytest", *PYTEST_WORKERS, *args])


def lock(venv: Path, uv: Path, *options: str) -> None:
    """uv.lock from pyproject.toml, and its export for Binder, which cannot read uv.lock."""
    if run_uv(uv, venv, ["lock", *options])[0] != 0:
        fail("uv could not lock the dependencies (its message is above).")
    if run_uv(uv, venv, BINDER_EXPORT)[0] != 0:
        fail(f"uv could not export the lock to {BINDER_REQUIREMENTS}.")


def upgrade(wanted: str | None, args: Sequence[str]) -> NoReturn:
    """Move uv.lock to the newest releases pyproject.toml allows, then run the whole suite on them."""
    lock(*environment(wanted), "--upgrade")
    say("uv.lock now holds the newest releases (git diff uv.lock); testing them. If the tests fail, fix "
        "the code, or keep the old lock with `git checkout uv.lock`.")
    test(setup(wanted, test=True), args)


def benchmark(name: str) -> Path:
    """The script of the benchmark called ``name`` (``broadcast`` or ``broadcast.py``)."""
    stem = name[:-3] if name.endswith(".py") else name
    script = ROOT / "benchmarks" / (stem + ".py")
    if not script.is_file():
        known = sorted(path.stem for path in (ROOT / "benchmarks").glob("*.py"))
        fail(f"there is no benchmark {name!r}; benchmarks/ has: {', '.join(known)}", 2)
    return script


def main(argv: Sequence[str]) -> None:
    args = list(argv)
    command = args.pop(0) if args else "help"
    wanted = None
    if args[:1] == ["--python"]:
        if len(args) < 2:
            fail("--python needs a version, for example --python 3.13", 2)
        wanted = args[1]
        del args[:2]
    if command == "lab":
        venv = setup(wanted, test=False)
        as_root = ["--allow-root"] if not WINDOWS and os.geteuid() == 0 else []  # containers, workshop VMs
        run_in(venv, "python", ["-m", "jupyter", "lab", *as_root, "notebooks", *args])
    elif command == "test":
        test(setup(wanted, test=True), args)
    elif command in ("wslab", "python"):
        run_in(setup(wanted, test=False), command, args)
    elif command == "bench":
        if not args:
            fail("bench needs the name of a benchmark: python3 run.py bench broadcast --quick", 2)
        script = benchmark(args.pop(0))
        run_in(setup(wanted, test=False, bench=True), "python", [str(script), *args])
    elif command == "lock":
        lock(*environment(wanted))
        say(f"uv.lock and {BINDER_REQUIREMENTS} are up to date: commit both")
    elif command == "upgrade":
        upgrade(wanted, args)
    elif command == "floors":
        floors(wanted, args)
    elif command in ("help", "-h", "--help"):
        print(__doc__.strip())
    else:
        print(__doc__.strip(), file=sys.stderr)
        fail(f"unknown command {command!r}", 2)


if __name__ == "__main__":
    os.chdir(ROOT)
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:
        fail("interrupted; run the same command again to carry on.", 130)
