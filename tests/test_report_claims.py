from solstice.report.build import END, START, RunSummary, readme_block, update_readme


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


def _toy_summary(tmp_path, scale="small"):
    from solstice.core.paper import Claim, PaperSpec
    from solstice.core.types import MetricValue
    from solstice.report.build import summarize

    claims = (
        Claim("gpt4o", "GPT-4o scores 0.71", "T1", metric="acc", paper_value=0.71, tolerance=0.03,
              not_run="needs GPT-4o; solstice run toy --model openai:gpt-4o@https://api.openai.com/v1"),
        Claim("effect", "A beats B", "T2", check="a_minus_b > 0"),
        Claim("golden", "the data has 10 items", "data", check="n_items == 10", kind="harness"),
    )
    paper = PaperSpec("toy", "Toy", "0000.00000", "benchmark", "1", object, "x:y", claims=claims)  # type: ignore[arg-type]
    run = {"status": "completed", "scale": scale, "model_specs": {"target": "default"}, "paper": {"id": "toy"}}
    metrics = {"acc": MetricValue(0.123456, 10, (0.1, 0.2), unit="items"),
               "a_minus_b": MetricValue(0.2, 10, (0.1, 0.3), unit="items"),
               "n_items": MetricValue(10.0, 10, None)}
    return summarize(tmp_path, run, metrics, paper)


def test_a_not_run_claim_renders_no_number(tmp_path):
    from solstice.report.build import markdown_report

    s = _toy_summary(tmp_path)
    row = next(c for c in s.claims if c["key"] == "gpt4o")
    assert row["ours"] == "—" and row["status"] == "not run"
    md = markdown_report([s])
    line = next(x for x in md.splitlines() if "GPT-4o scores" in x)
    assert "0.123" not in line and "—" in line  # our small model's number never stands beside GPT-4o's


def test_a_harness_check_is_not_in_the_paper_claims_tally(tmp_path):
    from solstice.report.build import markdown_report

    md = markdown_report([_toy_summary(tmp_path)])
    tally_line = next(line for line in md.splitlines() if line.startswith("Paper claims"))
    assert "1 reproduced" in tally_line and "pass" not in tally_line
    smoke = markdown_report([_toy_summary(tmp_path, "smoke")])
    assert "1 reproduced" not in smoke and "plumbing check" in smoke


class _Rows:
    """Every table of an HTML page: per table, the cell count of each row."""

    def __init__(self, page: str) -> None:
        from html.parser import HTMLParser

        tables: list[list[int]] = []

        class P(HTMLParser):
            def handle_starttag(self, tag, attrs):
                if tag == "table":
                    tables.append([])
                elif tag == "tr":
                    tables[-1].append(0)
                elif tag in ("td", "th"):
                    tables[-1][-1] += 1

        P().feed(page)
        self.tables = tables


def test_every_html_table_row_has_the_headers_cell_count(tmp_path):
    from solstice.core.paper import Claim, PaperSpec
    from solstice.core.types import MetricValue
    from solstice.report.build import summarize, write_report

    claims = (Claim("pipe", "|ours - paper| stays small | really", "T|1", metric="x", paper_value=0.5, tolerance=0.1),
              Claim("nl", "a line\nbreak <b>and</b> tags", "T2", check="d > 0", setting="a | b"),
              Claim("h", "golden | value", "data", check="d > 0", kind="harness"),
              Claim("nr", "not | run", "T3", not_run="needs | a 70B model; solstice run x --model hf:<dir>"))
    paper = PaperSpec("toy", "Toy | title", "0000.00000", "benchmark", "1", object, "x:y", claims=claims)  # type: ignore[arg-type]
    run = {"status": "completed", "scale": "small", "model_specs": {"target": "a|b"}, "paper": {"id": "toy"},
           "warnings": ["w | x"], "argv": ["solstice", "run", "toy", "--set", "a=|"]}
    metrics = {"x": MetricValue(0.52, 40, (0.45, 0.58), unit="items"), "d": MetricValue(0.1, 40, (0.05, 0.2), unit="items"),
               "odd|name": MetricValue(1.0, 1, None)}
    s = summarize(tmp_path, run, metrics, paper)
    md, page = write_report([s], tmp_path / "report", {"other": "needs data: a | b"})
    tables = _Rows(page.read_text()).tables
    assert len(tables) >= 5
    for rows in tables:
        assert all(n == rows[0] for n in rows), rows
    # the Markdown tables too: an escaped pipe never splits a cell
    import re

    for block in re.findall(r"(?:^\|.*\|$\n?)+", md.read_text(), flags=re.M):
        counts = {len(re.split(r"(?<!\\)\|", line.strip())) for line in block.strip().splitlines()}
        assert len(counts) == 1, block
    assert (tmp_path / "report" / "forest.png").is_file()
    assert "<b>and</b>" not in page.read_text()  # text is escaped, never markup


def test_the_forest_plot_is_not_drawn_without_a_value(tmp_path):
    from solstice.report.forest import ForestRow, forest_plot

    assert forest_plot([], tmp_path / "f.png") is None and not (tmp_path / "f.png").exists()
    assert forest_plot([ForestRow("a", float("nan"), None, "failed")], tmp_path / "f.png") is None


def test_a_run_spanning_revisions_is_flagged(tmp_path):
    from solstice.report.build import provenance_line

    s = _toy_summary(tmp_path)
    s.run["run_id"] = "abc"
    s.run["environments"] = [{"kind": "start", "git": {"sha": "1" * 40, "dirty": False}},
                             {"kind": "resume", "git": {"sha": "2" * 40, "dirty": False}}]
    line = provenance_line(s)
    assert "spans 2 code revisions" in line and "111111111111" in line and "222222222222" in line


def test_worth_drawing_leaves_out_empty_and_degenerate_series():
    from solstice.report.plots import worth_drawing

    assert not worth_drawing([0, 0, 0]) and not worth_drawing([0.4]) and not worth_drawing([float("nan"), 1])
    assert worth_drawing([0, 0.1]) and worth_drawing([0.3, 0.3])


def test_fewer_than_five_seeds_are_shown_seed_by_seed(tmp_path):
    from solstice.core.paper import Claim, PaperSpec
    from solstice.core.types import MetricValue
    from solstice.report.build import summarize

    paper = PaperSpec("toy", "Toy", "0", "x", "1", object, "x:y", claims=(Claim("d", "A beats B", "T", check="d > 0"),))  # type: ignore[arg-type]
    metrics = {"d": MetricValue(0.2, 3, None), "d_seed0": MetricValue(0.1, 1, None), "d_seed1": MetricValue(0.3, 1, None),
               "d_seed2": MetricValue(0.2, 1, None)}
    row = summarize(tmp_path, {"status": "completed", "scale": "small"}, metrics, paper).claims[0]
    assert row["status"] == "point estimate holds" and "per seed: 0: 0.1, 1: 0.3, 2: 0.2" in row["ours"]
