"""(vanilla, adversarial) pairs in the WildJailbreak release's schema (`vanilla`, `adversarial`,
`completion`, `data_type`, plus `tactics`), for users building safety-training sets. Written into the
run directory only. Proxy attacks are labelled `adversarial_proxy`, not a release type."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path


def export_pairs(path: Path, objectives: Sequence, records: Sequence[dict]) -> int:
    by_id = {o.id: o for o in objectives}
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for r in records:
            if not r.get("kept") or r.get("k", 0) == 0:
                continue
            o = by_id[r["objective"]]
            fh.write(json.dumps({"vanilla": o.request, "adversarial": r["attack"], "completion": r.get("completion", ""),
                                 "data_type": "adversarial_proxy" if o.proxy else "adversarial_harmful",
                                 "tactics": r["tactics"]}, ensure_ascii=False) + "\n")
            n += 1
    return n
