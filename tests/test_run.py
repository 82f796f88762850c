"""run.py, the README's two commands: the locked install, its repair after a failure, the Pythons it
takes, and the zero-install configurations (Binder, a dev container) that must agree with the lock."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).parent.parent


def load_run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run", ROOT / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run = load_run()


def test_run_py_is_read_by_old_pythons_so_that_it_can_say_they_are_too_old() -> None:
    ast.parse((ROOT / "run.py").read_text(encoding="utf-8"), feature_version=(3, 7))


def test_the_environment_holds_the_uv_the_lock_gives() -> None:
    assert version("uv") == run.locked_version("uv")


@pytest.mark.parametrize(("windows", "expected"), [(False, "bin/uv"), (True, "Scripts/uv.exe")])
def test_programs_are_found_in_the_layout_of_the_platform(monkeypatch: pytest.MonkeyPatch,
                                                          windows: bool, expected: str) -> None:
    monkeypatch.setattr(run, "WINDOWS", windows)
    assert run.venv_program(Path("env"), "uv") == Path("env", expected)


@pytest.mark.skipif(os.name == "nt", reason="a shell script stands in for an old Python")
def test_a_python_older_than_3_11_is_refused_with_what_to_do(tmp_path: Path) -> None:
    old = tmp_path / "python3.10"
    old.write_text("#!/bin/sh\nprintf '3 10 %s' \"$0\"\n")
    old.chmod(0o755)
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), "lab", "--python", str(old)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"wslab needs Python 3.11 or newer, and {old} is 3.10: install a newer one" in result.stderr
    assert not (ROOT / ".venv-3.10").exists()


def test_an_unknown_command_lists_the_commands() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), "tset"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "python3 run.py test" in result.stderr and "unknown command 'tset'" in result.stderr


def test_what_the_environment_runs_finds_its_programs_as_if_it_were_activated() -> None:
    # JupyterLab's terminals and a notebook's subprocesses: `wslab serve` there is the environment's
    script = "import os, shutil, sys; print(shutil.which('wslab')); print(os.environ['VIRTUAL_ENV'])"
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), "python", "-c", script],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    wslab_program, venv = result.stdout.splitlines()
    assert Path(wslab_program).parent == Path(sys.executable).parent and Path(venv) == Path(sys.prefix)


def test_an_unknown_benchmark_lists_the_benchmarks_before_installing_anything() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), "bench", "brodcast"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "there is no benchmark 'brodcast'" in result.stderr and "broadcast, " in result.stderr


@pytest.mark.parametrize(("found", "apt_has_it", "installs"), [
    ("", True, True),  # no browser yet: the headless shell is what the tests drive
    ("/usr/bin/chromium", True, True),  # chromium is there: the shell as well, for half the CPU
    ("/usr/bin/chromium", False, False),  # Ubuntu has no such package: chromium does
    ("", False, True),  # apt's lists may be empty before its update: try
])
def test_a_root_debian_machine_gets_the_headless_shell_for_the_browser_tests(
        monkeypatch: pytest.MonkeyPatch, found: str, apt_has_it: bool, installs: bool) -> None:
    tried: list[list[str]] = []
    monkeypatch.delenv("WSLAB_CHROMIUM", raising=False)
    monkeypatch.setattr(run, "root_with_apt", lambda: True)
    monkeypatch.setattr(run, "HEADLESS_SHELL", "/nonexistent/chromium-headless-shell")
    monkeypatch.setattr(run, "apt_knows", lambda package: apt_has_it)
    monkeypatch.setattr(run, "apt_install", lambda packages, why: tried.append(list(packages)) or True)
    assert run.want_headless_shell(found) is installs
    assert tried == ([["chromium-headless-shell", "fonts-liberation"]] if installs else [])

    monkeypatch.setattr(run, "apt_install", lambda packages, why: False)  # no network, or no package
    assert run.want_headless_shell(found) is False
    monkeypatch.setattr(run, "root_with_apt", lambda: False)  # not root: never installs
    assert run.want_headless_shell("") is False


# -- a copy of the project, set up as a learner would ---------------------------------------------------
@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh copy of what `python3 run.py` needs, with no environment yet."""
    copy = tmp_path / "wslab"
    copy.mkdir()
    for name in ("run.py", "pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    shutil.copytree(ROOT / "wslab", copy / "wslab", ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def run_py(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "run.py", *args], cwd=project, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **env})


def test_a_failed_install_is_never_taken_for_a_finished_one_and_the_next_run_repairs_it(
        project: Path, tmp_path: Path) -> None:
    probe = ("python", "-c", "import fastapi, wslab; print('ready')")
    offline = {"UV_OFFLINE": "1", "UV_CACHE_DIR": str(tmp_path / "empty-cache")}  # the Wi-Fi is gone
    failed = run_py(project, *probe, **offline)
    assert failed.returncode == 1, failed.stderr
    assert "installing the locked packages into .venv-" in failed.stderr
    assert "Nothing was recorded as done" in failed.stderr and "run the same command again" in failed.stderr

    # the network is back; (the suite's own run.py set a prefix for its bytecode: not this one's)
    repaired = run_py(project, *probe, PYTHONDONTWRITEBYTECODE="1", PYTHONPYCACHEPREFIX="")
    assert repaired.returncode == 0, repaired.stderr
    assert repaired.stdout == "ready\n"

    venv = next(project.glob(".venv-*"))
    # This machine asks for no bytecode beside the sources: it goes into the environment instead, so that
    # the next process does not compile what it imports again
    assert list((venv / "pycache").glob("**/wslab/__init__.*.pyc")), "no bytecode for wslab"
    assert list((venv / "pycache").glob("**/site-packages/fastapi/applications.*.pyc")), "none for fastapi"
    assert not list((project / "wslab").glob("**/__pycache__")), "bytecode beside the sources"
    python = str(run.venv_program(venv, "python"))
    uninstall = [sys.executable, "-m", "uv", "pip", "uninstall", "--python", python, "fastapi"]
    subprocess.run(uninstall, check=True, capture_output=True)  # `pip uninstall fastapi`, by mistake
    again = run_py(project, *probe)
    assert again.returncode == 0 and again.stdout == "ready\n", again.stderr


def test_a_lock_that_does_not_match_pyproject_says_what_to_do(project: Path) -> None:
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"nbformat>=5.9",', '"nbformat>=5.9", "six>=1.16",'))
    result = run_py(project, "python", "-c", "pass")
    assert result.returncode == 1
    assert "uv.lock does not match pyproject.toml" in result.stderr
    assert "python3 run.py lock" in result.stderr


# -- Binder and the dev container -------------------------------------------------------------------------
def test_binders_requirements_are_the_lock_exported(tmp_path: Path) -> None:
    exported = tmp_path / "requirements.txt"
    command = [*run.BINDER_EXPORT[:-1], str(exported)]
    subprocess.run([sys.executable, "-m", "uv", *command], cwd=ROOT, check=True, capture_output=True)
    committed = (ROOT / run.BINDER_REQUIREMENTS).read_text().splitlines()
    fresh = exported.read_text().splitlines()
    header = 2  # "autogenerated by uv via the following command:" and the command, which names the file
    assert committed[header:] == fresh[header:], "binder/requirements.txt lags: run `python3 run.py lock`"
    assert any(line.startswith("nest-asyncio2==") for line in committed)


def test_binder_installs_wslab_redis_and_a_chromium_on_a_python_we_support() -> None:
    binder = ROOT / "binder"
    runtime = (binder / "runtime.txt").read_text().strip()
    assert runtime.startswith("python-3.") and int(runtime.split(".")[1]) >= run.OLDEST[1]
    assert "redis-server" in (binder / "apt.txt").read_text().split()
    post_build = (binder / "postBuild").read_text()
    assert "pip install --no-deps --editable ." in post_build and "playwright install chromium" in post_build
    assert os.access(binder / "postBuild", os.X_OK)


def test_the_dev_container_installs_what_the_notebooks_need_through_run_py() -> None:
    container = json.loads((ROOT / ".devcontainer" / "devcontainer.json").read_text())
    setup = container["postCreateCommand"]
    assert "chromium" in setup and "redis-server" in setup and "python3 run.py" in setup
    python = container["image"].rsplit(":", 1)[1].split("-")[0]
    assert tuple(map(int, python.split("."))) >= run.OLDEST
    settings = container["customizations"]["vscode"]["settings"]
    assert f".venv-{python}/" in settings["python.defaultInterpreterPath"]
