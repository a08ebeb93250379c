"""Small data sets written in each competition's ORIGINAL layout, with real JPEG/PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def _image(path: Path, rng: np.random.Generator, size: tuple[int, int], mode: str = "RGB") -> None:
    """A real image file: a coloured block on noise, so the content varies between files."""
    w, h = size
    pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    pixels[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = rng.integers(0, 256, 3, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path)


AI6126_NAMES = [
    ("floral", 1),
    ("graphic", 1),
    ("striped", 1),
    ("embroidered", 1),
    ("pleated", 1),
    ("solid", 1),
    ("lattice", 1),
    ("long_sleeve", 2),
    ("short_sleeve", 2),
    ("sleeveless", 2),
    ("maxi_length", 3),
    ("mini_length", 3),
    ("no_dress", 3),
    ("crew_neckline", 4),
    ("v_neckline", 4),
    ("square_neckline", 4),
    ("no_neckline", 4),
    ("denim", 5),
    ("chiffon", 5),
    ("cotton", 5),
    ("leather", 5),
    ("faux", 5),
    ("knit", 5),
    ("tight", 6),
    ("loose", 6),
    ("conventional", 6),
]
AI6126_SIZES = (7, 3, 3, 4, 6, 3)


def write_ai6126(root: Path, n_train: int = 30, n_val: int = 12, n_test: int = 10, seed: int = 0) -> None:
    """img/*.jpg (varied sizes), split/{train,val,test}.txt, split/{train,val}_attr.txt, names."""
    rng = np.random.default_rng(seed)
    (root / "split").mkdir(parents=True, exist_ok=True)
    index = 0
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        names, attrs = [], []
        for _ in range(n):
            name = f"img/{index:05d}.jpg"
            _image(root / name, rng, (int(rng.integers(40, 90)), int(rng.integers(50, 120))))
            names.append(name)
            attrs.append(" ".join(str(int(rng.integers(k))) for k in AI6126_SIZES))
            index += 1
        (root / f"split/{split}.txt").write_text("\n".join(names) + "\n")
        if split != "test":
            (root / f"split/{split}_attr.txt").write_text("\n".join(attrs) + "\n")
    lines = ["26", "attribute_name   attribute_type"] + [f"{n:<20} {g}" for n, g in AI6126_NAMES]
    (root / "split/list_attr_cloth.txt").write_text("\n".join(lines) + "\n")


def write_utkface(root: Path, n: int = 50, seed: int = 0) -> list[str]:
    """UTKFace/AGE_GENDER_RACE_DATETIME.jpg.chip.jpg, plus malformed names; returns those."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        age, gender, race = int(rng.integers(1, 90)), int(rng.integers(2)), int(rng.integers(5))
        _image(root / f"UTKFace/{age}_{gender}_{race}_2017011{i:08d}.jpg.chip.jpg", rng, (48, 48))
    malformed = ["61_1_20170109142408075.jpg.chip.jpg", "39_1_20170116174525125.jpg.chip.jpg"]
    for name in malformed:  # real UTKFace has files like these, missing the race field
        _image(root / "UTKFace" / name, rng, (48, 48))
    return malformed


def write_utkface48(root: Path, n: int = 60, seed: int = 0) -> None:
    """Kaggle's age_gender.csv: age, ethnicity, gender, img_name, pixels (48x48 grayscale)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        pixels = rng.integers(0, 256, 48 * 48)
        rows.append(
            (
                int(rng.integers(1, 90)),
                int(rng.integers(5)),
                int(rng.integers(2)),
                f"2017011{i:08d}.jpg.chip.jpg",
                " ".join(map(str, pixels)),
            )
        )
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["age", "ethnicity", "gender", "img_name", "pixels"]).to_csv(
        root / "age_gender.csv", index=False
    )


PEDESTRIAN_COLOURS = ["Black", "White", "Gray", "Brown", "Green", "Blue", "Pink", "N/V"]


def write_pedestrian(root: Path, n_train: int = 40, n_test: int = 12, seed: int = 0) -> None:
    """train.csv (image, gender, upper_color, lower_color as names), test.csv; PNG images."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_train + n_test):
        name = f"images/p{i:04d}.png"
        _image(root / name, rng, (32, 64))
        rows.append(
            (
                name,
                ["Male", "Female", "N/V"][int(rng.integers(3))],
                PEDESTRIAN_COLOURS[int(rng.integers(8))],
                PEDESTRIAN_COLOURS[int(rng.integers(8))],
            )
        )
    frame = pd.DataFrame(rows, columns=["image", "gender", "upper_color", "lower_color"])
    frame.iloc[:n_train].to_csv(root / "train.csv", index=False)
    frame.iloc[n_train:][["image"]].to_csv(root / "test.csv", index=False)


CELEBA_ATTRIBUTES = [
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
]


def write_celeba(root: Path, n: int = 54, seed: int = 0) -> None:
    """img_align_celeba/*.jpg, list_attr_celeba.txt and list_eval_partition.txt."""
    rng = np.random.default_rng(seed)
    attr_lines = [str(n), " ".join(CELEBA_ATTRIBUTES)]
    partition_lines = []
    for i in range(1, n + 1):
        name = f"{i:06d}.jpg"
        _image(root / "img_align_celeba" / name, rng, (36, 44))
        values = rng.choice(["-1", " 1"], size=len(CELEBA_ATTRIBUTES))
        attr_lines.append(f"{name} " + " ".join(values))
        partition_lines.append(f"{name} {0 if i <= 0.6 * n else 1 if i <= 0.8 * n else 2}")
    (root / "list_attr_celeba.txt").write_text("\n".join(attr_lines) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(partition_lines) + "\n")
