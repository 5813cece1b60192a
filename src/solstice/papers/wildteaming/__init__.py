"""WildTeaming at Scale: From In-the-Wild Jailbreaks to (Adversarially) Safer Language Models (Jiang et
al., 2024; arXiv:2406.18510). Mine jailbreak tactics from in-the-wild prompts, compose several into
attacks, prune, and measure attack success and diversity (ASR×N, Query×N, Sim×N, Sim_all). Safe by
default: proxy objectives (a secret in the target's system prompt) with a deterministic rule judge."""

from __future__ import annotations

from solstice.core.paper import Claim, PaperSpec, Reproduction, Role
from solstice.papers.wildteaming.config import Config


def _datasets(cfg: Config) -> list:
    from solstice.papers.wildteaming import tactics as T

    out = [T.TACTIC_FREQUENCIES, T.GOAT_TECHNIQUES]
    if "mining" in cfg.experiments and cfg.mining_templates:
        out.append(T.WILD_TEMPLATES)
    return out


_HARMBENCH = ("needs HarmBench behaviours against Vicuna-7B / Tulu2 / GPT-4 defenders with the HarmBench "
              "Llama-2-13b and Mistral-7b classifiers and a Mixtral/GPT-4 attacker (GPU and API)")

CLAIMS = (
    Claim("mined_5_7k", "in-the-wild mining yields 5.7K unique tactic clusters", "abstract", not_run=(
        "needs 16,850 adversarial prompts from LMSYS-Chat-1M / WildChat and GPT-4 (API); our mining demo runs on "
        "50 public templates: `solstice run wildteaming --set experiments=[mining] --model attacker=openai:...`")),
    Claim("diversity_4_6x", "up to 4.6x more diverse successful attacks than PAIR/AutoDAN/GCG at competitive ASR",
          "abstract, Table 2", not_run=_HARMBENCH),
    Claim("wildjailbreak", "WildJailbreak: 262K pairs of four types; safety training needs all four", "§5", not_run=(
        "needs the gated WildJailbreak set and Tulu2 fine-tuning on GPUs")),
    Claim("tactics_more_diverse", "composing mined tactics makes attacks on one behaviour more diverse than "
          "paraphrasing it (mean pairwise cosine of attacks, 4 tactics minus paraphrase, paired per behaviour)",
          "§4 (diversity of WildTeaming attacks)", check="d_sim_attacks_k4_k0 < 0",
          setting="proxy objectives; attacker = the run's model; MiniLM embeddings"),
    Claim("tactics_first_successes", "first successful attacks across behaviours are less similar with tactics "
          "(Sim_all, 4 tactics minus paraphrase, behaviours resampled jointly)", "§4 (Sim_all)",
          check="d_sim_all_k4_k0 < 0", setting="proxy objectives"),
    Claim("shipped_clusters", "the released tactic file holds 5,319 clusters", "data fact", metric="shipped_clusters",
          paper_value=5319, tolerance=0, kind="harness"),
)

PAPER = PaperSpec(
    id="wildteaming",
    title="WildTeaming at Scale: From In-the-Wild Jailbreaks to (Adversarially) Safer Language Models",
    arxiv="2406.18510",
    kind="redteam",
    version="1",
    config_cls=Config,
    run="solstice.papers.wildteaming.run:run",
    roles={
        "attacker": Role(default="default", description="simplifies and mines templates; composes attacks"),
        "target": Role(default="default", description="the defender holding the proxy secret"),
    },
    claims=CLAIMS,
    scales={
        "smoke": Reproduction(
            "re-cluster 400 sampled member names of the shipped clusters at tau 0.75; mine 2 templates; 3 proxy "
            "objectives x 3 attacks x {paraphrase, 2, 4 tactics}",
            {"recluster_max_names": 400, "taus": [0.75], "min_sizes": [1], "mining_templates": 2,
             "mining_max_new_tokens": 64, "n_objectives": 3, "attacks_per_objective": 3, "max_rounds": 1,
             "attacker_max_new_tokens": 64, "target_max_new_tokens": 48, "batch_size": 9}, minutes=1),
        "small": Reproduction(
            "the spec's plan: re-cluster all 16,457 shipped names (tau 0.7/0.75/0.8, min size 1/10); mine 50 "
            "templates; 10 proxy objectives x 10 attacks x {paraphrase, 2, 4 tactics} = 300 attacks",
            {}, minutes=60),
    },
    datasets=_datasets,
    summary="Mine jailbreak tactics, compose them into diverse attacks, measure ASR and diversity (proxy-safe).",
)
