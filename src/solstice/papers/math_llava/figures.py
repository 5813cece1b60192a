"""Procedurally generated math figures with known ground truth, for the selection and synthesis
pipeline without any dataset: bar charts, line charts, right triangles, angle diagrams and tables.

Each figure is a `Figure(kind, spec, objects)`: `spec` holds every value the picture shows (the
ground truth the synthesis validators compute answers from), `objects` the planted object count
(the complexity the proxy should track). `render(fig)` draws it with Pillow; `degrade(img, rng)`
blurs, down-scales or adds noise (the "unclear" images the clarity filter must drop).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from solstice.errors import require

KINDS = ("bar", "line", "triangle", "angle", "table")
NAMES = ("apple", "pear", "plum", "kiwi", "fig", "lime", "date", "mango", "grape", "peach")
SIZE = (320, 240)


@dataclass(frozen=True)
class Figure:
    fid: str
    kind: str
    spec: dict[str, Any]
    objects: int

    def describe(self) -> str:
        """A text rendering of the figure (what a text-only model reads instead of the image)."""
        s = self.spec
        if self.kind in ("bar", "line"):
            pairs = ", ".join(f"{k}: {v}" for k, v in zip(s["labels"], s["values"]))
            return f"A {self.kind} chart titled '{s['title']}' with values {pairs}."
        if self.kind == "triangle":
            return f"A right triangle ABC with the right angle at C, leg AC = {s['a']} and leg BC = {s['b']}."
        if self.kind == "angle":
            return f"Two angles on a straight line: angle 1 = {s['x']} degrees and angle 2 is its supplement."
        rows = "; ".join(f"{k} costs ${v}" for k, v in zip(s["labels"], s["values"]))
        return f"A price table: {rows}."


def make_figure(kind: str, rng: random.Random, fid: str) -> Figure:
    if kind in ("bar", "line", "table"):
        k = rng.randint(3, 7)
        labels = rng.sample(NAMES, k)
        values = [rng.randint(1, 20) for _ in range(k)]
        if kind == "bar":  # distinct maxima keep "which is largest" well-defined
            values = rng.sample(range(1, 21), k)
        return Figure(fid, kind, {"labels": labels, "values": values, "title": f"{kind} {fid}"}, k)
    if kind == "triangle":
        a, b = rng.choice([(3, 4), (5, 12), (6, 8), (8, 15), (9, 12), (7, 24), (20, 21)])
        return Figure(fid, kind, {"a": a, "b": b, "c": int(math.hypot(a, b))}, 3)
    if kind == "angle":
        x = rng.randint(20, 160)
        return Figure(fid, kind, {"x": x, "y": 180 - x}, 2)
    raise ValueError(f"unknown figure kind '{kind}'")


def make_figures(n: int, seed: int = 0) -> list[Figure]:
    rng = random.Random(seed)
    return [make_figure(KINDS[i % len(KINDS)], rng, f"fig{i:04d}") for i in range(n)]


def render(fig: Figure) -> Any:
    """The figure as a PIL RGB image."""
    Image = require("PIL.Image", "vision", "drawing figures")
    Draw = require("PIL.ImageDraw", "vision", "drawing figures")
    img = Image.new("RGB", SIZE, "white")
    d = Draw.Draw(img)
    w, h = SIZE
    s = fig.spec
    if fig.kind in ("bar", "line"):
        n, top = len(s["values"]), max(s["values"])
        d.line([(30, h - 30), (w - 10, h - 30)], fill="black", width=2)
        d.line([(30, 10), (30, h - 30)], fill="black", width=2)
        step = (w - 50) / n
        pts = []
        for i, (lab, v) in enumerate(zip(s["labels"], s["values"])):
            x0 = 40 + i * step
            y = h - 30 - (h - 60) * v / top
            if fig.kind == "bar":
                d.rectangle([x0, y, x0 + step * 0.6, h - 31], fill=(60, 90, 200), outline="black")
            pts.append((x0 + step * 0.3, y))
            d.text((x0, h - 25), lab[:5], fill="black")
            d.text((x0, y - 12), str(v), fill="black")
        if fig.kind == "line":
            d.line(pts, fill=(200, 40, 40), width=2)
            for x, y in pts:
                d.ellipse([x - 3, y - 3, x + 3, y + 3], fill="black")
    elif fig.kind == "triangle":
        A, B, C = (40, 30), (w - 40, h - 30), (40, h - 30)
        d.polygon([A, B, C], outline="black", width=3)
        d.rectangle([40, h - 45, 55, h - 30], outline="black")
        d.text((10, h / 2), str(s["a"]), fill="black")
        d.text((w / 2, h - 22), str(s["b"]), fill="black")
        for p, name in ((A, "A"), (B, "B"), (C, "C")):
            d.text((p[0] - 12, p[1] - 6), name, fill="black")
    elif fig.kind == "angle":
        cx, cy = w // 2, h - 50
        d.line([(20, cy), (w - 20, cy)], fill="black", width=3)
        rad = math.radians(s["x"])
        d.line([(cx, cy), (cx + 120 * math.cos(rad), cy - 120 * math.sin(rad))], fill="black", width=3)
        d.text((cx + 30, cy - 20), f"{s['x']}°", fill="black")
        d.text((cx - 50, cy - 20), "1" if s["x"] < 90 else "2", fill="black")
    else:
        rows = list(zip(s["labels"], s["values"]))
        rh = (h - 20) / (len(rows) + 1)
        for i, (lab, v) in enumerate([("item", "price")] + [(a, f"${b}") for a, b in rows]):
            y = 10 + i * rh
            d.rectangle([20, y, w - 20, y + rh], outline="black")
            d.line([(w / 2, y), (w / 2, y + rh)], fill="black")
            d.text((30, y + rh / 3), str(lab), fill="black")
            d.text((w / 2 + 10, y + rh / 3), str(v), fill="black")
    return img


def degrade(img: Any, rng: random.Random) -> Any:
    """An unclear copy: a strong Gaussian blur, a 5x down-scale, or heavy noise + blur."""
    ImageFilter = require("PIL.ImageFilter", "vision", "degrading figures")
    Image = require("PIL.Image", "vision", "degrading figures")
    import numpy as np

    kind = rng.choice(["blur", "downscale", "noise"])
    if kind == "blur":
        return img.filter(ImageFilter.GaussianBlur(radius=rng.uniform(2.5, 4.0)))
    if kind == "downscale":
        w, h = img.size
        return img.resize((w // 5, h // 5), Image.BILINEAR).resize((w, h), Image.BILINEAR)
    arr = np.asarray(img.filter(ImageFilter.GaussianBlur(radius=2.0)), dtype=float)
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0, 12, arr.shape)
    return Image.fromarray(np.clip(arr + noise, 0, 255).astype("uint8"))
