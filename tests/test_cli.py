import subprocess
import sys

import pytest

from wslab.cli import main


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
