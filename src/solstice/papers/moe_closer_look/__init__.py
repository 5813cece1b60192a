"""A Closer Look into Mixture-of-Experts in Large Language Models (arXiv 2406.18219).

The measurements live in `solstice.analysis.moe_static` / `moe_dynamic` over any transformers MoE
(`solstice.models.moe`); the offline model to study is SmolLM2 upcycled by `solstice.models.upcycle`.
"""

from __future__ import annotations

from solstice.core.paper import Claim, PaperSpec, Reproduction, Role
from solstice.papers.moe_closer_look.config import Config

_BIG = "needs the {m} checkpoint ({s}), not obtainable offline; solstice run moe_closer_look --model hf:<{m} dir> --set upcycle=false"


def _datasets(cfg):
    from solstice.papers.moe_closer_look.run import wikitext_source

    return [wikitext_source()]


PAPER = PaperSpec(
    id="moe_closer_look",
    title="A Closer Look into Mixture-of-Experts in Large Language Models",
    arxiv="2406.18219",
    kind="analysis",
    version="1",
    config_cls=Config,
    run="solstice.papers.moe_closer_look.run:run",
    roles={"target": Role(default="default", requires=frozenset({"whitebox"}),
                          description="a transformers MoE, or a dense Llama-family model to upcycle")},
    claims=(
        Claim("mixtral_gate_r2", "router gate-embedding similarity explains W_gate similarity: mean R² 0.33 "
              "(up 0.06, down 0.07) on Mixtral 8x7B", "README table", paper_value=0.33,
              not_run=_BIG.format(m="Mixtral-8x7B", s="~90 GB")),
        Claim("deepseek_gate_r2", "DeepSeekMoE-16B: mean gate R² 0.40, up/down 0.00", "README table",
              paper_value=0.40, not_run=_BIG.format(m="deepseek-moe-16b-base", s="~33 GB")),
        Claim("grok_gate_r2", "Grok-1: mean gate R² 0.15, up/down 0.04", "README table", paper_value=0.15,
              not_run=_BIG.format(m="grok-1", s="~600 GB")),
        Claim("mixtral_top_norm", "Mixtral's top-score expert is the largest-norm expert in ~70% of "
              "token-layer cases (chance 12.5%)", "§4.2 figure (read from a plot)", paper_value=0.70,
              not_run=_BIG.format(m="Mixtral-8x7B", s="~90 GB")),
        Claim("mixtral_depth", "Mixtral expert-output similarity: layer 31 > layer 6 > layer 27", "§4.1",
              not_run=_BIG.format(m="Mixtral-8x7B", s="~90 GB")),
        Claim("gate_r2_above_up", "gate R² exceeds up R² (paired over layers)", "finding 1",
              check="gate_minus_up_r2 > 0", setting="upcycled SmolLM2, paired over sparse layers"),
        Claim("gate_r2_above_down", "gate R² exceeds down R² (paired over layers)", "finding 1",
              check="gate_minus_down_r2 > 0", setting="upcycled SmolLM2, paired over sparse layers"),
        Claim("top_score_max_norm", "the top-score expert is the largest-norm expert more often than chance",
              "finding 2", check="top_max_norm_minus_chance > 0",
              setting="upcycled SmolLM2 on WikiText-103 sentences; CI over token-layer cases"),
        Claim("last_layer_outlier", "expert-output similarity rises again in the last layer",
              "finding 3", check="last_minus_min_similarity > 0",
              setting="upcycled SmolLM2; one value per model, no CI"),
        Claim("recombination_exact", "Σ top-k w_e·expert_e(x) from the weights rebuilds every recorded "
              "block output", "harness", check="recombination_max_rel_err < 0.0001", kind="harness"),
        Claim("rank_count_margins", "every row and column of the rank-count matrix sums to tokens × layers",
              "harness", check="rank_count_margin_error == 0", kind="harness"),
        Claim("permute_recovered", "permute-upcycled experts are matched back by the Hungarian algorithm "
              "(reordered cosine ≈ 1 up to the init noise)", "harness (spec plan)",
              check="min_reordered_cosine > 0.99", kind="harness",
              setting="permute init, untrained (train_steps = 0)"),
    ),
    scales={
        "smoke": Reproduction(
            "SmolLM2-135M upcycled to E = 4, top-2 in permute mode (1% noise), untrained; layers 0, 7, 14, 21, 29; 3 sentences; one Hungarian "
            "pair on the last layer (a plumbing check)",
            {"experts": 4, "n_sentences": 3, "layers": [0, 7, 14, 21, 29], "static_layers": [29],
             "hungarian_pairs": 1}, minutes=1.0),
        "small": Reproduction(
            "the spec's plan: SmolLM2-135M upcycled to E = 8, top-2 (permute init, 1% noise), experts and routers "
            "trained 300 steps of 4 x 128 WikiText-103 tokens (AdamW 1e-4, aux loss 0.01); 10 sentences, all expert "
            "pairs on every 4th layer",
            {"train_steps": 300}, minutes=90.0),
    },
    datasets=_datasets,
    summary="Static and dynamic analyses of mixture-of-experts weights and routing on any transformers MoE.",
)
