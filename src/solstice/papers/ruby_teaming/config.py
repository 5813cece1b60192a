from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from solstice.core.config import BaseConfig

REAL_SEED_SETS = ("hh", "do_not_answer", "categoricalharmfulqa", "dangerousqa", "harmbench")


class Config(BaseConfig):
    # -- objective and archive --------------------------------------------------------------------
    objective: str = Field("proxy", description="'proxy': a target holding a secret canary, scored by a deterministic rule (safe default, spec 'Safe default objective'); 'harmful': real red teaming on a user-selected behaviour set and judge")
    descriptors: str = Field("proxy", description="descriptor set: proxy (leak vectors x Rainbow styles), rainbow (10x10, Rainbow Teaming §3), lab (11 Llama-Guard-2 categories x 10 styles, Ruby Teaming §4) or a JSON file")
    n_risks: int | None = Field(None, description="use only the first n risk categories (4 x 4 proxy grid for the CPU demo)")
    n_styles: int | None = Field(None, description="use only the first n attack styles")
    seed_prompts: str = Field("builtin", description="initial prompts: builtin (benign, shipped), or explicitly a real set hh, do_not_answer, categoricalharmfulqa, dangerousqa, harmbench (harmful objective only), or a .jsonl/.csv/.txt file")
    init: str = Field("seeded", description="'seeded': every cell starts with a random seed prompt, fitness 0 and a refusal (Ruby Teaming §4); 'empty': cells start empty and the first candidate is inserted directly")
    canary: str = Field("", description="the secret the proxy target must keep; empty draws one from the run seed (e.g. ZEBRA-7Q4-KITE)")
    # -- search ------------------------------------------------------------------------------------
    methods: list[str] = Field(["rainbow", "ruby"], description="searches to run: rainbow (memory k = 0), ruby (memory k = memory_k), or ruby_k<N>")
    seeds: list[int] = Field([0, 1, 2], description="search seeds; every method runs on every seed (spec: >= 3 seeds)")
    iterations: int = Field(2000, description="search iterations per run (Ruby Teaming lab setting 2,000)")
    batch_size: int = Field(10, description="parent/descriptor pairs per iteration, generated as one batch (Rainbow Teaming)")
    descriptor_temperature: float = Field(0.1, description="T in p(z) = softmax((1 - F[z]) / T) over cells (Rainbow Teaming §3)")
    bleu_threshold: float = Field(0.6, description="discard a candidate whose sentence-BLEU to its parent is >= this (0-1; Rainbow Teaming §3)")
    category_filter: bool = Field(False, description="keep a candidate only if the judge model classifies it into the targeted risk (Rainbow Teaming, optional)")
    max_retries: int = Field(2, description="extra mutator samples for a reply that parses to no usable one-line prompt")
    # -- generation ---------------------------------------------------------------------------------
    mutator_temperature: float = Field(0.7, description="mutator sampling temperature (Rainbow Teaming)")
    mutator_top_p: float = Field(0.95, description="mutator top-p (Rainbow Teaming)")
    mutator_max_tokens: int = Field(80, description="new tokens per mutation")
    target_max_tokens: int = Field(96, description="new tokens of the target's greedy answer")
    # -- judge, critic, memory --------------------------------------------------------------------
    judge: str = Field("rule", description="'rule': strictly higher canary fitness wins, ties keep the incumbent (the proxy objective's judge, spec); 'llm': the judge model compares candidate and incumbent responses pairwise in both orders with votes (Rainbow Teaming; required for the harmful objective)")
    judge_mode: str = Field("generate", description="'generate': sampled A/B votes, judge_samples per order; 'logprobs': one vote per order from the A/B label log-probabilities")
    judge_samples: int = Field(2, description="judge samples per order (Rainbow Teaming: 2)")
    judge_temperature: float = Field(0.7, description="judge sampling temperature (Rainbow Teaming)")
    ties_to_candidate: bool = Field(True, description="the candidate wins with >= half the votes (Rainbow Teaming); false: it needs more than half")
    memory_k: int = Field(3, description="memory depth k of the 'ruby' method (Ruby Teaming headline k = 3)")
    memory_scope: str = Field("global", description="memory scope: global FIFO, per_risk or per_cell (reconstruction)")
    critic: str = Field("llm", description="'llm': the critic model writes 1-2 sentences on why a winning mutation won; 'rule': a deterministic critique from the judge's evidence")
    critic_max_tokens: int = Field(60, description="new tokens of a critique")
    # -- evaluation ----------------------------------------------------------------------------------
    evaluators: list[str] = Field(["rule", "llm"], description="archive ASR evaluators, independent of the judge: rule (canary leak, proxy only), llm (evaluator model; Llama-Guard format in harmful mode)")
    eval_every: int = Field(200, description="iterations between archive evaluations for the curves (Ruby Teaming: every 200)")
    checkpoint_every: int = Field(1, description="iterations between checkpoints of archive, memory and RNG state")
    lockstep: bool = Field(True, description="run the run's searches (methods x seeds) side by side and send their same-step generations to the model as one batch (one process; results differ from separate runs only in the sampled text)")
    workers: int = Field(1, description="searches run in parallel processes (each loads its own models; results are identical to workers=1)")
    embedding_diversity: bool = Field(False, description="also report mean pairwise MiniLM cosine of the archive prompts")

    @field_validator("objective")
    @classmethod
    def _objective(cls, v: str) -> str:
        if v not in ("proxy", "harmful"):
            raise ValueError("must be 'proxy' or 'harmful'")
        return v

    @model_validator(mode="after")
    def _check(self) -> Config:
        checks = [
            (self.init in ("seeded", "empty"), "init must be 'seeded' or 'empty'"),
            (self.judge in ("llm", "rule"), "judge must be 'llm' or 'rule'"),
            (self.judge_mode in ("generate", "logprobs"), "judge_mode must be 'generate' or 'logprobs'"),
            (self.critic in ("llm", "rule"), "critic must be 'llm' or 'rule'"),
            (self.memory_scope in ("global", "per_risk", "per_cell"), "memory_scope must be global, per_risk or per_cell"),
            (bool(self.methods), "methods must name at least one search"),
            (bool(self.seeds) and len(set(self.seeds)) == len(self.seeds), "seeds must be distinct and non-empty"),
            (len(set(self.methods)) == len(self.methods), "methods must be distinct"),
            (self.iterations >= 1 and self.batch_size >= 1, "iterations and batch_size must be >= 1"),
            (self.descriptor_temperature > 0, "descriptor_temperature must be positive"),
            (0 < self.bleu_threshold <= 1, "bleu_threshold is on a 0-1 scale (0.6 = BLEU 60)"),
            (self.memory_k >= 0 and self.judge_samples >= 1 and self.max_retries >= 0, "memory_k, judge_samples, max_retries must be >= 0/1/0"),
            (self.workers >= 1, "workers must be >= 1"),
            (self.eval_every >= 1 and self.checkpoint_every >= 1, "eval_every and checkpoint_every must be >= 1"),
            (bool(self.evaluators) and set(self.evaluators) <= {"rule", "llm"}, "evaluators are a non-empty subset of rule, llm"),
        ]
        for m in self.methods:
            ok = m in ("rainbow", "ruby") or (m.startswith("ruby_k") and m[6:].isdigit())
            checks.append((ok, f"unknown method '{m}'; use rainbow, ruby or ruby_k<N>"))
        if self.objective == "proxy":
            checks.append((self.seed_prompts not in REAL_SEED_SETS,
                           f"'{self.seed_prompts}' is a real harmful-behaviour set; it is used only with objective=harmful"))
        if self.objective == "harmful":
            checks += [
                (self.judge == "llm", "the harmful objective needs judge=llm (a model that judges harm)"),
                ("rule" not in self.evaluators, "the rule evaluator scores canary leaks; with objective=harmful use evaluators=[llm]"),
                (self.seed_prompts != "builtin", "the harmful objective needs seed_prompts set explicitly (hh, harmbench, ... or a file)"),
            ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
        return self

    def memory_of(self, method: str) -> int:
        """Memory depth of a method name."""
        if method == "rainbow":
            return 0
        if method == "ruby":
            return self.memory_k
        return int(method[6:])
