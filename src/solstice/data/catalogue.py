"""Data files that more than one paper reads, declared once.

A paper that reads one of these imports it from here rather than declaring its own `DataSource`, so
the path, checksum, licence and description of a shared file cannot drift between papers. Files read
by one paper only stay in that paper's package.
"""

from __future__ import annotations

from solstice.data.sources import DataSource

SQUAD24 = DataSource(
    "squad-24", "squad/squad_dev_v1.1_24articles.json",
    sha256="bf8ebb60a161d0594f455be869ff3a476d2fe07da92ab1ecb0dea41f50ea64f3", license="CC BY-SA 4.0",
    description="SQuAD v1.1 dev, first 24 articles")

HOTPOT_IRCOT = DataSource(
    "hotpotqa-ircot", "hotpotqa/hotpotqa_dev_subsampled_500_ircot_format.jsonl",
    sha256="837a919903fedf521211c4271f168ad5458488198e9c4d967bf5f3a579525ce8", license="CC BY-SA 4.0",
    description="500 HotpotQA dev distractor questions with 10 titled paragraphs each (IRCoT format)")

NQ_OPEN_ORACLE = DataSource(
    "nq-open-oracle", "nq-open/nq-open-oracle.jsonl.gz",
    sha256="6a7f72b846f663a133ef952244e5a4e43f06bcf190afe34e8fbe687ce0d1653e", license="CC BY-SA 3.0",
    description="2,655 NQ-open questions with their titled gold Wikipedia passage (lost-in-the-middle release)")

NQ_OPEN_TEST = DataSource(
    "nq-open-test", "nq-open/nq_open_test_dataset.json",
    sha256="6393c9423b55128cfe0a1e6f19e5beec50f3f2250284b4daa407a96cc32ab500",
    license="CC BY-SA 3.0 (data, inside a GPL-3.0 repository)",
    description="NQ-open test, 2,889 questions with answers and the gold 100-word passage")

WIKITEXT103_TEST = DataSource(
    "wikitext103", "wikitext103/wikitext103_test.csv",
    sha256="752892158bef3400c1a185999bf986f60783656c8b44d883f3b015e6b6ea6fa8", license="CC BY-SA 3.0",
    description="WikiText-103 test articles, one per row, no header")

JUDGES_TRIVIAQA_V1 = DataSource(
    "judges-triviaqa-v1", "judges-triviaqa/TriviaQA_Judges_w_HumanJudgement_V1.csv",
    url="https://raw.githubusercontent.com/UMass-Meta-LLM-Eval/llm_eval/7c0bf28e75703cd41c6088bebb64eefcdf348bd4/"
        "results/TriviaQA_Judges_w_HumanJudgement_V1.csv",
    sha256="0b1dce9f0202eb2101e3645817732db2f5d640fe7c7e3920ca07fa2af269e703",
    license="MIT (UMass-Meta-LLM-Eval/llm_eval); TriviaQA Apache-2.0",
    description="verdicts of 9 LLM judges + EM + Contains and human labels, 9 exam-takers x 400 TriviaQA questions")

ALL = (SQUAD24, HOTPOT_IRCOT, NQ_OPEN_ORACLE, NQ_OPEN_TEST, WIKITEXT103_TEST, JUDGES_TRIVIAQA_V1)
