"""The HTML report rendered in a real browser (headless Chromium, when installed): the DOM the
browser builds has every table row at its header's cell count, and the page paints."""

import shutil
import subprocess

import pytest

BROWSER = next((b for b in ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
                if shutil.which(b)), None)
needs_browser = pytest.mark.skipif(BROWSER is None, reason="no headless Chromium installed")


@needs_browser
def test_report_renders_in_headless_chromium(tmp_path):
    import numpy as np
    from PIL import Image

    from solstice.report.build import write_report
    from test_report_claims import _Rows, _toy_summary

    _, page = write_report([_toy_summary(tmp_path)], tmp_path / "report", {"other": "needs data | absent"})
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,1600"]
    dom = subprocess.run([BROWSER, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0 and "<table>" in dom.stdout, dom.stderr[-500:]
    tables = _Rows(dom.stdout).tables
    assert len(tables) >= 4 and all(all(n == rows[0] for n in rows) for rows in tables), tables
    shot = tmp_path / "shot.png"
    subprocess.run([BROWSER, *flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10  # text, tables and the forest plot painted: not a blank page
