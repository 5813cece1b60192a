"""A small judged paper defined in the tests: a target model answers, a judge rates each answer.
Generation depends on the target only; the verdicts on target and judge (for `solstice rescore`)."""

from __future__ import annotations

from pydantic import Field

from solstice.core.config import BaseConfig
from solstice.core.paper import Claim, PaperSpec, Reproduction, Role
from solstice.core.types import Sample
from solstice.metrics import proportion_metric


class JudgedConfig(BaseConfig):
    n: int = Field(12, description="number of items")
    calls_log: str = Field("", description="file that records every generated sample id")


def run(cfg: JudgedConfig, ctx):
    samples = ctx.limited([Sample(f"q{i:02d}", f"word{i}", f"word{i}") for i in range(cfg.n)])

    def answer(batch):
        if cfg.calls_log:
            with open(cfg.calls_log, "a") as f:
                f.writelines(s.id + "\n" for s in batch)
        outs = ctx.model("target").generate_text([s.input for s in batch], max_new_tokens=8)
        return [{"answer": o} for o in outs]

    answers = {r["sample_id"]: r["answer"] for r in ctx.map(samples, answer, key="answer", roles=("target",))}

    def judge(batch):
        prompts = [f"Reference: {s.target}\nAnswer: {answers[s.id]}\nCorrect (yes/no)?" for s in batch]
        outs = ctx.model("judge").generate_text(prompts, max_new_tokens=4)
        return [{"verdict": o.strip().lower()} for o in outs]

    rows = ctx.map(samples, judge, key="judge", roles=("target", "judge"))
    return {"judged_accuracy": proportion_metric([r["verdict"] == "yes" for r in rows]),
            "exact": proportion_metric([answers[s.id] == s.target for s in samples])}


PAPER = PaperSpec(
    id="toy_judged", title="Toy judged answers", arxiv="0000.00001", kind="benchmark", version="1",
    config_cls=JudgedConfig, run="toy_judged:run",
    roles={"target": Role(default="fake:echo"), "judge": Role(default="fake:const=yes")},
    claims=(Claim("judged", "answers are judged right", "T1", check="judged_accuracy > 0.5"),),
    scales={"smoke": Reproduction("12 items")},
)
