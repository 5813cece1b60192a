"""A small paper defined in the tests, to exercise the machinery end to end: it asks the target
model to repeat words and scores exact repetition. With `fake:echo` every answer is right."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import Field

from solstice.core.config import BaseConfig
from solstice.core.paper import Claim, PaperSpec, Reproduction, Role
from solstice.core.types import MetricValue, Sample
from solstice.metrics import proportion_metric
from solstice.metrics.stats import paired_difference_metric


class ToyConfig(BaseConfig):
    n: int = Field(24, description="number of items")
    batch_size: int = Field(4, description="items per model call")
    sleep: float = Field(0.0, description="seconds to wait per batch (for kill/resume tests)")
    calls_log: str = Field("", description="file that records every computed sample id")
    data_file: str = Field("", description="a file that must exist under SOLSTICE_DATA")


def _datasets(cfg: ToyConfig):
    from solstice.data import DataSource

    return [DataSource("toy-data", cfg.data_file)] if cfg.data_file else []


def run(cfg: ToyConfig, ctx):
    samples = ctx.limited([Sample(f"item-{i:03d}", f"word{i}", f"word{i}") for i in range(cfg.n)])
    model = ctx.model("target")

    def solve(batch):
        if cfg.sleep:
            time.sleep(cfg.sleep)
        if cfg.calls_log:
            with open(cfg.calls_log, "a") as f:
                f.writelines(s.id + "\n" for s in batch)
        outs = model.generate_text([s.input for s in batch], max_new_tokens=8)
        return [{"output": o, "correct": o.strip() == s.target} for s, o in zip(batch, outs)]

    rows = ctx.map(samples, solve, batch_size=cfg.batch_size)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([r["correct"] for r in rows])
    path = ctx.artifact("curve.png")
    fig.savefig(path)
    plt.close(fig)
    ctx.add_plot(Path(path), "correctness per item")
    acc = proportion_metric([r["correct"] for r in rows])
    correct = [float(r["correct"]) for r in rows]
    return {"accuracy": acc, "chance": proportion_metric([False] * len(rows)),
            "accuracy_minus_chance": paired_difference_metric(correct, [0.0] * len(rows)),
            "n_items": MetricValue(float(len(rows)), len(rows), None)}


PAPER = PaperSpec(
    id="toy",
    title="Toy repetition",
    arxiv="0000.00000",
    kind="benchmark",
    version="1",
    config_cls=ToyConfig,
    run="toy_paper:run",
    roles={"target": Role(default="fake:echo")},
    claims=(
        Claim("acc", "models repeat words", "Table 1", metric="accuracy", paper_value=1.0, tolerance=0.01),
        Claim("beats", "better than chance", "Fig. 2", check="accuracy_minus_chance > 0"),
        Claim("items", "the item set has its size", "data", check="n_items >= 1", kind="harness"),
        Claim("big", "a 70B model repeats better", "Table 3", not_run="needs a 70B model"),
    ),
    scales={"smoke": Reproduction("24 items", limit=None), "small": Reproduction("200 items", {"n": 200}),
            "needs-data": Reproduction("24 items and a data file", {"data_file": "toy/absent.txt"})},
    datasets=_datasets,
)
