"""The pinned evaluation environment: a virtualenv with the official evaluator's task-library
pins, built by `solstice bigcodebench env [--python PY]` and used with `--set python=ENV/bin/python`.

The pins are those of the official repository's Requirements/requirements-eval.txt
(bigcode-project/bigcodebench; the list its evaluation Docker image installs, for Python 3.10),
deduplicated, with its truncated `selenium==4.15.` pin written as `selenium==4.15.*`. The harness's
own sandbox layer (`pyseccomp`, a binding of the system's libseccomp) is added so that samples get
the seccomp fence in that interpreter too.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from solstice.errors import BackendError, ConfigError

log = logging.getLogger(__name__)

OFFICIAL_SOURCE = "bigcode-project/bigcodebench Requirements/requirements-eval.txt (commit 158327f)"
OFFICIAL_PYTHON = "3.10"
OFFICIAL_EVAL_REQUIREMENTS = (
    "beautifulsoup4==4.8.2", "blake3==0.4.1", "chardet==5.2.0", "cryptography==38.0.0", "datetime==5.5",
    "Django==4.2.7", "dnspython==2.6.1", "docxtpl==0.11.5", "Faker==20.1.0", "flask_login==0.6.3",
    "flask_restful==0.3.10", "flask_wtf==1.2.1", "Flask-Mail==0.9.1", "flask==3.0.3", "folium==0.16.0",
    "gensim==4.3.2", "geopandas==0.13.2", "geopy==2.4.1", "holidays==0.29", "keras==2.11.0",
    "Levenshtein==0.25.0", "librosa==0.10.1", "lxml==4.9.3", "matplotlib==3.7.0", "mechanize==0.4.9",
    "natsort==7.1.1", "networkx==2.6.3", "nltk==3.8", "numba==0.55.0", "numpy==1.21.2",
    "opencv-python-headless==4.9.0.80", "openpyxl==3.1.2", "pandas==2.0.3", "Pillow==10.3.0",
    "prettytable==3.10.0", "psutil==5.9.5", "pycryptodome==3.14.1", "pyfakefs==5.4.1", "pyquery==1.4.3",
    "pytesseract==0.3.10", "pytest==8.2.0", "python_http_client==3.3.7", "python-dateutil==2.9.0",
    "python-docx==1.1.0", "python-Levenshtein-wheels", "pytz==2023.3.post1", "PyYAML==6.0.1",
    "requests_mock==1.11.0", "requests==2.31.0", "rsa==4.9", "scikit-image==0.18.0", "scikit-learn==1.3.1",
    "scipy==1.7.2", "seaborn==0.13.2", "selenium==4.15.*", "sendgrid==6.11.0", "shapely==2.0.4",
    "soundfile==0.12.1", "statsmodels==0.14.0", "sympy==1.12", "tensorflow==2.11.1", "textblob==0.18.0",
    "texttable==1.7.0", "Werkzeug==3.0.1", "wikipedia==1.4.0", "wordcloud==1.9.3", "wordninja==2.0.0",
    "WTForms==3.1.2", "xlrd==2.0.1", "xlwt==1.3.0", "xmltodict==0.13.0",
)
HARNESS_REQUIREMENTS = ("pyseccomp>=0.1.2",)
MANIFEST = "solstice-bigcodebench-env.json"


def default_dir(python_version: str) -> Path:
    base = Path(os.environ.get("SOLSTICE_CACHE", Path.home() / ".cache" / "solstice"))
    return base / f"bigcodebench-env-py{python_version}"


def _python_version(python: str) -> str:
    try:
        out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"cannot run --python {python}: {exc}") from None
    if out.returncode != 0:
        raise ConfigError(f"--python {python} does not run: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
    return out.stdout.strip()


def read_requirements(path: str | Path) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"requirements file '{path}' does not exist")
    return [ln.split("#", 1)[0].strip() for ln in p.read_text().splitlines() if ln.split("#", 1)[0].strip()]


def build(python: str, target: Path | None = None, requirements: list[str] | None = None, *,
          harness: bool = True, force: bool = False, pip_args: tuple[str, ...] = ()) -> dict[str, Any]:
    """Create the virtualenv and install the pins (the official ones unless `requirements`);
    writes and returns its manifest (interpreter, requirements, `pip freeze`)."""
    version = _python_version(python)
    reqs = list(OFFICIAL_EVAL_REQUIREMENTS if requirements is None else requirements)
    if requirements is None and version != OFFICIAL_PYTHON:
        log.warning("the official pins target Python %s (e.g. numpy 1.21.2 has no wheels for newer Pythons); "
                    "this is Python %s: pass --python with a %s interpreter if pip cannot resolve them",
                    OFFICIAL_PYTHON, version, OFFICIAL_PYTHON)
    target = Path(target) if target else default_dir(version)
    if target.exists() and any(target.iterdir()) and not force:
        raise ConfigError(f"{target} exists and is not empty; pass --force to rebuild it or --dir for another place")
    t0 = time.perf_counter()
    all_reqs = reqs + (list(HARNESS_REQUIREMENTS) if harness else [])
    _run([python, "-m", "venv", "--clear", *([] if all_reqs else ["--without-pip"]), str(target)],
         "creating the virtualenv")
    py = str(target / "bin" / "python")
    req_file = target / "requirements-bigcodebench.txt"
    req_file.write_text("".join(r + "\n" for r in all_reqs))
    freeze: list[str] = []
    if all_reqs:
        _run([py, "-m", "pip", "install", "--disable-pip-version-check", "-r", str(req_file), *pip_args],
             "installing the requirements")
        freeze = subprocess.run([py, "-m", "pip", "freeze", "--disable-pip-version-check"], capture_output=True,
                                text=True).stdout.split()
    manifest = {"python": py, "python_version": version, "base_python": python,
                "requirements": "official" if requirements is None else "custom",
                "source": OFFICIAL_SOURCE if requirements is None else "user file", "pins": all_reqs,
                "freeze": freeze, "built_s": round(time.perf_counter() - t0, 1),
                "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    (target / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["no output"])[-1]
        raise BackendError(f"{what} failed: {last}")
