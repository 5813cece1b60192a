import math

from solstice.core.paper import Claim, assess
from solstice.core.types import MetricValue
from solstice.report.build import END, START, RunSummary, readme_block, update_readme


def mv(v, lo=None, hi=None):
    return MetricValue(v, 100, None if lo is None else (lo, hi))


def test_value_claims():
    c = Claim("k", "acc", "T1", metric="acc", paper_value=0.60, tolerance=0.02)
    assert assess(c, {"acc": mv(0.61, 0.55, 0.67)})[0] == "reproduced"
    assert assess(c, {"acc": mv(0.50, 0.45, 0.585)})[0] == "partly"
    assert assess(c, {"acc": mv(0.30, 0.25, 0.35)})[0] == "not reproduced"
    assert assess(c, {})[0] == "not run"
    assert assess(c, {"acc": mv(math.nan)})[0] == "not run"


def test_relational_claims():
    c = Claim("k", "sep beats acc probe", "F3", check="sep > acc")
    assert assess(c, {"sep": mv(0.8, 0.75, 0.85), "acc": mv(0.6, 0.55, 0.65)})[0] == "reproduced"
    assert assess(c, {"sep": mv(0.62, 0.5, 0.7), "acc": mv(0.6, 0.55, 0.65)})[0] == "partly"
    assert assess(c, {"sep": mv(0.5, 0.4, 0.6), "acc": mv(0.6, 0.55, 0.65)})[0] == "not reproduced"
    bound = Claim("k", "auroc above 0.7", "F4", check="sep >= 0.7")
    assert assess(bound, {"sep": mv(0.8, 0.72, 0.88)})[0] == "reproduced"
    assert assess(Claim("k", "x", "y", not_run="needs 70B"), {})[0] == "not run"


def test_readme_markers_are_replaced_in_place(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Paper\n\nintro\n\n{START}\nold table\n{END}\n\nafter\n")
    s = RunSummary(tmp_path, {"scale": "smoke", "model_specs": {"target": "default"}, "timings": {"wall_s": 12}, "argv": ["solstice", "run", "x"]}, {})
    update_readme(readme, [s])
    text = readme.read_text()
    assert "old table" not in text and "after" in text and text.count(START) == 1
    assert "`solstice run x`" in text and "wall time 12 s" in readme_block([s])


def test_save_figure_writes_the_png_and_frees_the_figure(tmp_path):
    from solstice.report.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    out = save_figure(fig, tmp_path / "f.png", dpi=50)
    assert out == tmp_path / "f.png" and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig.number not in plt.get_fignums()
