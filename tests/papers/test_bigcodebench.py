"""BigCodeBench: loader golden values, sanitizer golden cases, pass@k golden values, calibration,
canonical solutions on a stdlib slice, degenerate solutions, unsupported tasks, samples files and
generation end to end."""

from __future__ import annotations

import json
import math
import os
import re
import sys
from pathlib import Path

import pytest

from conftest import needs_data, shared_data
from solstice.metrics.passk import pass_at_k, pass_at_k_metric, valid_ks
from solstice.papers.bigcodebench.sanitize import longest_parseable_span, sanitize

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox needs Linux")
DATA = "bigcodebench/BigCodeBench-v0.1.0_hf.jsonl.gz"


@pytest.fixture(scope="module")
def tasks():
    from solstice.papers.bigcodebench.tasks import load_tasks

    if shared_data() is None:
        pytest.skip("SOLSTICE_DATA is not set to the papers' data")
    return load_tasks(shared_data() / DATA)


# -- pass@k ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,c,k,want", [(5, 2, 1, 0.4), (5, 2, 5, 1.0), (10, 0, 1, 0.0), (10, 0, 10, 0.0),
                                        (1, 1, 1, 1.0), (10, 3, 5, 1 - math.comb(7, 5) / math.comb(10, 5)),
                                        (20, 19, 10, 1.0), (3, 0, 5, math.nan)])
def test_pass_at_k_golden_values(n, c, k, want):
    got = pass_at_k(n, c, k)
    assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-12)


def test_pass_at_k_metric_is_a_mean_over_tasks_with_a_ci():
    m = pass_at_k_metric([(5, 2), (5, 0), (5, 5), (5, 1)], 1)
    assert m.value == pytest.approx((0.4 + 0 + 1 + 0.2) / 4) and m.n == 4 and m.ci95[0] <= m.value <= m.ci95[1]
    assert math.isnan(pass_at_k_metric([(5, 2), (3, 1)], 5).value)
    assert valid_ks([(5, 1), (10, 2)], (1, 5, 10)) == [1, 5]
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


# -- sanitizer ------------------------------------------------------------------------------------
SANITIZE_CASES = {
    "prose_and_fence": ("Here you go:\n```python\nimport os\n\ndef task_func(x):\n    return os.sep + x\n```\nDone.",
                        "import os\ndef task_func(x):\n    return os.sep + x"),
    "two_blocks": ("Imports:\n```python\nimport math\n```\nThen:\n```python\ndef task_func(x):\n    return math.sqrt(x)\n```",
                   "import math\ndef task_func(x):\n    return math.sqrt(x)"),
    "last_block_wins": ("```python\ndef task_func():\n    return 1\n```\nBetter:\n```python\ndef task_func():\n    return 2\n```",
                        "def task_func():\n    return 2"),
    "duplicate_def_first_wins": ("def task_func():\n    return 1\n\ndef task_func():\n    return 2\n",
                                 "def task_func():\n    return 1"),
    "trailing_example_call": ("import re\n\ndef task_func(s):\n    return re.findall('a', s)\n\nprint(task_func('aa'))\nout = task_func('b')\n",
                              "import re\ndef task_func(s):\n    return re.findall('a', s)"),
    "main_block_dropped": ("def task_func(x):\n    return x\n\nif __name__ == '__main__':\n    task_func(3)\n",
                           "def task_func(x):\n    return x"),
    "reachable_helper_kept_unreachable_dropped": (
        "def helper(x):\n    return x + 1\n\ndef unused():\n    return 0\n\ndef task_func(x):\n    return helper(x)\n",
        "def helper(x):\n    return x + 1\ndef task_func(x):\n    return helper(x)"),
    "constants_and_decorators": (
        "import functools\nLIMIT = 3\nOTHER = 4\n@functools.lru_cache\ndef task_func(n):\n    return n < LIMIT\n",
        "import functools\nLIMIT = 3\n@functools.lru_cache\ndef task_func(n):\n    return n < LIMIT"),
    "unclosed_fence_after_length_cut": ("Sure!\n```python\nimport json\ndef task_func(d):\n    return json.dumps(d)\n",
                                        "import json\ndef task_func(d):\n    return json.dumps(d)"),
    "prose_around_unfenced_code": ("Let me think.\nimport os\ndef task_func():\n    return os.getcwd()\nThat should work fine!",
                                   "import os\ndef task_func():\n    return os.getcwd()"),
    "empty": ("  \n", ""),
}


@pytest.mark.parametrize("name", list(SANITIZE_CASES))
def test_sanitize_golden_cases(name):
    text, want = SANITIZE_CASES[name]
    assert sanitize(text, "task_func") == want


def test_longest_parseable_span_counts_non_blank_lines():
    text = "intro words here\nx = 1\n\n\ny = 2\nnot python at all\nz = 3"
    assert longest_parseable_span(text) == "x = 1\n\n\ny = 2"


# -- loader ---------------------------------------------------------------------------------------
@needs_data
def test_loader_golden_values(tasks):
    from solstice.papers.bigcodebench.tasks import summary

    s = summary(tasks)
    assert s["n_tasks"] == 1140 and s["n_libs"] == 139
    assert s["hard_candidates"] == 382
    assert s["mean_tests"] == pytest.approx(5.64, abs=0.01)
    assert s["mean_libs"] == pytest.approx(2.8, abs=0.05)
    assert s["tiers"]["stdlib"] == 300 and s["tiers"]["stdlib"] + s["tiers"]["core"] == 659
    # our own library -> domain classification reproduces the paper's domain shares (Table 1)
    paper = {"Computation": 63, "General": 44, "Visualization": 31, "System": 30, "Time": 10, "Network": 8,
             "Cryptography": 5}
    for dom, share in paper.items():
        assert s["domain_share"][dom] * 100 == pytest.approx(share, abs=1.0), dom
    assert all(t.entry_point == "task_func" for t in tasks)
    assert tasks[0].libs == ("random", "itertools")


@needs_data
def test_stratified_slice_is_deterministic_and_proportional(tasks):
    from solstice.papers.bigcodebench.tasks import select

    a = select(tasks, pool="stdlib", size=100, seed=0)
    b = select(tasks, pool="stdlib", size=100, seed=0)
    assert [t.task_id for t in a] == [t.task_id for t in b] and len(a) == 100
    assert all(not t.third_party for t in a)
    assert len({t.primary_domain for t in a}) >= 5
    with pytest.raises(Exception, match="unknown task id"):
        select(tasks, ids="99999")


@needs_data
def test_shipped_exclusions_name_real_tasks_with_a_reason(tasks):
    """Every shipped exclusion names a dataset task, a known category and a reason; the
    environment failures the spec documents upstream are among them."""
    from solstice.papers.bigcodebench.evaluate import exclusions

    shipped = exclusions()
    ids = {t.task_id for t in tasks}
    cats = {"network", "root", "flaky", "python-version", "library-version", "data", "slow"}
    assert shipped and set(shipped) <= ids
    for tid, e in shipped.items():
        assert e["category"] in cats and len(e["reason"]) > 15, tid
    for n, cat in [(176, "network"), (314, "network"), (1005, "network"), (1012, "network"), (812, "root"),
                   (832, "root"), (417, "flaky"), (418, "flaky"), (227, "python-version")]:
        assert shipped[f"BigCodeBench/{n}"]["category"] == cat, n


def test_missing_fields_and_bad_libs_are_data_errors(tmp_path):
    from solstice.errors import DataError
    from solstice.papers.bigcodebench.tasks import load_tasks

    p = tmp_path / "t.jsonl"
    p.write_text(json.dumps({"task_id": "BigCodeBench/0"}) + "\n")
    with pytest.raises(DataError, match="missing field"):
        load_tasks(p)


# -- execution ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pool():
    from solstice.sandbox import SandboxConfig, SandboxPool

    p = SandboxPool(SandboxConfig(workers=2, timeout=30, preload=()))
    yield p
    p.close()


@pytest.fixture(scope="module")
def stdlib_slice(tasks):
    """24 stdlib tasks, stratified by domain, leaving out the shipped exclusions (slow or
    environment-dependent canonical solutions: they would only measure the machine)."""
    from solstice.papers.bigcodebench.evaluate import exclusions
    from solstice.papers.bigcodebench.tasks import stratified

    shipped = exclusions()
    pool = [t for t in tasks if not t.third_party and t.task_id not in shipped]
    return stratified(pool, 24, seed=1)


@pytest.fixture(scope="module")
def slice_results(pool, stdlib_slice):
    """Canonical solutions and degenerate / broken variants of a stdlib slice, in one batch."""
    from solstice.papers.bigcodebench import evaluate as ev

    units = []
    for t in stdlib_slice:
        sig = t.code_prompt.rstrip().splitlines()[-1]  # the `def task_func(...):` line
        units += [
            ev.Unit(f"{t.task_id}|gt", t, ev.gt_solution(t), 30),
            ev.Unit(f"{t.task_id}|none", t, ev.calibrate(t, ""), 30),  # stub returning None
            ev.Unit(f"{t.task_id}|raise", t, f"{sig}\n    raise NotImplementedError\n", 30),
            ev.Unit(f"{t.task_id}|bare", t, f"{sig}\n{t.canonical_solution}", 30),
            ev.Unit(f"{t.task_id}|bare_cal", t, ev.calibrate(t, f"{sig}\n{t.canonical_solution}"), 30),
        ]
    units += [ev.Unit(f"{stdlib_slice[0].task_id}|syntax", stdlib_slice[0], "def task_func(:\n", 30),
              ev.Unit(f"{stdlib_slice[0].task_id}|empty", stdlib_slice[0], "", 30)]
    return ev.run_units(pool, units)


@needs_data
@linux
def test_canonical_solutions_pass_on_a_stdlib_slice(stdlib_slice, slice_results):
    passed = [t for t in stdlib_slice if slice_results[f"{t.task_id}|gt"].status == "pass"]
    bad = {t.task_id: slice_results[f"{t.task_id}|gt"].details for t in stdlib_slice if t not in passed}
    assert len(passed) >= 0.99 * len(stdlib_slice), bad


@needs_data
@linux
def test_degenerate_solutions_never_pass(stdlib_slice, slice_results):
    for kind in ("none", "raise"):
        assert not [t.task_id for t in stdlib_slice if slice_results[f"{t.task_id}|{kind}"].status == "pass"], kind
    for kind in ("syntax", "empty"):
        assert slice_results[f"{stdlib_slice[0].task_id}|{kind}"].status == "fail"
    assert "SyntaxError" in slice_results[f"{stdlib_slice[0].task_id}|syntax"].details["ALL"]


@needs_data
@linux
def test_calibration_repairs_solutions_without_imports(stdlib_slice, slice_results):
    """The signature line + canonical body (no imports/constants) fails raw wherever the body
    uses a module-level name, and passes once calibrated."""
    needs_prelude = [t for t in stdlib_slice if t.modules and slice_results[f"{t.task_id}|gt"].status == "pass"]
    assert len(needs_prelude) >= 15
    raw_fail = [t for t in needs_prelude if slice_results[f"{t.task_id}|bare"].status != "pass"]
    cal_pass = [t for t in needs_prelude if slice_results[f"{t.task_id}|bare_cal"].status == "pass"]
    assert len(raw_fail) >= 0.8 * len(needs_prelude)
    assert len(cal_pass) == len(needs_prelude)


# -- runs through the CLI runner ----------------------------------------------------------------
def _fake_task(tid: str, body: str, test_body: str, imports: str = "") -> dict:
    code_prompt = f"{imports}def task_func(x):\n"
    return {"task_id": tid, "complete_prompt": code_prompt + '    """Double x."""\n',
            "instruct_prompt": f"Write task_func that doubles x. {tid}", "code_prompt": code_prompt,
            "canonical_solution": body, "entry_point": "task_func", "libs": "['math']",
            "doc_struct": "{}", "test": ("import unittest\nclass TestCases(unittest.TestCase):\n"
                                         f"    def test_double(self):\n        {test_body}\n")}


@pytest.fixture()
def tiny_tasks(tmp_path):
    rows = [
        _fake_task("BigCodeBench/0", "    return 2 * x\n", "self.assertEqual(task_func(2), 4)"),
        _fake_task("BigCodeBench/1", "    return math.floor(2 * x)\n", "self.assertEqual(task_func(1.6), 3)",
                   imports="import math\n"),
        _fake_task("BigCodeBench/2", "    return solstice_no_such_module.f(x)\n", "self.assertEqual(task_func(1), 2)",
                   imports="import solstice_no_such_module\n"),
    ]
    p = tmp_path / "tasks.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p, rows


@linux
def test_samples_file_run_writes_one_status_line_per_sample(tmp_path, tiny_tasks):
    from solstice.core.runner import run_paper

    path, rows = tiny_tasks
    samples = tmp_path / "samples.jsonl"
    with open(samples, "w") as f:
        for r in rows:  # the canonical solution, then a wrong one, per task
            f.write(json.dumps({"task_id": r["task_id"], "solution": r["complete_prompt"] + r["canonical_solution"]}) + "\n")
            f.write(json.dumps({"task_id": r["task_id"], "completion": "    return x\n"}) + "\n")
    res = run_paper("bigcodebench", sets=[f"tasks_file={path}", f"samples={samples}", "workers=1", "timeout=20"],
                    out=tmp_path / "runs", allow_code_exec=True)
    assert res.status == "completed", res.error
    lines = [json.loads(x) for x in (res.path / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and all("status" in x for x in lines)
    st = {(x["task_id"], x["sample_index"]): x["status"] for x in lines}
    assert st[("BigCodeBench/0", 0)] == "pass" and st[("BigCodeBench/0", 1)] == "fail"
    assert st[("BigCodeBench/1", 0)] == "pass" and st[("BigCodeBench/2", 0)] == "unsupported"
    m = res.metrics
    # the headline counts the unsupported task as failed (the leaderboard's denominator)
    assert m["pass@1"].value == pytest.approx(1 / 3) and m["coverage"].value == pytest.approx(2 / 3)
    assert m["pass@1_supported"].value == pytest.approx(0.5) and m["gt_pass_rate"].value == 1.0
    assert m["pass@1_instruct"].value == m["pass@1"].value  # the smoke scale runs the Instruct split
    summary = json.loads((res.path / "artifacts" / "summary.json").read_text())
    assert summary["dataset"]["sha256"] and summary["sanitize_version"]
    official = json.loads((res.path / "artifacts" / "eval_results.json").read_text())
    assert len(official["eval"]["BigCodeBench/0"]) == 2


def test_code_exec_needs_the_flag(tmp_path, tiny_tasks):
    from solstice.core.runner import run_paper
    from solstice.errors import ConfigError

    with pytest.raises(ConfigError, match="allow-code-exec"):
        run_paper("bigcodebench", sets=[f"tasks_file={tiny_tasks[0]}"], out=tmp_path / "runs")


def test_incomplete_samples_file_is_an_error_not_a_zero(tmp_path, tiny_tasks):
    from solstice.core.runner import run_paper

    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"task_id": "BigCodeBench/0", "solution": "def task_func(x): return 2*x"}) + "\n")
    res = run_paper("bigcodebench", sets=[f"tasks_file={tiny_tasks[0]}", f"samples={samples}"],
                    out=tmp_path / "runs", allow_code_exec=True)
    assert res.status == "failed" and "partial=true" in res.error and res.exit_code == 2


@linux
def test_generation_oracle_and_degenerate_models(tmp_path, tiny_tasks):
    """A scripted model that answers each task with its canonical solution in a fenced block
    scores 1 on the supported tasks; a model that answers prose scores 0."""
    from solstice.core.runner import run_paper

    path, rows = tiny_tasks
    rules = [{"match": re.escape(r["task_id"]) + r"\s",
              "reply": "Sure:\n```python\n" + r["complete_prompt"] + r["canonical_solution"] + "```\nprint(task_func(1))"}
             for r in rows]
    script = tmp_path / "oracle.json"
    script.write_text(json.dumps({"rules": rules, "default": "no idea"}))
    common = [f"tasks_file={path}", "split=instruct", "workers=1", "timeout=20"]
    good = run_paper("bigcodebench", sets=common, models=[f"fake:{script}"], out=tmp_path / "runs",
                     allow_code_exec=True)
    assert good.status == "completed", good.error
    m = good.metrics  # the smoke scale's stdlib pool leaves out task 2 (a third-party import)
    assert m["pass@1"].value == 1.0 and m["pass@1_uncalibrated"].value == 1.0 and m["pass@1_supported"].value == 1.0
    bad = run_paper("bigcodebench", sets=common, models=["fake:const=I cannot help with that."],
                    out=tmp_path / "runs", allow_code_exec=True)
    assert bad.metrics["pass@1"].value == 0.0
    gen = [json.loads(x) for x in (good.path / "samples.jsonl").read_text().splitlines()]
    assert {x["key"] for x in gen} == {"gen", "exec"}
    assert os.path.exists(good.path / "artifacts" / "samples_sanitized.jsonl")
    assert Path(good.path / "artifacts" / "breakdown.json").is_file()


def test_scoring_with_several_samples_per_task(tiny_tasks):
    """n = 5 samples per task: pass@1 and pass@5 follow the unbiased estimator; the headline counts
    unsupported and environment-failed tasks as failed (the leaderboard's denominator), the
    `_supported` figures leave them out; raw statuses give the uncalibrated scores."""
    from solstice.papers.bigcodebench.scoring import score
    from solstice.papers.bigcodebench.tasks import load_tasks

    tasks = load_tasks(tiny_tasks[0])
    st = {"BigCodeBench/0": ["pass", "pass", "fail", "fail", "timeout"], "BigCodeBench/1": ["fail"] * 5}
    by_task = {tid: [{"status": s, "status_uncalibrated": "fail"} for s in v] for tid, v in st.items()}
    by_task["BigCodeBench/2"] = [{"status": "unsupported", "status_uncalibrated": "unsupported"}] * 5
    m, b = score(by_task, tasks, {"BigCodeBench/0", "BigCodeBench/1"}, ks=[1, 5, 10], calibration="both")
    assert m["pass@1_supported"].value == pytest.approx((0.4 + 0.0) / 2) and m["pass@5_supported"].value == 0.5
    assert m["pass@1"].value == pytest.approx(0.4 / 3) and m["pass@5"].value == pytest.approx(1 / 3)
    assert "pass@10" not in m and m["pass@1_uncalibrated"].value == 0.0
    assert m["timeout_rate"].value == pytest.approx(1 / 10)
    # task 1's ground truth fails here: its (now passing) samples still count as failed in the headline
    by_task["BigCodeBench/1"] = [{"status": "pass", "status_uncalibrated": "pass"}] * 5
    m2, _ = score(by_task, tasks, {"BigCodeBench/0"}, ks=[1], calibration="both")
    assert m2["pass@1"].value == pytest.approx(0.4 / 3) and m2["pass@1_supported"].value == pytest.approx(0.4)
    assert b["tasks"]["BigCodeBench/0"]["n"] == 5 and "math" in b["libraries"]


def test_samples_file_errors_are_one_line(tmp_path):
    from solstice.errors import DataError
    from solstice.papers.bigcodebench.evaluate import read_samples

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "BigCodeBench/0", "solution": "x"}\nnot json\n')
    with pytest.raises(DataError, match="line 2: not valid JSON"):
        read_samples(bad)
    bad.write_text('{"task_id": "BigCodeBench/0", "answer": "x"}\n')
    with pytest.raises(DataError, match="'solution' or 'completion'"):
        read_samples(bad)


@pytest.fixture()
def base_model_dir(tmp_path):
    """A tiny random Llama saved with a tokenizer that has no chat template (a base model)."""
    from solstice.models.tiny import build_tiny

    model, tok = build_tiny("llama")
    tok.chat_template = None
    out = tmp_path / "base"
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    assert "chat_template" not in (out / "tokenizer_config.json").read_text()
    return out


@linux
def test_base_model_without_template_gets_direct_completion(tmp_path, tiny_tasks, base_model_dir):
    """The reference's rule: a model without a chat template reads the raw complete_prompt with the
    direct-completion stop strings; forcing chat on it is a ConfigError (exit 2), not a crash."""
    from solstice.core.runner import run_paper

    common = [f"tasks_file={tiny_tasks[0]}", "workers=1", "timeout=20", "max_new_tokens=16",
              "check_gt=false"]
    res = run_paper("bigcodebench", sets=common, models=[f"hf:{base_model_dir}"], out=tmp_path / "runs",
                    allow_code_exec=True)
    assert res.status == "completed", res.error
    gen = [json.loads(x) for x in (res.path / "samples.jsonl").read_text().splitlines() if '"gen"' in x]
    assert gen and all(r["mode"] == "direct" for r in gen)
    forced = run_paper("bigcodebench", sets=common + ["direct_completion=false"], models=[f"hf:{base_model_dir}"],
                       out=tmp_path / "runs", allow_code_exec=True)
    assert forced.status == "failed" and forced.exit_code == 2 and "no chat template" in forced.error


def test_model_with_a_template_keeps_prefill():
    from solstice.models.loader import load_model
    from solstice.papers.bigcodebench import prompts

    tiny = load_model("tiny:llama")
    assert tiny.has_chat_template
    assert prompts.request_mode(tiny, direct_completion=None, prefill=True) == "prefill"
    assert prompts.request_mode(tiny, direct_completion=True, prefill=True) == "direct"


@linux
def test_the_work_queue_keeps_both_workers_busy_and_hands_results_back_in_order(tiny_tasks):
    """No batch barrier: while one worker runs a slow sample, the other works through the next
    ones; results still come back in the order asked for. Each job writes its start and end
    times; at least three short jobs must have started before the slow one ended."""
    from solstice.papers.bigcodebench import evaluate as ev
    from solstice.papers.bigcodebench.tasks import load_tasks
    from solstice.sandbox import SandboxConfig, SandboxPool

    task = load_tasks(tiny_tasks[0])[0]
    sol = ("import time, sys\nsys.stdout.write(f'{{time.time()}} ')\ntime.sleep({})\n"
           "sys.stdout.write(f'{{time.time()}}')\ndef task_func(x):\n    return 2 * x\n")
    units = [ev.Unit("u0", task, sol.format(2.5), 30)] + [ev.Unit(f"u{i}", task, sol.format(0.1), 30) for i in range(1, 9)]
    with SandboxPool(SandboxConfig(workers=2, timeout=30, preload=())) as pool:
        q = ev.InOrder(lambda: pool, lambda first: units[first:])
        got = [q.results(i, [u])[0] for i, u in enumerate(units)]
        q.close()
        again = ev.run_units(pool, units[:1])  # the pool is reusable after the queue
    assert [u.id for u, _ in got] == [u.id for u in units]
    assert all(r.status == "pass" for _, r in got) and again["u0"].status == "pass"
    times = [tuple(map(float, r.stdout.split())) for _, r in got]
    slow_end = times[0][1]
    assert sum(start < slow_end for start, _ in times[1:]) >= 3, times


@linux
def test_a_pinned_env_runs_the_samples_and_missing_libraries_are_found_in_it(tmp_path, tiny_tasks):
    """`solstice bigcodebench env` builds a virtualenv (here with an empty pin list: offline); a
    run with --set python=ENV/bin/python executes the samples in it, and a task whose library
    this harness has but that env lacks is unsupported there."""
    import subprocess

    from solstice.core.runner import run_paper
    from solstice.papers.bigcodebench.env import MANIFEST
    from solstice.sandbox.deps import interpreter_info

    req = tmp_path / "req.txt"
    req.write_text("# nothing: offline test\n")
    target = tmp_path / "env"
    out = subprocess.run([sys.executable, "-m", "solstice", "bigcodebench", "env", "--python", sys.executable,
                          "--dir", str(target), "--requirements", str(req), "--no-harness"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    manifest = json.loads((target / MANIFEST).read_text())
    py = manifest["python"]
    assert manifest["requirements"] == "custom" and os.path.exists(py)
    if "numpy" in interpreter_info(py, ["numpy"])["missing"] and "numpy" not in interpreter_info(sys.executable, ["numpy"])["missing"]:
        path, rows = tiny_tasks
        rows = rows[:2] + [_fake_task("BigCodeBench/3", "    return int(numpy.floor(2 * x))\n",
                                      "self.assertEqual(task_func(1.6), 3)", imports="import numpy\n")]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        samples = tmp_path / "samples.jsonl"
        samples.write_text("".join(json.dumps({"task_id": r["task_id"], "solution": r["complete_prompt"]
                                               + r["canonical_solution"]}) + "\n" for r in rows))
        res = run_paper("bigcodebench", sets=[f"tasks_file={path}", f"samples={samples}", "workers=1", "timeout=20",
                                              f"python={py}"], out=tmp_path / "runs", allow_code_exec=True)
        assert res.status == "completed", res.error
        st = {json.loads(x)["task_id"]: json.loads(x)["status"] for x in (res.path / "samples.jsonl").read_text().splitlines()}
        assert st == {"BigCodeBench/0": "pass", "BigCodeBench/1": "pass", "BigCodeBench/3": "unsupported"}
        summary = json.loads((res.path / "artifacts" / "summary.json").read_text())
        assert summary["interpreter"]["executable"] == py
        assert summary["ground_truth"]["exclusions_source"]


def test_a_broken_environment_names_the_module_and_the_path():
    from solstice.papers.bigcodebench.evaluate import diagnose

    gt = {f"BigCodeBench/{i}": {"status": "fail", "details": {"ALL": "Traceback...\nModuleNotFoundError: No module "
                                                                     "named 'numpy'"}} for i in range(3)}
    inside = diagnose(gt, {"executable": "/x/bin/python", "missing": [], "origins": {"numpy": "/tmp/v/numpy/__init__.py"}})
    assert "'numpy'" in inside and "/tmp/v/numpy/__init__.py" in inside and "hides" in inside
    absent = diagnose(gt, {"executable": "/x/bin/python", "missing": ["numpy"], "origins": {}})
    assert "'numpy'" in absent and "/x/bin/python does not have" in absent


def test_the_exclusion_list_states_its_environment_and_is_rederived_elsewhere(tasks):
    from solstice.papers.bigcodebench.evaluate import (
        classify_gt,
        exclusions,
        same_environment,
        shipped_environment,
    )

    env = shipped_environment()
    assert env["python"] and env["libraries"]["pandas"]
    same, _ = same_environment({"python": env["python"] + ".0", "versions": {"pandas": env["libraries"]["pandas"] + ".1"}})
    other, why = same_environment({"python": "3.10.13", "versions": {"pandas": "2.0.3"}})
    assert same and not other and "pandas 2.0.3" in why
    shipped = exclusions()
    libv = next(t for t, e in shipped.items() if e["category"] == "library-version")
    net = next(t for t, e in shipped.items() if e["category"] == "network")
    gt = {libv: {"status": "fail", "details": {"ALL": "AttributeError: applymap"}},
          net: {"status": "fail", "details": {"ALL": "gaierror"}}, "BigCodeBench/9999": {"status": "pass", "details": {}}}
    here = classify_gt([], gt, shipped, same_env=True)
    there = classify_gt([], gt, shipped, same_env=False)
    assert set(here["explained"]) == {libv, net} and here["unexplained"] == []
    assert set(there["explained"]) == {net} and there["unexplained"] == [libv]
    assert there["derived_exclusions"][libv]["reason"] == "AttributeError: applymap"


@pytest.mark.slow
@linux
def test_a_killed_execution_resumes_from_its_in_order_records(tmp_path, tiny_tasks):
    """The continuous queue still writes records in sample order: after a SIGKILL mid-run the
    records are a prefix of the samples, and --resume runs only the rest."""
    import signal
    import subprocess
    import time

    from conftest import cli_env

    path, rows = tiny_tasks
    samples = tmp_path / "samples.jsonl"
    with open(samples, "w") as f:
        for i in range(6):
            for r in rows[:2]:
                sol = f"import time\ntime.sleep(0.4)  # sample {i}\n" + r["complete_prompt"] + r["canonical_solution"]
                f.write(json.dumps({"task_id": r["task_id"], "solution": sol}) + "\n")
    args = ["-m", "solstice", "run", "bigcodebench", "--allow-code-exec", "--out", str(tmp_path / "runs"),
            "--set", f"tasks_file={path}", "--set", f"samples={samples}", "--set", "partial=true",
            "--set", "check_gt=false", "--set", "workers=2", "--set", "calibration=calibrated"]
    p = subprocess.Popen([sys.executable, *args], env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    recorded: list[str] = []
    while time.time() < deadline and p.poll() is None:
        out = list((tmp_path / "runs").glob("bigcodebench/*/samples.jsonl"))
        recorded = [json.loads(x)["sample_id"] for x in out[0].read_text().splitlines()] if out else []
        if len(recorded) >= 3:
            break
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    run_dir = next((tmp_path / "runs" / "bigcodebench").iterdir())
    order = [f"exec/BigCodeBench/{t}#{i}" for t in (0, 1) for i in range(6)]
    first = [json.loads(x)["sample_id"] for x in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert 3 <= len(first) < 12 and first == [s.split("/", 1)[1] for s in order[:len(first)]], first
    r = subprocess.run([sys.executable, "-m", "solstice", "run", "bigcodebench", "--allow-code-exec",
                        "--resume", str(run_dir)], env=cli_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert [x["sample_id"] for x in lines] == [s.split("/", 1)[1] for s in order]
    assert all(x["status"] == "pass" for x in lines)


@linux
def test_reduced_isolation_is_warned_in_the_record_and_strict_refuses_it(tmp_path, tiny_tasks):
    from solstice.core.records import RunRecord
    from solstice.core.runner import run_paper

    path, rows = tiny_tasks
    samples = tmp_path / "samples.jsonl"
    samples.write_text(json.dumps({"task_id": rows[0]["task_id"], "solution": rows[0]["complete_prompt"]
                                   + rows[0]["canonical_solution"]}) + "\n")
    common = [f"tasks_file={path}", f"samples={samples}", "partial=true", "workers=1", "timeout=20",
              "check_gt=false", "isolate_network=false"]
    res = run_paper("bigcodebench", sets=common, out=tmp_path / "runs", allow_code_exec=True)
    assert res.status == "completed", res.error
    warnings = RunRecord(res.path).read()["warnings"]
    assert any("reduced sandbox isolation" in w and "network namespace" in w for w in warnings), warnings
    strict = run_paper("bigcodebench", sets=common + ["isolation=strict"], out=tmp_path / "runs", allow_code_exec=True)
    assert strict.status == "failed" and strict.exit_code == 2 and "network namespace" in strict.error
