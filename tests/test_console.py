"""What `reproduce` prints: one verdict line per paper as it finishes and a summary; progress as
log lines without a terminal; third-party deprecation warnings hidden at default verbosity."""

import subprocess
import sys

from conftest import cli_env


def test_reproduce_prints_a_verdict_line_per_paper_and_progress_without_a_tty(tmp_path):
    env = cli_env(SOLSTICE_PROGRESS="1", SOLSTICE_PROGRESS_EVERY="0")
    r = subprocess.run([sys.executable, "-m", "solstice", "reproduce", "--only", "toy", "--out", str(tmp_path / "runs"),
                        "--report", str(tmp_path / "rep")], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(line.startswith("toy ") and "plumbing check: ran end to end" in line for line in lines), r.stdout
    assert any(line.startswith("summary: 1 of 1 papers completed") for line in lines), r.stdout
    assert "toy: 6/6 (100%)" in r.stderr  # stderr is a pipe here: progress comes as log lines


def test_deprecation_warnings_are_off_by_default_and_shown_with_v():
    code = ("import sys, warnings; from solstice.cli.main import _setup_logging; _setup_logging(int(sys.argv[1])); "
            "warnings.warn('old api', DeprecationWarning); warnings.warn('later', FutureWarning); "
            "warnings.warn('a real problem', UserWarning)")
    quiet = subprocess.run([sys.executable, "-c", code, "0"], capture_output=True, text=True, env=cli_env())
    assert "a real problem" in quiet.stderr and "old api" not in quiet.stderr and "later" not in quiet.stderr
    loud = subprocess.run([sys.executable, "-c", code, "1"], capture_output=True, text=True, env=cli_env())
    assert "old api" in loud.stderr
