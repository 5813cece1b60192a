"""Large Language Models Assume People are More Rational than We Really are (Liu, Geng, Peterson,
Sucholutsky & Griffiths, 2024; arXiv:2406.17055, ICLR 2025).

Forward modelling: LLMs predict or simulate human choices between gambles (choices13k); compared with
human choice rates, the expected-value choice and fitted EU / prospect-theory models.
Inverse modelling: LLMs judge which of two observed choices more strongly reveals a preference (Jern,
Lucas & Kemp 2017); their rankings are compared with human rankings and with Bayesian models.
"""

from __future__ import annotations

from solstice.core.paper import Claim, PaperSpec, Reproduction, Role
from solstice.papers.llm_rationality.config import Config

_DIGEST = "as summarised by a third-party digest of the paper (study.space); not checked against the PDF"


def _datasets(cfg: Config) -> list:
    from solstice.papers.llm_rationality import gambles, stimuli

    out = []
    if "forward" in cfg.tasks:
        out += [gambles.SELECTIONS, gambles.PROBLEMS]
    if "inverse" in cfg.tasks:
        for framing in cfg.framings:
            out += list(stimuli.sources(framing).values())
    return out


PAPER = PaperSpec(
    id="llm_rationality",
    title="Large Language Models Assume People are More Rational than We Really are",
    arxiv="2406.17055",
    kind="behavioural evaluation",
    version="1",
    config_cls=Config,
    run="solstice.papers.llm_rationality.run:run",
    roles={"target": Role(default="default", requires=frozenset({"generate"}),
                          description="the LLM whose implicit model of human decisions is probed")},
    summary="LLMs predict and simulate risky choices as expected-value maximisers more than people are, and "
            "infer preferences from choices like people (and rational models) do.",
    claims=(
        Claim("human_ev", "Human majority choices agree only moderately with expected-value maximisation "
              f"(the EV model's correlation with humans is 0.48, {_DIGEST}; recomputed here from the data)",
              "§3.2", metric="human_first2000/phi_human_ev", paper_value=0.48, tolerance=0.02,
              setting="first 2,000 choices13k rows", kind="harness"),
        Claim("cot_predict_rational", "With chain of thought, predictions of an individual's choice correlate more "
              "with the EV choice than human choices do (paper: ~0.93-0.94 with EV, " + _DIGEST + ")",
              "§3.2, Table 1", check="individual_cot/phi_ev_model_minus_human > 0", unparsed="individual_cot/unparsed",
              setting="phi(model, EV) - phi(human, EV), paired over the same problems"),
        Claim("cot_simulate_rational", "With chain of thought, simulated choices correlate more with the EV choice "
              "than human choices do", "§3.2, Table 1", check="act_individual_cot/phi_ev_model_minus_human > 0",
              unparsed="act_individual_cot/unparsed",
              setting="phi(model, EV) - phi(human, EV), paired over the same problems"),
        Claim("zero_shot_human", "Zero-shot predictions correlate (moderately) with human choice rates "
              "(paper: ~0.60 for its models, " + _DIGEST + "; 'moderately' read as 0.60 ± 0.15)", "§3.2",
              metric="individual_zero_shot/r_model_human", paper_value=0.60, tolerance=0.15,
              unparsed="individual_zero_shot/unparsed"),
        Claim("human_rational_inference", "Human preference inferences correlate highly with the rational "
              f"relative-utility model (0.98, {_DIGEST}; Jern et al. 2017)", "§4.2",
              metric="inv/positive/human/rho_relative_utility", paper_value=0.98, tolerance=0.03, kind="harness"),
        Claim("llm_human_inference", f"LLM preference inferences correlate highly with human ones (0.97, {_DIGEST})",
              "§4.2", metric="inv/positive/zero_shot/rho_human", paper_value=0.97, tolerance=0.05),
        Claim("llm_rational_inference", "LLM preference inferences correlate with the rational relative-utility model",
              "§4.2", check="inv/positive/zero_shot/rho_relative_utility >= 0.7"),
        Claim("frontier_models", "Per-model correlations of GPT-4o, GPT-4-Turbo, Llama-3-8B/70B-Instruct and Claude 3 "
              "Opus (Tables 1-2, inverse-modelling table)", "Tables 1-2",
              not_run="needs those models (paid APIs or >= 8B weights); run with --model openai:<model>@<url> or hf:<dir>"),
    ),
    scales={
        "smoke": Reproduction(
            "16 rows x 2 zero-shot modes (label log-probs), 4 aggregate rows, 2 CoT rows; inverse on 6 of the 47 "
            "choices, 1 simulated participant per framing",
            {"rows": 16, "modes": ["individual_zero_shot", "act_individual_zero_shot", "aggregate_zero_shot", "individual_cot"],
             "mode_rows": {"aggregate_zero_shot": 4, "individual_cot": 2}, "cot_max_tokens": 48,
             "aggregate_max_tokens": 32, "fit_rows": 1500, "participants": 1, "inverse_choices": 6,
             "prior_samples": 100_000},
            minutes=2.0,
        ),
        "small": Reproduction(
            "the spec's small plan: 2,000 rows x 2 zero-shot A/B modes (label log-probs), 200-row sampled check of the "
            "shortcut, 200 aggregate rows, 50 rows per CoT mode; inverse on all 47 choices (1,081 pairs), 3 simulated "
            "participants per framing",
            {"rows": 2000, "mode_rows": {"aggregate_zero_shot": 200, "individual_cot": 50, "act_individual_cot": 50,
                                         "aggregate_cot": 50},
             "sample_check_rows": 200, "participants": 3, "prior_samples": 2_000_000},
            minutes=150.0,
        ),
        "paper": Reproduction(
            "the paper's protocol: 2,000 rows, n samples per row in every mode, 43 simulated participants per "
            "framing x {zero-shot, CoT} (an API or GPU model)",
            {"rows": 2000, "estimator": "sample", "inverse_estimator": "sample", "cot_samples": 16,
             "methods": ["zero_shot", "cot"], "participants": 43, "prior_samples": 2_000_000},
            minutes=6000.0,
        ),
    },
    datasets=_datasets,
)
