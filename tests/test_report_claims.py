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
    assert "reproduced: 1" in tally_line and "pass" not in tally_line
    smoke = markdown_report([_toy_summary(tmp_path, "smoke")])
    assert "reproduced: 1" not in smoke and "plumbing check" in smoke
