"""Forward modelling on choices13k: the model's P(A) per problem in each prompt mode, and its
comparison with human choice rates, with the expected-value choice and with fitted reference models.

Estimators of P(A) for the zero-shot A/B modes:
- logprobs: one forward pass over the answer labels "A" / "B"; P(A) = softmax(log p / T) over the two
  labels, which is what sampling at temperature T gives once answers other than A or B are set aside;
- sample: the paper's protocol, n answers sampled at temperature T (n = the row's participant count)
  and P(A) = #A / (#A + #B); the paper's own convention #A / n (unparsed answers kept in the
  denominator) is recorded too.
CoT and aggregate modes always generate: CoT answers are parsed from the JSON key "choice",
aggregate answers from the first JSON object's percentages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from solstice.core.types import MetricValue, Sample, content_id
from solstice.errors import CapabilityError
from solstice.metrics import mean_metric, proportion_metric
from solstice.metrics.correlation import correlation, correlation_metric
from solstice.models.base import CAP_LABEL_LOGPROBS, GenParams, Model
from solstice.models.prefix import fast_label_logprobs, shared_prefix
from solstice.papers.llm_rationality import gambles as G
from solstice.papers.llm_rationality import theories as T

ZERO_SHOT_AB = ("individual_zero_shot", "act_individual_zero_shot")
COT = ("individual_cot", "act_individual_cot")
AGGREGATE = ("aggregate_zero_shot", "aggregate_cot")


def resolve_estimator(choice: str, model: Model) -> str:
    has = CAP_LABEL_LOGPROBS in model.capabilities
    if choice == "logprobs" and not has:
        raise CapabilityError(f"model '{model.name}' gives no label log-probabilities; use estimator=sample")
    if choice == "auto":
        return "logprobs" if has else "sample"
    return choice


def p_from_logprobs(lp_a: float, lp_b: float, temperature: float) -> float | None:
    """P(A) among the two labels at temperature T (T = 0: the argmax, 0.5 on a tie)."""
    if not (math.isfinite(lp_a) or math.isfinite(lp_b)):
        return None
    if temperature <= 0:
        return 1.0 if lp_a > lp_b else 0.0 if lp_b > lp_a else 0.5
    d = (lp_b - lp_a) / temperature
    return 1.0 / (1.0 + math.exp(d)) if d < 700 else 0.0


def _messages(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _seed(*parts: Any) -> int:
    return int(content_id(*parts)[:8], 16)


class Predictor:
    """Computes the per-row records of one mode with one estimator."""

    def __init__(self, cfg: Any, model: Model, mode: str, estimator: str, seed: int) -> None:
        self.cfg, self.model, self.mode, self.estimator, self.seed = cfg, model, mode, estimator, seed

    def prompt(self, pr: G.Problem) -> str:
        c = self.cfg
        return G.render_prompt(pr, self.mode, seed=self.seed, render=c.render, drop_zero=c.drop_zero_prob,
                               shuffle=c.shuffle_outcomes)

    def __call__(self, batch: list[Sample]) -> list[dict[str, Any]]:
        probs = [s.input for s in batch]
        texts = [self.prompt(p) for p in probs]
        if self.mode in ZERO_SHOT_AB and self.estimator == "logprobs":
            return self._logprobs(texts)
        return self._generate(probs, texts)

    def _scorer(self) -> Model:
        """The model wrapped once for shared-prefix label scoring (white-box models only)."""
        if getattr(self, "_wrapped", None) is None:
            self._wrapped = shared_prefix(self.model)
        return self._wrapped

    def _logprobs(self, texts: list[str]) -> list[dict[str, Any]]:
        res = fast_label_logprobs(self._scorer(), [_messages(t) for t in texts], ["A", "B"])
        out = []
        for r in res:
            lp_a, lp_b = float(r["A"]), float(r["B"])
            p = p_from_logprobs(lp_a, lp_b, self.cfg.temperature)
            mass = math.exp(lp_a) + math.exp(lp_b)
            out.append({"p_a": p, "lp_a": _finite(lp_a), "lp_b": _finite(lp_b), "mass_ab": mass,
                        "parse_ok": p is not None, "estimator": "logprobs"})
        return out

    def _params(self, pr: G.Problem) -> GenParams:
        c = self.cfg
        if self.mode in ZERO_SHOT_AB:
            n, tokens = (c.samples or max(pr.n, 1)), c.zero_shot_max_tokens
        elif self.mode in COT:
            n, tokens = c.cot_samples, c.cot_max_tokens
        else:
            n, tokens = c.aggregate_samples, (c.aggregate_max_tokens if self.mode == "aggregate_zero_shot" else c.cot_max_tokens)
        return GenParams(max_new_tokens=tokens, temperature=c.temperature, n=n)

    def _generate(self, probs: list[G.Problem], texts: list[str]) -> list[dict[str, Any]]:
        groups: dict[GenParams, list[int]] = {}
        for i, pr in enumerate(probs):
            groups.setdefault(self._params(pr), []).append(i)
        out: list[dict[str, Any] | None] = [None] * len(probs)
        for params, idx in groups.items():
            params = params.replace(seed=_seed(self.seed, self.mode, probs[idx[0]].row))
            comps = self.model.generate([_messages(texts[i]) for i in idx], params)
            for i, cs in zip(idx, comps):
                out[i] = self._score([c.text for c in cs])
        return out  # type: ignore[return-value]

    def _score(self, answers: list[str]) -> dict[str, Any]:
        n = len(answers)
        keep = answers if self.mode not in ZERO_SHOT_AB else [a[:40] for a in answers]
        if self.mode in AGGREGATE:
            vals = [G.parse_aggregate(a) for a in answers]
            ok = [v for v in vals if v is not None]
            p = float(np.mean(ok)) if ok else None
            return {"p_a": p, "n_samples": n, "num_none": n - len(ok), "parse_ok": bool(ok),
                    "p_a_values": vals, "answers": keep, "estimator": "sample"}
        parse = G.parse_letter if self.mode in ZERO_SHOT_AB else G.parse_cot_choice
        letters = [parse(a) for a in answers]
        na, nb = letters.count("A"), letters.count("B")
        p = na / (na + nb) if na + nb else None
        return {"p_a": p, "p_a_ref": na / n if n else None, "n_a": na, "n_b": nb, "n_samples": n,
                "num_none": n - na - nb, "parse_ok": na + nb > 0, "answers": keep, "estimator": "sample"}


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def sampled_batch_size(cfg: Any, model: Model) -> int:
    """Rows per call for sampled estimators: the configured value, else the model's own concurrency
    (an endpoint answers that many requests at once), else `batch_size`. Never a hidden cap."""
    if getattr(cfg, "sample_batch_size", None):
        return int(cfg.sample_batch_size)
    own = getattr(model, "concurrency", None)
    return int(own) if isinstance(own, int) and own > 0 else int(cfg.batch_size)


def predict(ctx: Any, cfg: Any, model: Model, mode: str, problems: Sequence[G.Problem], estimator: str) -> list[dict[str, Any]]:
    """Records of `mode` for `problems` (resumable: one record per row under key forward/mode/estimator)."""
    est = estimator if mode in ZERO_SHOT_AB else "sample"
    fn = Predictor(cfg, model, mode, est, ctx.seed)
    samples = [Sample(str(p.row), p) for p in problems]
    bs = cfg.batch_size if est == "logprobs" else sampled_batch_size(cfg, model)
    return ctx.map(samples, fn, batch_size=bs, key=f"forward/{mode}/{est}", description=f"forward {mode}")


# -- reference models --------------------------------------------------------------------------
def fit_references(problems: Sequence[G.Problem], analysed: Sequence[G.Problem], fit_rows: int, seed: int) -> dict[str, Any]:
    """Fits EV / EU / CPT choice models on rows outside the analysed ones (grouped by Problem id so a
    problem never sits on both sides) and predicts P(A) for the analysed rows. When no row is left
    over, 5-fold cross-fitting over the analysed rows (grouped the same way)."""
    rows = {p.row for p in analysed}
    ids = {p.problem_id for p in analysed}
    train = [p for p in problems if p.row not in rows and p.problem_id not in ids]
    rng = np.random.default_rng(seed)
    preds: dict[str, np.ndarray] = {k: np.full(len(analysed), np.nan) for k in T.PARAMS}
    fits: dict[str, Any] = {}
    if train:
        if fit_rows and len(train) > fit_rows:
            train = [train[i] for i in sorted(rng.choice(len(train), fit_rows, replace=False))]
        g = T.Gambles.of(analysed)
        for k in T.PARAMS:
            f = T.fit(k, train)
            fits[k] = f.to_json()
            preds[k] = T.p_choose_a(k, g, f.params)
        scheme = "held-out rows"
    else:
        groups = sorted(ids)
        fold_of = {pid: i % 5 for i, pid in enumerate(rng.permutation(groups))}
        folds = np.array([fold_of[p.problem_id] for p in analysed])
        for k in T.PARAMS:
            fits[k] = []
            for f_id in range(5):
                tr = [p for p, f in zip(analysed, folds) if f != f_id]
                te = np.flatnonzero(folds == f_id)
                if not tr or not len(te):
                    continue
                f = T.fit(k, tr)
                fits[k].append(f.to_json())
                preds[k][te] = T.p_choose_a(k, T.Gambles.of([analysed[i] for i in te]), f.params)
        scheme = "5-fold cross-fitting"
    return {"scheme": scheme, "n_train": len(train), "fits": fits, "p_a": {k: v.tolist() for k, v in preds.items()}}


# -- metrics -----------------------------------------------------------------------------------
def _pearson(x: Sequence[float], y: Sequence[float]) -> float:
    return correlation(x, y, "pearson")


def _corr(a: Sequence[float], b: Sequence[float], note: str = "") -> MetricValue:
    return correlation_metric(a, b, "pearson", note=note)


def corr_gap(x: Sequence[float], y: Sequence[float], ref: Sequence[float], note: str = "") -> MetricValue:
    """corr(x, ref) - corr(y, ref) on the same rows, with a paired bootstrap CI over rows: the
    statistic of "the model's choices track EV more than the humans' do"."""
    from solstice.metrics.stats import bootstrap_ci

    a, b, r = (np.asarray(v, dtype=float) for v in (x, y, ref))

    def stat(a_: np.ndarray, b_: np.ndarray, r_: np.ndarray) -> float:
        return _pearson(a_, r_) - _pearson(b_, r_)

    value = stat(a, b, r)
    if a.size < 3 or math.isnan(value):
        return MetricValue(value, int(a.size), None, True, note or "too few rows or a constant vector")
    return MetricValue(value, int(a.size), bootstrap_ci((a, b, r), stat), True, note, "items")


def human_metrics(problems: Sequence[G.Problem], prefix: str) -> dict[str, MetricValue]:
    """How far the human majority choice agrees with expected-value maximisation."""
    h = np.array([p.human_choice == "A" for p in problems], dtype=float)
    e = np.array([G.ev_choice(p) == "A" for p in problems], dtype=float)
    a_rate = np.array([p.a_rate for p in problems])
    tie = [G.expected_value(p.A) == G.expected_value(p.B) for p in problems]
    return {
        f"{prefix}/phi_human_ev": _corr(h, e, "phi between the human majority choice and the EV choice"),
        f"{prefix}/agree_human_ev": proportion_metric(h == e, note="share of rows where the human majority picks the higher-EV gamble"),
        f"{prefix}/r_arate_ev": _corr(a_rate, e, "human rate of choosing A vs 1[EV(A) > EV(B)]"),
        f"{prefix}/ev_tie_share": proportion_metric(tie, higher_is_better=None, note="rows with EV(A) = EV(B) (counted as B)"),
    }


def reference_metrics(analysed: Sequence[G.Problem], refs: dict[str, Any]) -> dict[str, MetricValue]:
    a_rate = np.array([p.a_rate for p in analysed])
    h = np.array([p.human_choice == "A" for p in analysed], dtype=float)
    out = {}
    for k, p in refs["p_a"].items():
        pa = np.array(p, dtype=float)
        out[f"ref/{k}/r_human"] = _corr(pa, a_rate, f"fitted {k.upper()} P(A) vs human rate ({refs['scheme']})")
        out[f"ref/{k}/phi_human"] = _corr((pa > 0.5).astype(float), h, f"fitted {k.upper()} choice vs human majority")
    return out


def mode_metrics(mode: str, analysed: Sequence[G.Problem], records: Sequence[dict[str, Any]], refs: dict[str, Any]) -> dict[str, MetricValue]:
    """The paper's comparisons for one mode, on the rows this mode analysed."""
    from scipy.stats import chi2_contingency
    from statsmodels.stats.contingency_tables import mcnemar

    m = f"{mode}"
    n = len(records)
    probs = list(analysed[:n])
    pa = np.array([np.nan if r.get("p_a") is None else r["p_a"] for r in records], dtype=float)
    ok = ~np.isnan(pa)
    a_rate = np.array([p.a_rate for p in probs])
    human_a = np.array([p.human_choice == "A" for p in probs], dtype=float)
    ev_a = np.array([G.ev_choice(p) == "A" for p in probs], dtype=float)
    model_a = (pa > 0.5).astype(float)  # ties and unparsed rows -> B
    out: dict[str, MetricValue] = {
        f"{m}/parse_rate": proportion_metric(ok, note="rows with a parsed P(A)"),
        f"{m}/unparsed": proportion_metric(~ok, higher_is_better=False, note="rows with no parsable answer"),
        f"{m}/p_a_mean": mean_metric(pa[ok], higher_is_better=None, note="mean model P(A) (0.5 = no bias)"),
        f"{m}/model_share_a": proportion_metric(model_a[ok] == 1, higher_is_better=None, note="rows where the model's choice is A"),
        f"{m}/phi_model_human": _corr(model_a[ok], human_a[ok], "binarised: model choice vs human majority (= Spearman on 0/1)"),
        f"{m}/phi_model_ev": _corr(model_a[ok], ev_a[ok], "binarised: model choice vs EV choice"),
        f"{m}/phi_human_ev": _corr(human_a[ok], ev_a[ok], "binarised: human majority vs EV choice, same rows"),
        f"{m}/phi_ev_model_minus_human": corr_gap(model_a[ok], human_a[ok], ev_a[ok],
                                                  "phi(model, EV) - phi(human, EV), paired over the same rows"),
        f"{m}/agree_model_human": proportion_metric(model_a[ok] == human_a[ok], note="1 - MSE of the 0/1 choices"),
        f"{m}/agree_model_ev": proportion_metric(model_a[ok] == ev_a[ok], note="1 - MSE of the 0/1 choices"),
        f"{m}/r_model_human": _corr(pa[ok], a_rate[ok], "softmax: model P(A) vs human rate of A"),
        f"{m}/r_model_ev": _corr(pa[ok], ev_a[ok], "softmax: model P(A) vs 1[EV(A) > EV(B)]"),
    }
    for k, p in refs["p_a"].items():
        out[f"{m}/r_model_fit_{k}"] = _corr(pa[ok], np.array(p[:n])[ok], f"softmax: model P(A) vs fitted {k.upper()} P(A)")
    if ok.sum() >= 2:
        counts = np.array([[model_a[ok].sum(), (1 - model_a[ok]).sum()], [human_a[ok].sum(), (1 - human_a[ok]).sum()]])
        if (counts.sum(0) > 0).all():
            out[f"{m}/chi2_p"] = MetricValue(float(chi2_contingency(counts)[1]), int(ok.sum()), None, None,
                                             "chi-square p, model vs human marginal A/B counts")
        tab = np.array([[np.sum((model_a == 1) & (human_a == 1) & ok), np.sum((model_a == 1) & (human_a == 0) & ok)],
                        [np.sum((model_a == 0) & (human_a == 1) & ok), np.sum((model_a == 0) & (human_a == 0) & ok)]])
        out[f"{m}/mcnemar_p"] = MetricValue(float(mcnemar(tab, exact=True).pvalue), int(ok.sum()), None, None,
                                            "exact McNemar p, model vs human choices")
    if any("p_a_ref" in r for r in records):
        ref = np.array([r.get("p_a_ref") if r.get("p_a_ref") is not None else np.nan for r in records], dtype=float)
        keep = ~np.isnan(ref)
        ra = (ref > 0.5).astype(float)
        out[f"{m}/phi_model_human_refconv"] = _corr(ra[keep], human_a[keep], "paper's convention: #A / n, unparsed kept")
        out[f"{m}/phi_model_ev_refconv"] = _corr(ra[keep], ev_a[keep], "paper's convention: #A / n, unparsed kept")
        out[f"{m}/num_none"] = MetricValue(float(sum(r.get("num_none", 0) for r in records)), n, None, False, "unparsed samples")
    for cond, sel in (("amb", [p.amb for p in probs]), ("noamb", [not p.amb for p in probs]),
                      ("feedback", [p.feedback for p in probs]), ("nofeedback", [not p.feedback for p in probs])):
        s = np.array(sel) & ok
        if s.sum() >= 10:
            out[f"{m}/{cond}/r_model_human"] = _corr(pa[s], a_rate[s], f"softmax vs human rate, rows with {cond}")
            out[f"{m}/{cond}/r_model_ev"] = _corr(pa[s], ev_a[s], f"softmax vs EV choice, rows with {cond}")
    return out


def sample_check(logprob_records: Sequence[dict[str, Any]], sample_records: Sequence[dict[str, Any]]) -> dict[str, MetricValue]:
    """Agreement of the logprob shortcut with the sampled estimate on the same rows."""
    a, b, se = [], [], []
    for x, y in zip(logprob_records, sample_records):
        if x.get("p_a") is None or y.get("p_a") is None:
            continue
        a.append(x["p_a"])
        b.append(y["p_a"])
        k = y["n_a"] + y["n_b"]
        se.append(math.sqrt(x["p_a"] * (1 - x["p_a"]) / k) * math.sqrt(2 / math.pi))
    diff = np.abs(np.array(a) - np.array(b))
    return {
        "check/r_logprob_sample": _corr(a, b, "P(A) from label log-probs vs from n samples, same rows"),
        "check/mean_abs_diff": mean_metric(diff, higher_is_better=False, note="|P_logprob(A) - P_sample(A)|"),
        "check/expected_abs_diff": mean_metric(se, higher_is_better=None, note="binomial expectation of that difference"),
    }
