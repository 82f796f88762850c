import pytest

from wslab.tools import doctor
from wslab.tools.doctor import Diagnosis, Finding, check_redis, diagnose


def test_diagnose_passes_on_this_machine_and_names_no_versions() -> None:
    result = diagnose()
    assert result.ok, str(result)
    text = str(result)
    assert "✔ an in-kernel server starts and a client connects" in text
    assert "✔ the browser page loads over HTTP" in text
    assert "✔ a Redis server starts on this machine (chapter 08)" in text
    assert "✔ a headless Chromium opens the page and it talks over WebSocket" in text
    assert text.endswith("All set: this machine can run the workbook.")
    from importlib.metadata import version

    assert f"fastapi {version('fastapi')}" not in text  # versions differ between machines


def test_versions_are_shown_on_request() -> None:
    from importlib.metadata import version

    assert f"fastapi {version('fastapi')} " in str(diagnose(versions=True))


def test_an_unsupported_python_is_a_failure_with_a_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor.sys, "version_info", (3, 10, 0))
    finding = doctor.check_python()
    assert not finding.ok
    assert str(finding) == (
        "✘ Python 3.10 is too old (3.11 or newer is needed)\n"
        "    Fix: install a newer Python and run `python run.py lab --python 3.11` (or newer).")


@pytest.mark.parametrize("running", [(3, 11, 0), (3, 15, 2), (3, 16, 0)])
def test_every_python_from_3_11_on_is_supported(monkeypatch: pytest.MonkeyPatch,
                                                running: tuple[int, int, int]) -> None:
    monkeypatch.setattr(doctor.sys, "version_info", running)
    assert str(doctor.check_python()) == "✔ Python version is supported (3.11 or newer)"


def test_a_too_old_or_missing_package_is_a_failure_with_a_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "requires", lambda _: ["fastapi>=0.115", "not-a-real-package>=1"])
    monkeypatch.setattr(doctor, "version", lambda name: "0.100.0" if name == "fastapi" else
                        (_ for _ in ()).throw(doctor.PackageNotFoundError(name)))
    old, missing = doctor.check_packages()
    assert not old.ok and "fastapi 0.100.0 is too old (>=0.115)" in str(old)
    assert "pip install --upgrade 'fastapi>=0.115'" in str(old)
    assert not missing.ok and "not-a-real-package is not installed" in str(missing)


def test_a_failed_finding_makes_the_whole_diagnosis_fail() -> None:
    diagnosis = Diagnosis([Finding(True, "fine"), Finding(False, "broken", "mend it")])
    assert not diagnosis.ok
    assert str(diagnosis).splitlines()[-1].startswith("Some checks failed")


def test_a_missing_chromium_is_a_failure_that_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSLAB_CHROMIUM", "/nonexistent/chromium")
    result = diagnose()
    assert not result.ok
    missing = "✘ no Chromium for the browser parts (chapters 06 and 07)\n    Fix: $WSLAB_CHROMIUM is "
    assert missing in str(result)
    assert "✔ an in-kernel server starts and a client connects" in str(result)  # the rest still ran


def test_a_missing_redis_server_is_a_failure_saying_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSLAB_REDIS_SERVER", "/nonexistent/redis-server")
    finding = check_redis()
    assert not finding.ok
    assert str(finding).startswith("✘ no Redis for chapter 08: $WSLAB_REDIS_SERVER is /nonexistent/")
    assert "sudo apt-get install redis-server" in finding.fix
    monkeypatch.delenv("WSLAB_REDIS_SERVER")
    assert str(check_redis()) == "✔ a Redis server starts on this machine (chapter 08)"


def test_a_proxy_in_the_environment_does_not_break_the_local_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # the discard port: nothing answers there
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    result = diagnose()
    assert result.ok, str(result)
