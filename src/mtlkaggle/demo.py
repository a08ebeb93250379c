"""The built-in demo competition: procedurally drawn garments in the DeepFashion file format.

Ten garment-like categories (softmax task) and fifteen attributes that vary independently of
the category (multi-label task): three colour bits, four patterns, two textures and six parts.
Each image has a random background, scale, rotation, position, optional occlusion and noise, so
chance and constant predictors score clearly below a trained CNN, while a small CPU run learns it.
Every image is drawn from its own ``numpy`` generator seeded by ``(seed, split, index)``, so the
data set is the same for a seed whatever order or chunking it is written in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from mtlkaggle.io import atomic_path, write_csv_atomic
from mtlkaggle.progress import make_progress
from mtlkaggle.spec import Spec

CATEGORIES = ["tshirt", "dress", "trousers", "skirt", "shorts", "coat", "hat", "shoe", "bag", "scarf"]
ATTRIBUTES = [
    "red",
    "green",
    "blue",
    "h_stripes",
    "v_stripes",
    "dots",
    "checks",
    "speckle",
    "shading",
    "outline",
    "pocket",
    "belt",
    "buttons",
    "logo",
    "hem",
]
# How often each attribute is on; the colour bits near 1/2, the rest rarer, as real attributes are.
ATTRIBUTE_RATES = [0.5, 0.5, 0.5, 0.22, 0.22, 0.2, 0.15, 0.25, 0.3, 0.3, 0.25, 0.25, 0.25, 0.2, 0.2]

_HAT = [(0.5 + 0.32 * math.cos(a), 0.62 + 0.38 * math.sin(a)) for a in np.linspace(math.pi, 2 * math.pi, 12)]
SHAPES: dict[str, list[tuple[float, float]]] = {
    "tshirt": [
        (0.3, 0.1),
        (0.7, 0.1),
        (0.95, 0.3),
        (0.85, 0.45),
        (0.75, 0.38),
        (0.75, 0.95),
        (0.25, 0.95),
        (0.25, 0.38),
        (0.15, 0.45),
        (0.05, 0.3),
    ],
    "dress": [(0.38, 0.05), (0.62, 0.05), (0.65, 0.35), (0.92, 0.95), (0.08, 0.95), (0.35, 0.35)],
    "trousers": [
        (0.25, 0.05),
        (0.75, 0.05),
        (0.85, 0.95),
        (0.58, 0.95),
        (0.5, 0.4),
        (0.42, 0.95),
        (0.15, 0.95),
    ],
    "skirt": [(0.32, 0.25), (0.68, 0.25), (0.92, 0.8), (0.08, 0.8)],
    "shorts": [(0.18, 0.25), (0.82, 0.25), (0.9, 0.72), (0.56, 0.72), (0.5, 0.5), (0.44, 0.72), (0.1, 0.72)],
    "coat": [
        (0.3, 0.03),
        (0.7, 0.03),
        (0.97, 0.25),
        (0.97, 0.8),
        (0.84, 0.8),
        (0.8, 0.35),
        (0.8, 0.98),
        (0.2, 0.98),
        (0.2, 0.35),
        (0.16, 0.8),
        (0.03, 0.8),
        (0.03, 0.25),
    ],
    "hat": [*_HAT, (0.97, 0.62), (0.97, 0.74), (0.03, 0.74), (0.03, 0.62)],
    "shoe": [(0.08, 0.4), (0.42, 0.4), (0.48, 0.58), (0.9, 0.66), (0.94, 0.84), (0.08, 0.84)],
    "bag": [(0.18, 0.42), (0.82, 0.42), (0.92, 0.92), (0.08, 0.92)],
    "scarf": [(0.05, 0.22), (0.22, 0.05), (0.95, 0.78), (0.78, 0.95)],
}

LOCAL = 160  # pixels of the square canvas a garment is drawn on before it is placed


@dataclass(frozen=True)
class DemoConfig:
    """Size and seed of the generated data set."""

    n_train: int = 1200
    n_test: int = 400
    image_size: int = 64
    seed: int = 0


def draw_example(rng: np.random.Generator, size: int) -> tuple[Image.Image, int, np.ndarray]:
    """Draw one image; return it with its category and its 15-bit attribute vector."""
    category = int(rng.integers(len(CATEGORIES)))
    attrs = (rng.random(len(ATTRIBUTES)) < np.array(ATTRIBUTE_RATES)).astype(np.uint8)
    garment = _draw_garment(rng, CATEGORIES[category], attrs)
    canvas = _background(rng, 2 * size)
    scale = rng.uniform(0.55, 0.95) * 2 * size / LOCAL
    side = max(8, int(LOCAL * scale))
    garment = garment.resize((side, side), Image.BILINEAR)
    garment = garment.rotate(rng.uniform(-30, 30), resample=Image.BILINEAR, expand=True)
    x = int(rng.integers(0, max(1, 2 * size - garment.width // 2))) - garment.width // 4
    y = int(rng.integers(0, max(1, 2 * size - garment.height // 2))) - garment.height // 4
    canvas.paste(garment, (x, y), garment)
    if rng.random() < 0.3:
        _occlude(rng, canvas)
    image = canvas.resize((size, size), Image.BILINEAR)
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, rng.uniform(2, 10), (size, size, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)), category, attrs


def _background(rng: np.random.Generator, side: int) -> Image.Image:
    c0, c1 = rng.integers(60, 230, 3), rng.integers(60, 230, 3)
    t = np.linspace(0, 1, side)[:, None, None]
    grad = c0 * (1 - t) + c1 * t
    img = np.broadcast_to(grad, (side, side, 3)) + rng.normal(0, 6, (side, side, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def _draw_garment(rng: np.random.Generator, category: str, attrs: np.ndarray) -> Image.Image:
    """The garment as RGBA on a LOCAL x LOCAL canvas (alpha = its silhouette)."""
    n = LOCAL
    a = dict(zip(ATTRIBUTES, attrs.astype(bool), strict=True))
    base = np.array([215 if a["red"] else 35, 215 if a["green"] else 35, 215 if a["blue"] else 35])
    base = np.clip(base + rng.integers(-25, 26, 3), 0, 255)
    ink = np.array([20, 20, 20]) if base.mean() > 110 else np.array([240, 240, 240])
    yy, xx = np.mgrid[0:n, 0:n]
    tex = np.broadcast_to(base.astype(np.float32), (n, n, 3)).copy()
    period = int(rng.integers(12, 20))
    pattern = np.zeros((n, n), dtype=bool)
    if a["h_stripes"]:
        pattern |= (yy % period) < period // 3
    if a["v_stripes"]:
        pattern |= (xx % period) < period // 3
    if a["dots"]:
        pattern |= ((yy % period - period / 2) ** 2 + (xx % period - period / 2) ** 2) < (period / 4) ** 2
    if a["checks"]:
        cell = period // 2 + 2
        pattern |= ((yy // cell + xx // cell) % 2 == 0) & ((yy // 3 + xx // 3) % 2 == 0)
    tex[pattern] = ink
    if a["speckle"]:
        tex += rng.normal(0, 45, (n, n, 1))
    if a["shading"]:
        tex *= (0.35 + 0.9 * (xx / n))[..., None]
    rgb = Image.fromarray(np.clip(tex, 0, 255).astype(np.uint8))
    mask = Image.new("L", (n, n), 0)
    mask_draw = ImageDraw.Draw(mask)
    poly = [(px * n, py * n) for px, py in SHAPES[category]]
    mask_draw.polygon(poly, fill=255)
    if category == "bag":
        mask_draw.arc([0.3 * n, 0.18 * n, 0.7 * n, 0.6 * n], 180, 360, fill=255, width=int(0.05 * n))
    _draw_parts(rgb, np.asarray(mask) > 0, a, tuple(int(v) for v in ink))
    if a["outline"]:
        ImageDraw.Draw(rgb).line([*poly, poly[0]], fill=tuple(int(v) for v in ink), width=7)
    rgba = rgb.convert("RGBA")
    rgba.putalpha(mask)
    return rgba


def _draw_parts(rgb: Image.Image, inside: np.ndarray, a: dict, ink: tuple[int, ...]) -> None:
    """Pocket, belt, buttons, logo and hem, placed from the silhouette so they stay on it."""
    ys, xs = np.nonzero(inside)
    cy, cx = ys.mean(), xs.mean()
    top, bottom, left, right = ys.min(), ys.max(), xs.min(), xs.max()
    h = bottom - top
    draw = ImageDraw.Draw(rgb)
    accent = (230, 200, 30) if ink[0] < 128 else (120, 40, 160)
    if a["belt"]:
        y0 = int(top + 0.3 * h)
        draw.rectangle([left, y0, right, y0 + 10], fill=ink)
    if a["hem"]:
        draw.rectangle([left, bottom - 12, right, bottom], fill=accent)
    if a["buttons"]:
        for y in np.linspace(top + 0.2 * h, bottom - 0.2 * h, 4):
            draw.ellipse([cx - 4, y - 4, cx + 4, y + 4], fill=accent)
    if a["pocket"]:
        px, py = cx + 0.12 * (right - left), cy + 0.1 * h
        draw.rectangle([px - 12, py - 10, px + 12, py + 10], outline=ink, width=4)
    if a["logo"]:
        lx, ly = cx - 0.12 * (right - left), cy - 0.12 * h
        draw.line([lx - 12, ly, lx + 12, ly], fill=accent, width=6)
        draw.line([lx, ly - 12, lx, ly + 12], fill=accent, width=6)


def _occlude(rng: np.random.Generator, canvas: Image.Image) -> None:
    side = canvas.width
    w, h = (rng.uniform(0.15, 0.35, 2) * side).astype(int)
    x, y = rng.integers(0, side - w), rng.integers(0, side - h)
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    ImageDraw.Draw(canvas).rectangle([x, y, x + w, y + h], fill=colour)


def make_demo(spec: Spec, config: DemoConfig) -> dict[str, Path]:
    """Write the demo data set where ``spec`` says: images, train/test CSVs, test labels.

    Files are written atomically, the label files last, so an interrupted run never leaves a
    label file that points at missing images.

    Returns:
        The label files written, by split.
    """
    category_task, attribute_task = _demo_tasks(spec)
    columns = [spec.data.image_column, category_task.column, attribute_task.column]
    root = spec.data_path
    split_sizes = {"train": config.n_train, "test": config.n_test}
    frames = {}
    with make_progress() as progress:
        for split_id, (split, n) in enumerate(split_sizes.items()):
            bar = progress.add_task(f"drawing {split}", total=n, unit="img", status="")
            rows = []
            for i in range(n):
                rng = np.random.default_rng([config.seed, split_id, i])
                image, category, attrs = draw_example(rng, config.image_size)
                rel = f"images/{split}_{i:05d}.jpg"
                with atomic_path(root / spec.data.image_dir / rel) as tmp:
                    image.save(tmp, format="JPEG", quality=90)
                rows.append((rel, category, " ".join(str(k) for k in np.flatnonzero(attrs))))
                progress.advance(bar)
            frames[split] = pd.DataFrame(rows, columns=columns)
    written = {
        "train": root / spec.data.train,
        "test": root / spec.data.test,
        "test_labels": root / spec.data.test_labels,
    }
    write_csv_atomic(written["train"], frames["train"])
    write_csv_atomic(written["test_labels"], frames["test"])
    write_csv_atomic(written["test"], frames["test"][[spec.data.image_column]])
    return written


def _demo_tasks(spec: Spec) -> tuple:
    """The demo spec's two tasks, checked against what the generator draws."""
    from mtlkaggle.errors import UserError

    kinds = [(t.kind, t.size) for t in spec.tasks]
    expected = [("multiclass", len(CATEGORIES)), ("multilabel", len(ATTRIBUTES))]
    if kinds != expected or spec.data.id_column != spec.data.image_column or not spec.data.test_labels:
        raise UserError(
            f"competition '{spec.name}' is not a demo spec: the generator draws a 10-class and a "
            "15-label task, ids are image paths, and test labels are kept apart (see competition/demo.toml)"
        )
    return spec.tasks[0], spec.tasks[1]
