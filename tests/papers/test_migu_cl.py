"""The continual-learning runner of the MIGU paper: metrics, tasks, and a whole run on a tiny model."""

from __future__ import annotations

import json
import random

import pytest

from conftest import needs_data, shared_data
from solstice.errors import DataError
from solstice.papers.migu.cl_metrics import (
    average_accuracy,
    backward_transfer,
    example_values,
    forgetting,
    item_values,
    pooled_values,
)
from solstice.papers.migu.tasks import ORDERS, load_task, resolve_task

R = [[0.9, None, None], [0.7, 0.8, None], [0.6, 0.5, 0.9]]


def test_metric_golden_values():
    assert average_accuracy(R) == pytest.approx((0.6 + 0.5 + 0.9) / 3)
    assert forgetting(R) == pytest.approx(((0.9 - 0.6) + (0.8 - 0.5)) / 2)
    assert backward_transfer(R) == pytest.approx(((0.6 - 0.9) + (0.5 - 0.8)) / 2)
    assert forgetting([[0.5]]) != forgetting([[0.5]])  # NaN for a single task


def _flags(acc, n, rnd):
    k = round(acc * n)
    f = [True] * k + [False] * (n - k)
    rnd.shuffle(f)
    return f


def test_per_example_values_average_to_the_matrix_metrics_with_unequal_task_sizes():
    rnd = random.Random(0)
    sizes = [10, 20, 40]
    correct = [[(_flags(R[i][j], sizes[j], rnd) if R[i][j] is not None else None) for j in range(3)] for i in range(3)]
    for name, fn in (("aa", average_accuracy), ("forgetting", forgetting), ("bwt", backward_transfer)):
        v = example_values(correct, name)
        assert sum(v) / len(v) == pytest.approx(fn(R))
    # pooling two chains weights each equally whatever their sizes
    other = [[[True] * 5, None, None], [[True] * 5, [True] * 7, None], [[False] * 5, [True] * 7, [True] * 9]]
    R2 = [[1.0, None, None], [1.0, 1.0, None], [0.0, 1.0, 1.0]]
    pooled = pooled_values([correct, other], "forgetting")
    assert sum(pooled) / len(pooled) == pytest.approx((forgetting(R) + forgetting(R2)) / 2)


def test_item_values_pool_chains_that_share_examples_as_one_cluster():
    from solstice.metrics.stats import paired_difference_metric

    rnd = random.Random(1)
    sizes = [30, 30, 30]

    def chain(acc):
        return [[(_flags(acc[i][j], sizes[j], rnd) if acc[i][j] is not None else None) for j in range(3)]
                for i in range(3)]

    order_a, order_b = ["x", "y", "z"], ["z", "y", "x"]
    m1, m2 = chain(R), chain([[0.8, None, None], [0.75, 0.8, None], [0.75, 0.7, 0.8]])
    b1, b2 = chain([[0.8, None, None], [0.4, 0.8, None], [0.3, 0.4, 0.8]]), chain([[0.8, None, None], [0.5, 0.8, None], [0.4, 0.3, 0.8]])
    method = item_values([(order_a, m1), (order_b, m2)], "forgetting")
    base = item_values([(order_a, b1), (order_b, b2)], "forgetting")
    assert sum(method.values()) / len(method) == pytest.approx((forgetting(R) + forgetting(
        [[0.8, None, None], [0.75, 0.8, None], [0.75, 0.7, 0.8]])) / 2, abs=0.02)
    # a second seed that repeats the same chains adds no information: the CI over examples must
    # not narrow (treating the repeated rows as independent examples would narrow it)
    keys = sorted(method)
    once = paired_difference_metric([method[k] for k in keys], [base[k] for k in keys])
    m_twice = item_values([(order_a, m1), (order_b, m2)] * 2, "forgetting")
    b_twice = item_values([(order_a, b1), (order_b, b2)] * 2, "forgetting")
    twice = paired_difference_metric([m_twice[k] for k in keys], [b_twice[k] for k in keys])
    assert twice.value == pytest.approx(once.value) and twice.ci95 == pytest.approx(once.ci95)
    rows_once = pooled_values([m1, m2], "forgetting")
    rows_twice = pooled_values([m1, m2] * 2, "forgetting")
    assert len(rows_twice) == 2 * len(rows_once)  # the old pooling doubled the "examples"


def test_user_task_folders_split_and_validate(tmp_path):
    d = tmp_path / "mytask"
    d.mkdir()
    (d / "train.jsonl").write_text("\n".join(json.dumps({"sentence": f"s{i}", "label": "a" if i % 2 else "b"})
                                             for i in range(50)))
    t = load_task("mytask", d, split_seed=3, test_fraction=0.2)
    assert t.labels == ["a", "b"] and len(t.test) == 10 and len(t.train) == 40
    assert not {e.sentence for e in t.test} & {e.sentence for e in t.train}
    assert [e.uid for e in load_task("mytask", d, split_seed=3).test] == [e.uid for e in t.test]
    assert t.prompt("hello").endswith("hello\nAnswer:") and "Options: a, b" in t.prompt("x")
    (d / "labels.json").write_text('["a"]')
    with pytest.raises(DataError):
        load_task("mytask", d)
    with pytest.raises(DataError):
        resolve_task("no-such-task", None, {})
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.json").write_text('[{"text": "x"}]')
    with pytest.raises(DataError):
        load_task("bad", bad)


@needs_data
def test_benchmark_tasks_read_like_the_spec_table():
    root = shared_data() / "cl-benchmark" / "CL_Benchmark"
    ag = resolve_task("agnews", root, {})
    assert (len(ag.train), len(ag.test)) == (4000, 7600) and ag.labels[0] == "World"
    mnli = resolve_task("mnli", root, {})
    assert len(mnli.test) == 7600 - 131 and all(e.label != "-" for e in mnli.test)
    db = resolve_task("dbpedia", root, {})  # test only: split locally
    assert len(db.train) + len(db.test) == 7600 and len(db.test) == 1520
    assert not {e.sentence for e in db.train} & {e.sentence for e in db.test}
    with pytest.raises(DataError, match="yahoo"):
        resolve_task("yahoo", root, {})
    assert all(len(o) in (4, 15) for o in ORDERS.values())


# -- a whole run on a tiny model, killed and resumed -------------------------------------------------
def _write_task(folder, words, labels, seed):
    rnd = random.Random(seed)
    folder.mkdir()
    rows = []
    for _ in range(40):
        lab = rnd.randrange(len(labels))
        rows.append({"sentence": " ".join(rnd.choice(words[lab]) for _ in range(3)), "label": labels[lab]})
    (folder / "labels.json").write_text(json.dumps(labels))
    (folder / "train.json").write_text(json.dumps(rows[:30]))
    (folder / "test.json").write_text(json.dumps(rows[30:]))


@pytest.fixture()
def synthetic_tasks(tmp_path):
    a, b = tmp_path / "colours", tmp_path / "animals"
    _write_task(a, [["red", "rose"], ["sky", "sea"]], ["warm", "cool"], 1)
    _write_task(b, [["cat", "dog"], ["oak", "fir"]], ["pet", "tree"], 2)
    return [str(a), str(b)]


def test_whole_run_on_a_tiny_model_resumes_to_the_same_result(synthetic_tasks, tmp_path):
    from solstice.core.records import RunRecord
    from solstice.core.runner import run_paper

    sets = [f"orders=[[{synthetic_tasks[0]}, {synthetic_tasks[1]}]]", "seeds=[1]", "n_train=8", "n_test=6",
            "train_layers=1", "diagnostic_examples=4", "max_sentence_tokens=null", "lr=0.01", "batch_size=4"]
    res = run_paper("migu", scale="smoke", models=["tiny:llama"], sets=sets, out=tmp_path / "runs")
    assert res.status == "completed", res.error
    m = res.metrics
    for meth in ("seqft", "migu", "random"):
        assert 0 <= m[f"{meth}_aa"].value <= 1
        assert m[f"{meth}_forgetting"].value >= -m[f"{meth}_bwt"].value - 1e-9  # F >= -BWT always
    stages = sorted(p.name for p in (res.path / "stages").iterdir())
    assert stages == ["diagnostic.json", "o0-migu-s1__stage1.json", "o0-random-s1__stage1.json",
                      "o0-seqft-s1__stage1.json", "o0-shared-s1__stage0.json"]
    migu_stage = json.loads((res.path / "stages" / "o0-migu-s1__stage1.json").read_text())
    assert migu_stage["migu"]["masked_steps"] == 2 and migu_stage["migu"]["task"] == 1
    assert not list((res.path / "artifacts" / "checkpoints").iterdir())  # cleaned up
    assert (res.path / "artifacts" / "summary.md").read_text().count("|") > 10
    assert not json.loads((res.path / "run.json").read_text())["warnings"]  # the frozen-prefix cache held
    # kill after the first stages: drop the last chain's result and the metrics, resume
    (res.path / "stages" / "o0-random-s1__stage1.json").unlink()
    (res.path / "metrics.json").unlink()
    RunRecord(res.path).update(status="interrupted")
    again = run_paper("migu", scale="smoke", resume=res.path)
    assert again.status == "completed", again.error
    assert {k: v.value for k, v in again.metrics.items()} == {k: v.value for k, v in m.items()}


def test_bad_config_fails_before_a_run_directory_exists(tmp_path):
    from solstice.core.runner import run_paper
    from solstice.errors import ConfigError

    for sets in (["orders=[[agnews, no-such-task]]"], ["threshold=1.5"], ["methods=[ewc]"], ["orders=[[sst2, sst2]]"]):
        with pytest.raises(ConfigError):
            run_paper("migu", scale="smoke", models=["tiny:llama"], sets=sets, out=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
